"""Checkpoint -> one ONNX file that carries its own observation/action contract.

The graph is the deterministic acting path (argmax mode, mean latent, mean action) with a dynamic
batch axis: history [B, H*F] -> actions [B, A], mode_probs [B, K], latent [B, L]. Its
`metadata_props` hold the contract (joint names and order, default pose, action scale and clip,
PD gains, frame layout and scales, history length, control period, clock), the contract digest,
a hash of the run config and where the weights came from, so the runtime can refuse a file that
does not match what the robot side expects. Export fails unless ONNX Runtime reproduces torch on
random histories.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dhal.envs.contract import Contract
from dhal.envs.registry import make_config
from dhal.envs.skateboard.task import task_contract
from dhal.policies.inference import LoadedPolicy, checkpoint_env_overrides, load_checkpoint_policy
from dhal.policies.training import export_onnx

FORMAT_VERSION = "1"
INPUT_NAME = "history"
OUTPUT_NAMES = ("actions", "mode_probs", "latent")
# ONNX Runtime against torch, max |difference| over random histories (float32 kernels differ in
# summation order; 1e-5 is far below anything that moves a joint).
PARITY_TOLERANCE = 1e-5
PARITY_SAMPLES = 256


class ExportError(RuntimeError):
    """The checkpoint cannot be exported, or the exported file does not reproduce torch."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    contract: Contract
    metadata: dict[str, str]
    max_abs_error: float  # ONNX Runtime vs torch on PARITY_SAMPLES random histories


def config_sha256(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def contract_of(loaded: LoadedPolicy) -> Contract:
    """The contract the checkpoint's policy was trained under (its task and env overrides)."""
    env = loaded.config.get("env", {})
    cfg = make_config(env.get("task", "dhal-skateboard"), checkpoint_env_overrides(loaded.config))
    contract = task_contract(cfg)
    if contract.history_size != int(loaded.signature["obs_sizes"][loaded.input_group]):
        raise ExportError(f"{loaded.checkpoint}: the policy takes {loaded.signature['obs_sizes'][loaded.input_group]} "
                          f"inputs but its task's contract has a history of {contract.history_size}")
    if contract.num_joints != int(loaded.signature["num_actions"]):
        raise ExportError(f"{loaded.checkpoint}: {loaded.signature['num_actions']} actions for "
                          f"{contract.num_joints} contract joints")
    return contract


def metadata_for(loaded: LoadedPolicy, contract: Contract) -> dict[str, str]:
    return {
        "dhal.format_version": FORMAT_VERSION,
        "dhal.contract": contract.to_json(),
        "dhal.contract_digest": contract.digest(),
        "dhal.config_sha256": config_sha256(loaded.config),
        "dhal.checkpoint": loaded.checkpoint.name,
        "dhal.iteration": str(loaded.iteration),
        "dhal.num_modes": str(loaded.num_modes),
        "dhal.latent_dim": str(int(loaded.actor.modes_cfg.latent_dim)),
        "dhal.inputs": INPUT_NAME,
        "dhal.outputs": ",".join(OUTPUT_NAMES),
    }


def export_policy(checkpoint: str | Path, out: str | Path, seed: int = 0) -> ExportResult:
    """Write `out` (ONNX with contract metadata) from a checkpoint or run folder and verify it."""
    import onnx

    loaded = load_checkpoint_policy(checkpoint, device="cpu")
    contract = contract_of(loaded)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    export_onnx(loaded.actor, tmp)
    model = onnx.load(str(tmp))
    outputs = tuple(o.name for o in model.graph.output)
    if outputs != OUTPUT_NAMES:
        tmp.unlink()
        raise ExportError(f"the exported graph gives {outputs}, deploy expects {OUTPUT_NAMES}")
    metadata = metadata_for(loaded, contract)
    onnx.helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp))
    try:
        error = parity_error(loaded, tmp, contract, seed)
    except Exception:
        tmp.unlink()
        raise
    if not error <= PARITY_TOLERANCE:
        tmp.unlink()
        raise ExportError(f"ONNX Runtime differs from torch by {error:.3g} (> {PARITY_TOLERANCE}); not written")
    tmp.replace(out)
    return ExportResult(path=out, contract=contract, metadata=metadata, max_abs_error=error)


def random_histories(contract: Contract, count: int, seed: int) -> np.ndarray:
    """Histories with every scaled term in roughly its training range (unit-scale noise)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 1.0, (count, contract.history_size)).astype(np.float32)


def parity_error(loaded: LoadedPolicy, path: Path, contract: Contract, seed: int = 0) -> float:
    """max |ONNX Runtime - torch| over actions, mode probabilities and latents of random histories."""
    from dhal.deploy.runtime import OnnxPolicy

    histories = random_histories(contract, PARITY_SAMPLES, seed)
    runtime = OnnxPolicy(path)
    got = runtime.run_batch(histories)
    with torch.inference_mode():
        module = loaded.actor.as_onnx().eval()
        expected = [t.numpy() for t in module(torch.from_numpy(histories))]
    return max(float(np.abs(g - e).max()) for g, e in zip((got.actions, got.mode_probs, got.latent), expected))
