"""Export and runtime: contract metadata, ONNX Runtime == torch, and clear refusals of bad files."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest
import torch

from dhal.deploy.export import PARITY_TOLERANCE, export_policy, random_histories
from dhal.deploy.runtime import OnnxPolicy, PolicyFileError
from dhal.envs.registry import make_config
from dhal.envs.skateboard.task import task_contract
from dhal.policies.inference import load_checkpoint_policy
from tests.cli import run_dhal


def test_the_file_carries_the_training_contract(exported_policy, smoke_run):
    policy = OnnxPolicy(exported_policy)
    assert policy.contract == task_contract(make_config("dhal-skateboard"))
    assert policy.contract.joint_names[0] == "FR_hip_joint" and policy.contract.kp == 40.0
    model = onnx.load(str(exported_policy))
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["dhal.contract"])["history_length"] == 20
    assert props["dhal.iteration"] == "1" and props["dhal.checkpoint"] == "model_1.pt"
    assert [o.name for o in model.graph.output] == ["actions", "mode_probs", "latent"]


def test_onnx_runtime_matches_torch_on_random_histories(exported_policy, smoke_run):
    loaded = load_checkpoint_policy(smoke_run)
    histories = random_histories(OnnxPolicy(exported_policy).contract, 64, seed=7)
    got = OnnxPolicy(exported_policy).run_batch(histories)
    with torch.inference_mode():
        expected = loaded.policy({loaded.input_group: torch.from_numpy(histories)}).numpy()
        probs = loaded.actor.last_mode_probs.numpy()
    assert np.abs(got.actions - expected).max() < PARITY_TOLERANCE
    assert np.abs(got.mode_probs - probs).max() < PARITY_TOLERANCE
    assert got.latent.shape == (64, loaded.actor.modes_cfg.latent_dim)


def test_single_history_call_equals_the_batched_row(exported_policy):
    policy = OnnxPolicy(exported_policy)
    policy.warm_up(3)
    histories = random_histories(policy.contract, 4, seed=1)
    batch = policy.run_batch(histories)
    single = policy(histories[2])
    assert np.array_equal(single.actions, batch.actions[2]) and single.finite


def test_a_different_expected_contract_is_refused_with_the_field_named(exported_policy):
    contract = OnnxPolicy(exported_policy).contract
    with pytest.raises(PolicyFileError, match="kp: 30.0 expected, 40.0"):
        OnnxPolicy(exported_policy, expected=dataclasses.replace(contract, kp=30.0))


def test_corrupt_and_foreign_files_are_refused(exported_policy, tmp_path):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(exported_policy.read_bytes()[:500])
    with pytest.raises(PolicyFileError, match="not a loadable ONNX model"):
        OnnxPolicy(truncated)
    with pytest.raises(PolicyFileError, match="does not exist"):
        OnnxPolicy(tmp_path / "missing.onnx")
    model = onnx.load(str(exported_policy))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(PolicyFileError, match="lacks the DHAL metadata"):
        OnnxPolicy(bare)
    model = onnx.load(str(exported_policy))
    for prop in model.metadata_props:
        if prop.key == "dhal.contract":
            prop.value = prop.value.replace('"kp": 40.0', '"kp": 41.0')
    edited = tmp_path / "edited.onnx"
    onnx.save(model, str(edited))
    with pytest.raises(PolicyFileError, match="digest"):
        OnnxPolicy(edited)


def test_export_refuses_a_corrupt_checkpoint(tmp_path):
    from dhal.policies.training import CheckpointError

    bad = tmp_path / "model_3.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        export_policy(bad, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_dhal_export_command(smoke_run, tmp_path):
    written = run_dhal("export", str(smoke_run), "--out", str(tmp_path / "p.onnx"))
    assert written.code == 0, written.err
    assert "history [B, 960]" in written.out and "max |error|" in written.out
    assert OnnxPolicy(tmp_path / "p.onnx").contract.history_length == 20
    missing = run_dhal("export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "q.onnx"))
    assert missing.code == 2 and "dhal: error:" in missing.err and not (tmp_path / "q.onnx").exists()
