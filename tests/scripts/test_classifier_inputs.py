"""scripts/classifier_inputs.py: the supervised classifier test of docs/results/bench_modes.md,
at a size that runs in seconds."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("classifier_inputs", REPO / "scripts/classifier_inputs.py")
assert spec is not None and spec.loader is not None
classifier_inputs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(classifier_inputs)


def test_inputs_are_the_columns_they_name():
    cfg = classifier_inputs.SLDSConfig()
    frame = cfg.state_dim + cfg.input_dim
    histories = torch.arange(2 * cfg.history_length * frame, dtype=torch.float32).view(2, -1)
    guard = classifier_inputs.select(histories, "guard", cfg)
    assert torch.equal(guard[0], histories[0, ::frame])  # s, the first coordinate of every frame
    newest = classifier_inputs.select(histories, "guard+newest", cfg)[:, cfg.history_length:]
    assert torch.equal(newest, histories[:, -frame:])
    assert torch.equal(classifier_inputs.select(histories, "history", cfg), histories)
    with pytest.raises(KeyError, match="unknown inputs 'y'"):
        classifier_inputs.select(histories, "y", cfg)


def test_a_short_run_learns_the_modes_and_writes_json(tmp_path, capsys):
    out = tmp_path / "inputs.json"
    classifier_inputs.main(["--steps", "300", "--inputs", "history", "guard", "--out", str(out)])
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"history", "guard"}
    for r in results.values():
        assert r["accuracy"] > 0.6  # three modes: chance is about a third
        assert 0.0 <= r["switch_step_accuracy"] <= 1.0
    assert "switch steps" in capsys.readouterr().out
