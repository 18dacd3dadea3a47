#!/usr/bin/env python3
"""GPU throughput of the MuJoCo Warp backend: bare physics, the simulator, and the task env.

For each number of envs N:
* raw: bare `mujoco_warp.step` on the skateboard scene (the same per-world model fields and
  buffers as the backend), physics steps/s and control steps/s at the task's decimation;
* sim: `MujocoWarpSimulator.step(ctrl, decimation)` (adds the derived-field update, the
  overflow/divergence check and its host sync);
* env: `make_env(num_envs=N, backend="mujoco_warp", device=...)` stepped with random actions
  (the task layer on top: observations, rewards, resets), control steps/s, in the --variants
  asked for (bench_variants.py says what each changes; --help lists them); --njmax/--nconmax
  size the env's buffers too (sim.njmax / sim.nconmax), so env and raw step the same buffers;
and the ratios to raw (the goal: the env's extra time under 20 % of raw's, env/raw >= 0.833),
and each variant's ratio to its own physics (<variant>_over_physics: the device time inside the simulator's step in the same
run, as `dhal bench env` measures on the CPU; the raw stepping's robots stand at the keyframe
with nominal parameters, the env's are randomised, reset and fall). Each measurement is time-boxed
(--seconds); a size whose measurements no longer fit the --deadline is skipped. Results are
printed as a table and written as JSON to $OUT/gpu_bench.json (or --json).

Runs without installing the repo: the repository root is put on sys.path, so `dhal` (whose
subpackages are symlinks inside the repo) imports from the checkout.

    python scripts/gpu/bench_gpu.py                                   # cuda, N = 1024 4096 8192
    python scripts/gpu/bench_gpu.py --device cpu --sizes 4 --seconds 2   # CPU Warp smoke test
    python scripts/gpu/bench_gpu.py --sizes 4096 --profile-steps 20     # + where an env step spends its time
                                        # (step_profile.py: gpu_profile.txt, gpu_trace_<variant>.json.gz)
    python scripts/gpu/bench_gpu.py --rounds 3 --seconds 3               # medians of 3 alternating rounds
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for _path in (REPO, Path(__file__).resolve().parent):  # dhal, and step_profile beside this script
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_variants import DESCRIPTIONS, VARIANTS, env_overrides, variant_setup  # noqa: E402 - needs the path above
from step_profile import profile_env, sync  # noqa: E402

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 8192])
    p.add_argument("--seconds", type=float, default=20.0, help="timed length of raw and env runs")
    p.add_argument("--sim-seconds", type=float, default=None, help="timed length of the sim run (default seconds/2; 0 skips)")
    p.add_argument("--warmup", type=int, default=5, help="untimed env steps before timing")
    p.add_argument("--deadline", type=float, default=420.0, help="skip sizes that would end after this many seconds")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure raw and every variant this many times in turn per size; rates are medians, "
                        "and <variant>_over_raw_rounds lists each round's ratio (the spread of the machine)")
    p.add_argument("--task", default="dhal-skateboard")
    p.add_argument("--variants", nargs="+", default=["env", "checked", "asking", "noreset"], choices=sorted(VARIANTS),
                   help="env measurements per size (default: env checked asking noreset): "
                        + "; ".join(f"{name}: {text}" for name, text in DESCRIPTIONS.items()))
    p.add_argument("--njmax", type=int, default=None)
    p.add_argument("--nconmax", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="default: $OUT/gpu_bench.json, else ./gpu_bench.json")
    p.add_argument("--profile-steps", type=int, default=0,
                   help="after the table, profile this many env steps at the largest size (torch.profiler, "
                        "CPU + CUDA) and write the top operators and host syncs to gpu_profile.txt; 0 skips")
    p.add_argument("--profile-variants", nargs="+", choices=sorted(VARIANTS), default=None,
                   help="the variants --profile-steps profiles (default: all of --variants; each compiled "
                        "one compiles again for its new env)")
    args = p.parse_args(argv)
    if args.profile_variants is None:
        args.profile_variants = args.variants
    if args.rounds < 1:
        p.error(f"--rounds must be >= 1, got {args.rounds}")
    return args


def environment_info(device: str) -> dict:
    import mujoco
    import mujoco_warp
    import torch
    import warp as wp

    wp.init()
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "warp": wp.__version__,
        "mujoco": mujoco.__version__,
        "mujoco_warp": getattr(mujoco_warp, "__version__", "?"),
        "device": device,
        "cpu_count": os.cpu_count(),
    }
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {device}: torch {torch.__version__} sees no CUDA device")
        info["gpu"] = torch.cuda.get_device_name()
        info["gpu_capability"] = list(torch.cuda.get_device_capability())
        info["cuda_driver"] = list(wp.get_cuda_driver_version() or ())
        info["warp_toolkit"] = list(wp.get_cuda_toolkit_version() or ())
        info["warp_mempool"] = bool(wp.is_mempool_enabled(wp.get_device(device if ":" in device else "cuda:0")))
        info["conditional_graphs"] = bool(wp.is_conditional_graph_supported())
    return info


# Warp float32 vs MuJoCo C float64, 20 substeps from the same float32 state (the unit tests'
# tolerances; measured on the Warp CPU device: qpos 1.3e-4, sites 6e-6 m, qvel 8e-3)
PARITY_TOL = {"qpos": 1e-3, "qvel": 5e-2, "site_xpos": 1e-4, "xquat": 1e-3, "sensordata": 0.5,
              "actuator_force": 5e-2}  # fmt: skip


def check_parity(xml: Path, device: str, kw: dict) -> dict:
    """The device's results against the CPU backend (mujoco.batch), on 3 envs: a check that
    graphs, streams and views work on this device before anything is timed."""
    import torch

    from dhal.envs.backends.mujoco_batch import MujocoBatchSimulator
    from dhal.envs.backends.mujoco_warp import MujocoWarpSimulator

    n = 3
    cpu = MujocoBatchSimulator(xml, n, nthread=1)
    k = cpu.info.keyframes
    cpu.set_state(torch.arange(n), torch.stack((k["push"], k["glide"], k["push"])), torch.zeros(cpu.info.nv))
    base = torch.as_tensor(cpu.model.key_ctrl[[0, 1, 0]], dtype=torch.float32)
    for _ in range(50):
        cpu.step(base, 4)
    start = cpu.read()
    cpu = MujocoBatchSimulator(xml, n, nthread=1)
    dev = MujocoWarpSimulator(xml, n, device=device, **kw)
    ids = torch.arange(n)
    cpu.set_state(ids, start.qpos, start.qvel)
    dev.set_state(ids.to(dev.device), start.qpos.to(dev.device), start.qvel.to(dev.device))
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        ctrl = base + 0.1 * torch.randn(n, cpu.info.nu, generator=gen)
        cpu.step(ctrl, 1, update_derived=False)
        cpu.step(ctrl, 3)
        dev.step(ctrl.to(dev.device), 1, update_derived=False)
        dev.step(ctrl.to(dev.device), 3)
    a, b = cpu.read(), dev.read()
    errors = {f: float((getattr(a, f) - getattr(b, f).cpu()).abs().max()) for f in PARITY_TOL}
    ok = all(errors[f] < PARITY_TOL[f] for f in PARITY_TOL)
    dev.close()
    return {"parity_ok": ok, "parity_max_abs_error_20_substeps": errors, "graphs": dev._use_graphs}


def measure_sim(xml: Path, n: int, device: str, decimation: int, seconds: float, kw: dict) -> dict:
    import torch

    from dhal.commands.bench_env import ACTION_BANK_SIZE, TARGET_NOISE_RAD
    from dhal.envs.backends.mujoco_warp import MujocoWarpSimulator

    sim = MujocoWarpSimulator(xml, n, device=device, **kw)
    try:
        info = sim.info
        key = info.keyframes["push"] if "push" in info.keyframes else next(iter(info.keyframes.values()))
        ids = torch.arange(n, device=sim.device)
        sim.set_state(ids, key.to(sim.device), torch.zeros(info.nv, device=sim.device))
        gen = torch.Generator(device=sim.device).manual_seed(0)
        ctrl0 = torch.as_tensor(sim.model.key_ctrl[0], dtype=torch.float32, device=sim.device)
        bank = ctrl0 + TARGET_NOISE_RAD * torch.randn((ACTION_BANK_SIZE, n, info.nu), generator=gen, device=sim.device)
        for i in range(3):
            sim.step(bank[i], decimation)
        sync(device)
        calls, diverged = 0, 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            try:
                sim.step(bank[calls % ACTION_BANK_SIZE], decimation)
            except Exception as err:  # noqa: BLE001 - SimulationDiverged: count, keep going
                if type(err).__name__ != "SimulationDiverged":
                    raise
                diverged += 1
            calls += 1
        sync(device)
        elapsed = time.perf_counter() - start
        return {
            "sim_control_steps_per_s": n * calls / elapsed,
            "sim_physics_steps_per_s": n * calls * decimation / elapsed,
            "sim_calls": calls,
            "sim_diverged_calls": diverged,
        }
    finally:
        sim.close()
        del sim


def measure_env(task: str, n: int, device: str, seconds: float, warmup: int, variant: str,
                buffers: dict | None = None) -> dict:
    """Env control steps/s of one variant (VARIANTS) with `dhal bench env`'s timed loop and
    workload; keys are prefixed "<variant>_"."""
    from dhal.commands.bench_env import measure_env_throughput
    from dhal.envs.registry import make_env

    with variant_setup(variant):
        t = time.perf_counter()
        env = make_env(task=task, num_envs=n, backend="mujoco_warp", device=device,
                       overrides=env_overrides(variant, buffers or {}))
        build_s = time.perf_counter() - t
        try:
            # a time-out in the warm-up: the reset path runs (and compiles) before timing
            run = measure_env_throughput(env, seconds, warmup, time_out_in_warmup=variant != "noreset")
            prefix = f"{variant}_"
            return {
                f"{prefix}control_steps_per_s": run.env_steps_per_s,
                f"{prefix}steps": run.steps,
                f"{prefix}build_s": build_s,
                f"{prefix}warmup_s": run.warmup_s,  # includes compiling
                f"{prefix}done_fraction_sampled": run.done_fraction,
                # env steps over the steps its own physics alone would make in that time (the raw
                # stepping runs its robots from the keyframe, without resets or randomised parameters)
                f"{prefix}over_physics": run.env_steps_per_s / run.physics_steps_per_s,
                f"{prefix}physics_control_steps_per_s": run.physics_steps_per_s,
                "decimation": int(env.cfg.sim.decimation),
                f"{prefix}warnings": env.sim.warning_counts(),
                "scene": str(env.cfg.scene),
            }
        finally:
            env.close()
            del env


def measure_size(row: dict, n: int, args: argparse.Namespace, xml: Path, kw: dict, decimation: int,
                 sim_seconds: float) -> None:
    """Raw stepping and each variant at n envs, args.rounds times in turn, into `row`: medians over
    the rounds, each round's variant/raw ratio beside them when there are several."""
    from statistics import median

    import torch

    from dhal.envs.backends.warp_raw import raw_step_throughput_warp

    # As in a training process, which has one number of envs: compiled (by default on CUDA) for
    # this size's static shapes, not for the dynamic ones dynamo switches to when a second size comes.
    torch._dynamo.reset()
    raws: list[float] = []
    runs: dict[str, list[tuple[dict, float]]] = {v: [] for v in args.variants}
    for r in range(args.rounds):
        tag = f" [round {r + 1}/{args.rounds}]" if args.rounds > 1 else ""
        log(f"N={n}: raw mujoco_warp.step, {decimation} steps per call, {args.seconds:g}s{tag} ...")
        raw = raw_step_throughput_warp(xml, n, nsteps_per_call=decimation, seconds=args.seconds,
                                       device=args.device, **kw) / decimation  # fmt: skip
        raws.append(raw)
        log(f"N={n}: raw {raw * decimation:,.0f} physics steps/s = {raw:,.0f} control steps/s")
        gc.collect()
        if r == 0 and sim_seconds > 0:
            log(f"N={n}: simulator step(ctrl, {decimation}), {sim_seconds:g}s ...")
            row.update(measure_sim(xml, n, args.device, decimation, sim_seconds, kw))
            log(f"N={n}: sim {row['sim_control_steps_per_s']:,.0f} control steps/s")
            gc.collect()
        for variant in args.variants:
            key = f"{variant}_control_steps_per_s"
            log(f"N={n}: {variant} (make_env, targets default + N(0, 0.1 rad)), {args.seconds:g}s{tag} ...")
            try:
                measured = measure_env(args.task, n, args.device, args.seconds, args.warmup, variant, kw)
            except Exception as err:  # noqa: BLE001 - keep the other variants' numbers
                row[f"{variant}_error"] = f"{type(err).__name__}: {err}"
                log(f"N={n}: env {variant} FAILED: {row[f'{variant}_error']}")
                traceback.print_exc()
                continue
            runs[variant].append((measured, raw))
            log(f"N={n}: {variant} {measured[key]:,.0f} control steps/s, ratio to raw {measured[key] / raw:.2f}, "
                f"to its own physics {measured[f'{variant}_over_physics']:.2f} (which alone makes "
                f"{measured[f'{variant}_physics_control_steps_per_s']:,.0f}; build {measured[f'{variant}_build_s']:.1f}s, "
                f"warm-up {measured[f'{variant}_warmup_s']:.1f}s)")
    row["raw_control_steps_per_s"] = median(raws)
    row["raw_physics_steps_per_s"] = row["raw_control_steps_per_s"] * decimation
    for variant, done in runs.items():
        if not done:
            continue
        key = f"{variant}_control_steps_per_s"
        row.update(done[0][0])  # builds, warnings, the first round's warm-up (compiles)
        row[key] = median(m[key] for m, _ in done)
        row[f"{variant}_over_raw"] = row[key] / row["raw_control_steps_per_s"]
        for own in ("over_physics", "physics_control_steps_per_s"):
            row[f"{variant}_{own}"] = median(m[f"{variant}_{own}"] for m, _ in done)
        if args.rounds > 1:
            row[f"{variant}_over_raw_rounds"] = [m[key] / raw for m, raw in done]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = args.device
    sim_seconds = args.seconds / 2 if args.sim_seconds is None else args.sim_seconds
    out_dir = os.environ.get("OUT")
    json_path = args.json or (Path(out_dir) / "gpu_bench.json" if out_dir else Path("gpu_bench.json"))

    log(f"repo {REPO}; importing torch, warp, mujoco_warp ...")
    info = environment_info(device)
    log("environment: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    if "gpu" in info:
        log(f"GPU: {info['gpu']}")

    import torch

    from dhal.envs.backends.warp_setup import DEFAULT_NCONMAX, DEFAULT_NJMAX
    from dhal.envs.registry import make_config, scene_path

    cfg = make_config(args.task)
    decimation = int(cfg.sim.decimation)
    xml = scene_path(cfg.scene)
    kw = {k: v for k, v in (("njmax", args.njmax), ("nconmax", args.nconmax)) if v is not None}
    payload: dict = {
        "environment": info,
        "task": args.task,
        "scene": str(xml.relative_to(REPO)) if xml.is_relative_to(REPO) else str(xml),
        "decimation": decimation,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "sim_seconds": sim_seconds,
        "njmax": args.njmax or DEFAULT_NJMAX,
        "nconmax": args.nconmax or DEFAULT_NCONMAX,
        "results": [],
    }

    def write() -> None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload, indent=2) + "\n")

    log(f"parity check on {device} against the CPU backend (3 envs, 20 substeps; compiles kernels) ...")
    try:
        payload["parity"] = check_parity(xml, device, kw)
        log(f"parity: {'OK' if payload['parity']['parity_ok'] else 'OUT OF TOLERANCE'} "
            f"{payload['parity']['parity_max_abs_error_20_substeps']} (graphs={payload['parity']['graphs']})")  # fmt: skip
    except Exception as err:  # noqa: BLE001 - report, then still try the benchmarks
        payload["parity"] = {"error": f"{type(err).__name__}: {err}"}
        log(f"parity check FAILED: {payload['parity']['error']}")
        traceback.print_exc()
    write()

    per_size = args.rounds * ((1 + len(args.variants)) * args.seconds + 20.0) + sim_seconds  # + builds, roughly
    for n in args.sizes:
        row: dict = {"num_envs": n}
        payload["results"].append(row)
        if time.perf_counter() - T0 + per_size > args.deadline:
            row["skipped"] = f"would pass the {args.deadline:.0f}s deadline"
            log(f"N={n}: skipped ({row['skipped']})")
            write()
            continue
        try:
            measure_size(row, n, args, xml, kw, decimation, sim_seconds)
        except Exception as err:  # noqa: BLE001 - record and go on with the next size
            row["error"] = f"{type(err).__name__}: {err}"
            log(f"N={n}: FAILED: {row['error']}")
            traceback.print_exc()
            sys.stdout.flush()
        finally:
            gc.collect()
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
                row["max_gpu_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
        write()

    if args.profile_steps > 0:
        n = max(args.sizes)
        profile_path = json_path.with_name("gpu_profile.txt")
        profile_path.unlink(missing_ok=True)
        for variant in args.profile_variants:
            key = f"profile_{variant}"
            log(f"N={n}: profiling {args.profile_steps} env steps ({variant}) ...")
            try:
                with variant_setup(variant):
                    payload[key] = profile_env(args.task, n, device, args.profile_steps, profile_path, variant,
                                               env_overrides(variant, kw))
                log(f"{key}: {payload[key]['kernel_launches_per_step']:.0f} kernel launches per step, "
                    f"syncs {payload[key]['host_syncs_per_step']}")
                gaps = payload[key].get("device_gaps")
                if gaps:  # on a GPU: how long it waited for the host, and for what
                    log(f"{key}: device busy {gaps['busy_fraction']:.0%} of {gaps['window_us_per_step']:.0f} us "
                        f"per step (profiled), idle {gaps['idle_us_per_step']:.0f} us; waited most for "
                        + "; ".join(f"{w['next'][:40]} {w['idle_us_per_step']:.0f} us" for w in gaps["waited_for"][:4]))
            except Exception as err:  # noqa: BLE001 - the table above is still worth bringing back
                payload[key] = {"error": f"{type(err).__name__}: {err}"}
                log(f"{key} FAILED: {payload[key]['error']}")
                traceback.print_exc()

    payload["total_s"] = time.perf_counter() - T0
    write()
    print()
    print(f"device: {info.get('gpu', device)}; decimation {decimation}; control steps/s summed over envs")
    header = f"{'N':>6} {'raw phys/s':>12} {'raw ctrl/s':>11} {'sim ctrl/s':>11}" + "".join(
        f" {v + ' ctrl/s':>16} {v + '/raw':>12}" for v in args.variants)
    print(header)
    for r in payload["results"]:
        if "error" in r or "skipped" in r:
            print(f"{r['num_envs']:>6} {r.get('error') or r.get('skipped')}")
            continue

        def f(key: str, fmt: str = ",.0f") -> str:
            return format(r[key], fmt) if key in r else "-"

        print(f"{r['num_envs']:>6} {f('raw_physics_steps_per_s'):>12} {f('raw_control_steps_per_s'):>11} "
              f"{f('sim_control_steps_per_s'):>11}" + "".join(
                  f" {f(v + '_control_steps_per_s'):>16} {f(v + '_over_raw', '.2f'):>12}" for v in args.variants))
    if args.rounds > 1:
        print(f"\nratio to raw in each of the {args.rounds} rounds (the table has medians):")
        for r in payload["results"]:
            rounds = {v: r[f"{v}_over_raw_rounds"] for v in args.variants if f"{v}_over_raw_rounds" in r}
            if rounds:
                print(f"{r['num_envs']:>6} " + "  ".join(
                    f"{v} {' '.join(f'{x:.2f}' for x in values)}" for v, values in rounds.items()))
    print("\nenv over its own physics (time inside the simulator's step, same run; physics alone ctrl/s):")
    for r in payload["results"]:
        own = {v: (r[f"{v}_over_physics"], r[f"{v}_physics_control_steps_per_s"])
               for v in args.variants if f"{v}_over_physics" in r}
        if own:
            print(f"{r['num_envs']:>6} " + "  ".join(f"{v} {x:.2f} ({p:,.0f})" for v, (x, p) in own.items()))
    print(f"\nwrote {json_path} (total {payload['total_s']:.0f}s)", flush=True)
    return 0 if all(not any(k.endswith("error") for k in r) for r in payload["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
