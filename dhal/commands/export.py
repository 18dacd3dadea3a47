"""`dhal export` (checkpoint -> ONNX with its contract) and `dhal bench export` (inference latency
paced as the robot calls it: once per control period, one thread)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

from dhal.commands.errors import CommandError


@dataclass
class ExportConfig:
    """Export a checkpoint's deterministic policy to ONNX, with the observation/action contract inside."""

    checkpoint: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """A checkpoint (model_N.pt) or a run folder (its newest checkpoint)."""
    out: Path = Path("policy.onnx")
    """Where the ONNX file goes."""


def run_export(cfg: ExportConfig) -> str:
    from dhal.deploy.export import ExportError, export_policy
    from dhal.policies.training import CheckpointError

    try:
        result = export_policy(cfg.checkpoint, cfg.out)
    except (CheckpointError, ExportError) as error:
        raise CommandError(str(error)) from error
    c = result.contract
    return (f"wrote {result.path} ({result.path.stat().st_size / 1e3:.0f} kB)\n"
            f"  input: history [B, {c.history_size}] = {c.history_length} frames x {c.frame_size}; "
            f"outputs: actions [B, {c.num_joints}], mode_probs [B, {result.metadata['dhal.num_modes']}], "
            f"latent [B, {result.metadata['dhal.latent_dim']}]\n"
            f"  contract {result.metadata['dhal.contract_digest']}, control {1 / c.control_dt:.0f} Hz, "
            f"kp {c.kp} kd {c.kd}, action scale {c.action_scale} clip {c.action_limit}\n"
            f"  ONNX Runtime vs torch on random histories: max |error| {result.max_abs_error:.2e}")


@dataclass
class BenchExportConfig:
    """Single-thread policy latency, ONNX Runtime vs torch, called once per control period."""

    checkpoint: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="CHECKPOINT")]
    """A checkpoint or run folder (exported to a temporary ONNX file for the measurement)."""
    calls: int = 250
    """Paced calls per runtime (250 = 5 s at 50 Hz)."""
    hot_calls: int = 2000
    """Back-to-back calls per runtime, for comparison."""
    json: Path | None = None
    """Also write the numbers here."""


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


def _paced(call, history: np.ndarray, calls: int, period_s: float) -> list[float]:
    """Call once per period on an absolute schedule (no drift), timing only the call."""
    samples = []
    next_tick = time.perf_counter()
    for _ in range(calls):
        next_tick += period_s
        start = time.perf_counter()
        call(history)
        samples.append(time.perf_counter() - start)
        delay = next_tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    return samples


def _hot(call, history: np.ndarray, calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        call(history)
        samples.append(time.perf_counter() - start)
    return samples


def run_bench_export(cfg: BenchExportConfig) -> str:
    import torch

    from dhal.deploy.export import ExportError, export_policy, random_histories
    from dhal.deploy.runtime import OnnxPolicy
    from dhal.policies.inference import load_checkpoint_policy
    from dhal.policies.training import CheckpointError

    if cfg.calls < 10 or cfg.hot_calls < 10:
        raise CommandError("use at least 10 calls")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = export_policy(cfg.checkpoint, Path(tmp) / "policy.onnx")
            loaded = load_checkpoint_policy(cfg.checkpoint)
        except (CheckpointError, ExportError) as error:
            raise CommandError(str(error)) from error
        runtime = OnnxPolicy(result.path, expected=result.contract)
        runtime.warm_up()
        module = loaded.actor.as_onnx().eval()
        history = random_histories(result.contract, 1, seed=0)[0]

        def torch_call(h: np.ndarray) -> None:
            with torch.inference_mode():
                module(torch.from_numpy(h).unsqueeze(0))

        for _ in range(20):
            torch_call(history)
        period = result.contract.control_dt
        numbers = {
            "onnxruntime": {"paced": _percentiles(_paced(runtime, history, cfg.calls, period)),
                            "hot": _percentiles(_hot(runtime, history, cfg.hot_calls))},
            "torch": {"paced": _percentiles(_paced(torch_call, history, cfg.calls, period)),
                      "hot": _percentiles(_hot(torch_call, history, cfg.hot_calls))},
        }
    ratio_paced = numbers["torch"]["paced"]["p50_ms"] / numbers["onnxruntime"]["paced"]["p50_ms"]
    ratio_hot = numbers["torch"]["hot"]["p50_ms"] / numbers["onnxruntime"]["hot"]["p50_ms"]
    report = {"checkpoint": str(cfg.checkpoint), "control_hz": 1 / period, "threads": 1, "calls": cfg.calls,
              "hot_calls": cfg.hot_calls, **numbers, "torch_over_onnx_p50_paced": ratio_paced,
              "torch_over_onnx_p50_hot": ratio_hot, "cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0]}
    if cfg.json is not None:
        cfg.json.parent.mkdir(parents=True, exist_ok=True)
        cfg.json.write_text(json.dumps(report, indent=2))
    lines = [f"policy latency, 1 thread, paced at {1 / period:.0f} Hz ({cfg.calls} calls) and hot ({cfg.hot_calls}):",
             f"  {'runtime':<12} {'paced p50':>10} {'p99':>8} {'max':>8} {'hot p50':>9} {'p99':>8}"]
    for name, n in numbers.items():
        lines.append(f"  {name:<12} {n['paced']['p50_ms']:>8.3f}ms {n['paced']['p99_ms']:>6.3f}ms "
                     f"{n['paced']['max_ms']:>6.2f}ms {n['hot']['p50_ms']:>7.3f}ms {n['hot']['p99_ms']:>6.3f}ms")
    lines.append(f"  torch / ONNX Runtime p50: {ratio_paced:.2f}x paced, {ratio_hot:.2f}x hot "
                 f"(machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
    return "\n".join(lines)
