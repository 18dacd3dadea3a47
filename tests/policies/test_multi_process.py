"""Multi-process training keeps the replicas identical: two processes (gloo on the CPU, as nccl
does across GPUs) update on different rollouts and end with the same parameters and learning
rate; each alone would not."""

from __future__ import annotations

import contextlib
import io
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dhal.policies import presets
from dhal.policies.bench_update import fill_synthetic_rollout, synthetic_spec
from dhal.policies.ppo import build_algorithm

WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parameter_vector(alg) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in (*alg.actor.parameters(), *alg.critic.parameters())])


def worker(rank: int, port: int, multi: bool, results) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(rank)  # different initial weights: broadcast must fix that
        cfg = presets.rsl_rl_config(presets.preset("smoke"))
        if multi:
            cfg["multi_gpu"] = {"global_rank": rank, "local_rank": rank, "world_size": WORLD}
        spec = synthetic_spec(8)
        with contextlib.redirect_stdout(io.StringIO()):
            alg = build_algorithm(spec, cfg, "cpu")
        alg.train_mode()
        if multi:
            alg.broadcast_parameters()
        fill_synthetic_rollout(alg, spec, seed=100 + rank)  # each rank sees its own data
        alg.update()
        vectors = [torch.zeros_like(parameter_vector(alg)) for _ in range(WORLD)]
        dist.all_gather(vectors, parameter_vector(alg))
        lrs = [torch.zeros(1) for _ in range(WORLD)]
        dist.all_gather(lrs, torch.tensor([alg.learning_rate]))
        if rank == 0:
            results.put((float((vectors[0] - vectors[1]).abs().max()), float(abs(lrs[0] - lrs[1]))))
    finally:
        dist.destroy_process_group()


def run(multi: bool) -> tuple[float, float]:
    context = mp.get_context("spawn")
    results = context.Queue()
    mp.start_processes(worker, args=(free_port(), multi, results), nprocs=WORLD, join=True, start_method="spawn")
    return results.get(timeout=60)


def test_replicas_stay_identical_with_gradient_reduction():
    parameter_gap, lr_gap = run(multi=True)
    assert parameter_gap == 0.0 and lr_gap == 0.0


def test_without_it_the_replicas_drift_apart():
    parameter_gap, _ = run(multi=False)
    assert parameter_gap > 1e-3


def test_dhal_train_under_torchrun_on_the_cpu(tmp_path):
    """Two processes (gloo): both train in step, process 0 writes the run folder."""
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", str(WORLD), "-m", "dhal.cli", "train", "--preset",
         "smoke", "--iterations", "2", "--num-envs", "2", "--run-dir", str(run_dir), "--no-progress"],
        env={**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "process 1 of 2: trained iterations 0..2" in done.stdout
    assert (run_dir / "model_2.pt").is_file() and (run_dir / "config.json").is_file()
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1  # one writer


def test_torchrun_needs_a_shared_run_dir(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "dhal.cli", "train", "--preset", "smoke", "--iterations", "1"],
                          env={**os.environ, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"},
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and "needs --run-dir" in done.stderr


def test_the_torchrun_environment_is_checked():
    import pytest

    from dhal.policies.training import distributed_process

    assert distributed_process({}).world_size == 1
    assert distributed_process({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}).rank == 3
    with pytest.raises(ValueError, match="inconsistent"):
        distributed_process({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"})
    with pytest.raises(ValueError, match="integers"):
        distributed_process({"WORLD_SIZE": "two"})
