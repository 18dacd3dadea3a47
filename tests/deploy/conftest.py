"""Fixtures shared by the deploy tests: a one-iteration smoke checkpoint and its ONNX export."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    from dhal.cli import main

    run = tmp_path_factory.mktemp("deploy_runs") / "smoke"
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["train", "--preset", "smoke", "--no-progress", "--iterations", "1", "--num-envs", "2",
                     "--run-dir", str(run)])
    assert code == 0, err.getvalue()
    return run


@pytest.fixture(scope="session")
def exported_policy(smoke_run, tmp_path_factory) -> Path:
    from dhal.deploy.export import export_policy

    return export_policy(smoke_run, tmp_path_factory.mktemp("deploy_onnx") / "policy.onnx").path
