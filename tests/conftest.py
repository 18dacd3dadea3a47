"""Fixtures shared by the whole suite: one smoke-trained checkpoint for every test that needs a
real (if untrained) policy, trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """A run folder with model_1.pt: `dhal train --preset smoke` for one iteration on 2 envs.
    Tests read it; a test that must damage it copies it first."""
    from tests.cli import run_dhal

    run = tmp_path_factory.mktemp("runs") / "smoke"
    result = run_dhal("train", "--preset", "smoke", "--no-progress", "--iterations", "1", "--num-envs", "2",
                      "--run-dir", str(run))
    assert result.code == 0, result.err
    return run
