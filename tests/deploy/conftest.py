"""Fixtures shared by the deploy tests: the session's smoke checkpoint (tests/conftest.py) exported to ONNX."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def exported_policy(smoke_run, tmp_path_factory) -> Path:
    from dhal.deploy.export import export_policy

    return export_policy(smoke_run, tmp_path_factory.mktemp("deploy_onnx") / "policy.onnx").path
