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
