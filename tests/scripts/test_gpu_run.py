"""The prepared GPU script (scripts/gpu/run.sh), run whole on CPU Warp at tiny sizes: a device
session gets one or two tries, so the script must not be first run there."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("mujoco_warp")

REPO = Path(__file__).resolve().parents[2]


def test_run_sh_benchmarks_trains_evaluates_and_packs_on_cpu_warp(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # python3 = this venv
        "SITE": str(tmp_path / "site"), "OUT": str(out), "RUN_DIR": str(tmp_path / "run"),
        "HOME": str(tmp_path / "home"), "WARP_CACHE_PATH": str(Path.home() / ".cache" / "warp"),
        "DEVICE": "cpu", "TRAIN_PRESET": "smoke", "TRAIN_BUDGET": "1", "EVAL_EPISODES": "1",
        "OMP_NUM_THREADS": "1", "HOLD": str(tmp_path / "hold"), "TRAIN_OVERRIDES": "sim.check_every=2",
        "CALL_LIMIT": "400", "EVAL_BUDGET": "600",  # the evaluation is cut to end before the call's limit
    }
    args = ["--sizes", "2", "--seconds", "0.3", "--sim-seconds", "0", "--profile-steps", "1", "--deadline", "300",
            "--rounds", "2"]
    done = subprocess.run(["bash", str(REPO / "scripts/gpu/run.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    bench = json.loads((out / "gpu_bench.json").read_text())
    row = bench["results"][0]
    for variant in ("env", "checked", "asking", "noreset"):
        assert row[f"{variant}_control_steps_per_s"] > 0 and row[f"{variant}_over_raw"] > 0, variant
        assert len(row[f"{variant}_over_raw_rounds"]) == 2, variant  # two alternating rounds
        # the env's own physics is part of its time, so it alone runs faster than the env
        assert 0 < row[f"{variant}_over_physics"] < 1, variant
        assert row[f"{variant}_physics_control_steps_per_s"] > row[f"{variant}_control_steps_per_s"], variant
    assert bench["parity"]["parity_ok"]
    log = (out / "gpu_bench.log").read_text()
    assert "evaluation budget cut to" in log and "(CALL_LIMIT=400s)" in log
    assert "exit statuses: bench 0, train 0, eval 0" in log
    with tarfile.open(out / "results.tar") as tar:
        names = set(tar.getnames())
        assert {"config.json", "train_gpu.json", "training.png", "gpu_profile.txt", "eval/eval.json"} <= names
        assert {f"gpu_trace_{v}.json.gz" for v in ("env", "checked", "asking", "noreset")} <= names
        trace = json.loads(gzip.decompress(tar.extractfile("gpu_trace_env.json.gz").read()))  # type: ignore[union-attr]
        assert any(e.get("name", "").startswith("aten::") for e in trace["traceEvents"])
        summary = json.load(tar.extractfile("train_gpu.json"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile("config.json"))  # type: ignore[arg-type]
    assert config["env"]["overrides"] == {"sim.check_every": 2}
    assert summary["iterations"] >= 1 and summary["preset"] == "smoke"
    parts = sorted(out.glob("model_*.pt.part-*"))
    assert parts, sorted(p.name for p in out.iterdir())
    cache = tmp_path / "warp_kernels.tar.xz"  # for the next session to carry, in parts
    cache.write_bytes(b"".join(part.read_bytes() for part in sorted(out.glob("warp_kernels.tar.xz.part-*"))))
    with tarfile.open(cache) as tar:
        assert any(name.endswith(".meta") or "wp_" in name for name in tar.getnames())
    assert len(list(out.iterdir())) <= 8  # what a device call brings back


def test_stage_keeps_what_is_carried_and_refuses_nothing(tmp_path: Path) -> None:
    """`run.sh --stage` copies warp-lang's part a and/or the kernel cache to the hold folder
    (each may come in its own call); a call that carries neither is an error that says so."""
    repo = tmp_path / "repo"
    (repo / "scripts/gpu").mkdir(parents=True)
    (repo / "scripts/gpu/run.sh").write_text((REPO / "scripts/gpu/run.sh").read_text())
    env = {**os.environ, "HOLD": str(tmp_path / "hold"), "OUT": str(tmp_path / "out")}

    def stage() -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(repo / "scripts/gpu/run.sh"), "--stage"], env=env,
                              capture_output=True, text=True, timeout=60)

    refused = stage()
    assert refused.returncode == 2 and "nothing to stage" in refused.stderr
    (repo / ".gpu_cache").mkdir()
    (repo / ".gpu_cache/warp_kernels.tar.xz").write_bytes(b"kernels")
    assert stage().returncode == 0
    (repo / ".gpu_a").mkdir()
    (repo / ".gpu_a/warp_gpu.part-aa").write_bytes(b"part a")
    assert stage().returncode == 0
    assert sorted(p.name for p in (tmp_path / "hold").iterdir()) == ["warp_gpu.part-aa", "warp_kernels.tar.xz"]
