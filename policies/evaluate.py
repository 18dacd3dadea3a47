"""Evaluation of a deterministic DHAL policy: episodes, success, tracking errors and mode statistics.

Success (after the DHAL paper) is a pure function of an episode's summary, `episode_failures`:
an episode succeeds when it
* completes at least one full push/glide cycle: it lasts at least the clock period and spends
  some time in the push phase and some in the glide phase (the clock's hard indicator:
  push while sin(2 pi t / T) >= push_threshold and the command is not "stand still"), and the
  robot really did it: the pushing feet (FR, RR) were seen both to leave the board and to
  return to it (paper: "at least one full board-mount and dismount cycle"), so that a board that
  merely rolls down a slope under a standing robot is no success;
* moves the board more than 5 m (path length: the integral of |board forward speed| over time);
* ends by the time limit, not by any termination (fall, tilt, yaw mismatch, divergence, ...);
* never detaches the FL foot (attachment error above the termination threshold).

`run_evaluation` runs exactly N complete episodes over M parallel envs without favouring short
ones: env i is assigned episodes i, i + M, i + 2M, ... < N, i.e. a fixed quota, and its later
episodes are ignored. The env's randomness is seeded, the policy is deterministic, so a seed
fixes every number (for a given N and M).

Per-step quantities are read from the step's `extras` (taken before finished envs are reset):
board speed, base yaw rate, command, phase, attachment error and foot contacts from `metrics`;
why each env terminated from `terminations`; the free-foot contacts paired with the mode as in
training from `dynamics_targets["next_contacts"]`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dhal.envs.api import StepResult
from dhal.policies.metrics import contact_pattern_labels, normalized_mutual_information

TIME_OUT = "time_out"
FAILURE_NAMES = ("terminated", "detached", "no_full_cycle", "short_distance")
PUSHING_FEET = (0, 2)  # FR, RR in the env's foot order (go1.LEGS): the feet that leave the board
_TIME_EPS = 1e-6

# ---- success ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SuccessCriterion:
    min_distance_m: float = 5.0
    cycle_s: float = 4.0  # the push/glide clock period
    max_attachment_error_m: float = 0.05  # the env's detachment threshold
    # A pushing foot counts as on the board within mount_radius_m of its deck marker (the glide
    # rewards' on-board radius) and as off it beyond dismount_radius_m; the gap keeps a foot
    # hovering near the edge from counting as many mounts.
    mount_radius_m: float = 0.06
    dismount_radius_m: float = 0.12

    def describe(self) -> str:
        return (f"at least one full push/glide cycle ({self.cycle_s:g} s with time in both phases, and the "
                f"pushing feet seen both off the board (> {self.dismount_radius_m:g} m from their markers) and "
                f"back on it (< {self.mount_radius_m:g} m)), board path > {self.min_distance_m:g} m, ended by "
                f"the time limit (no termination), FL foot never further than {self.max_attachment_error_m:g} m "
                "from its mount")


@dataclass(frozen=True)
class EpisodeOutcome:
    length_s: float
    distance_m: float  # path length of the board
    push_s: float  # time in the push phase
    glide_s: float  # time in the glide phase
    termination_reasons: tuple[str, ...] = ()  # empty: the episode ended by its time limit
    max_attachment_error_m: float = 0.0
    # Changes between "pushing feet on the board" and "off it" (mount_transitions); >= 2 is a
    # mount and a dismount. None where the rollout did not record the feet (not checked then).
    mount_transitions: int | None = None


def episode_failures(outcome: EpisodeOutcome, criterion: SuccessCriterion = SuccessCriterion()) -> tuple[str, ...]:
    """Why an episode is not a success (a subset of FAILURE_NAMES); empty for a success."""
    failures = []
    if outcome.termination_reasons:
        failures.append("terminated")
    if "detached" in outcome.termination_reasons or outcome.max_attachment_error_m > criterion.max_attachment_error_m:
        failures.append("detached")
    if outcome.length_s < criterion.cycle_s - _TIME_EPS or outcome.push_s <= 0.0 or outcome.glide_s <= 0.0 \
            or (outcome.mount_transitions is not None and outcome.mount_transitions < 2):
        failures.append("no_full_cycle")
    if not outcome.distance_m > criterion.min_distance_m:
        failures.append("short_distance")
    return tuple(failures)


def is_success(outcome: EpisodeOutcome, criterion: SuccessCriterion = SuccessCriterion()) -> bool:
    return not episode_failures(outcome, criterion)


def criterion_for(env: Any, min_distance_m: float = 5.0) -> SuccessCriterion:
    cfg = env.cfg
    return SuccessCriterion(min_distance_m=min_distance_m, cycle_s=float(cfg.clock.period_s),
                            max_attachment_error_m=float(cfg.terminations.max_attachment_error),
                            mount_radius_m=float(cfg.rewards.on_board_radius))


def mount_transitions(marker_distance: np.ndarray, criterion: SuccessCriterion) -> int:
    """How often the pushing feet went from on the board to off it or back, over an episode's
    per-step foot-to-marker distances [T, 4]. On: every pushing foot within mount_radius_m; off:
    any beyond dismount_radius_m; in between the previous state holds."""
    pushing = np.asarray(marker_distance)[:, PUSHING_FEET]
    state = np.where((pushing < criterion.mount_radius_m).all(-1), 1,
                     np.where((pushing > criterion.dismount_radius_m).any(-1), -1, 0))
    known = state[state != 0]
    return int(np.count_nonzero(known[1:] != known[:-1]))


# ---- mode statistics ----------------------------------------------------------------------------------

def mode_statistics(modes: Sequence[np.ndarray], contact_labels: Sequence[np.ndarray], num_modes: int,
                    dt: float) -> dict[str, Any]:
    """Occupancy, switches per second, dwell times and mode/contact NMI over episodes.

    `modes[e]` and `contact_labels[e]` are episode e's per-step argmax mode and contact pattern.
    Switches and dwell runs never cross episode ends; a run cut by an episode end counts as a
    dwell of its observed length."""
    if len(modes) != len(contact_labels):
        raise ValueError("one contact labelling per episode is needed")
    episodes = [(np.asarray(m, dtype=np.int64).reshape(-1), np.asarray(c, dtype=np.int64).reshape(-1))
                for m, c in zip(modes, contact_labels) if len(m)]
    if not episodes:
        raise ValueError("no steps to take mode statistics of")
    all_modes = np.concatenate([m for m, _ in episodes])
    all_labels = np.concatenate([c for _, c in episodes])
    counts = np.bincount(all_modes, minlength=num_modes)
    switches = 0
    runs: dict[int, list[int]] = defaultdict(list)
    for m, _ in episodes:
        change = np.flatnonzero(m[1:] != m[:-1]) + 1
        switches += len(change)
        bounds = np.concatenate(([0], change, [len(m)]))
        for start, stop in zip(bounds[:-1], bounds[1:]):
            runs[int(m[start])].append(int(stop - start))
    all_runs = [r for rs in runs.values() for r in rs]
    seconds = len(all_modes) * dt
    return {
        "num_modes": int(num_modes),
        "occupancy": [float(c) / len(all_modes) for c in counts[:num_modes]],
        "switches": int(switches),
        "switch_rate_per_s": float(switches / seconds),
        "mean_dwell_s": float(np.mean(all_runs) * dt),
        "mean_dwell_s_per_mode": [float(np.mean(runs[k]) * dt) if runs.get(k) else None for k in range(num_modes)],
        "contact_nmi": normalized_mutual_information(torch.from_numpy(all_modes), torch.from_numpy(all_labels)),
    }


# ---- recording a rollout -------------------------------------------------------------------------------

class StepLog:
    """Per-step, per-env records of a rollout; `arrays()` gives numpy arrays [T, N, ...].

    Fields: mode, mode_probs [K], free_contacts [3] (FR, RR, RL), foot_contact [4], phase, push
    (clock indicator), board_speed, command_vx, command_yaw, yaw_rate, attachment_error,
    marker_distance [4] (where the env reports it), terminated, truncated, reasons (bit r set:
    reason_names[r] held when the env terminated)."""

    def __init__(self, env: Any) -> None:
        from dhal.envs.skateboard.clock import phase_indicators

        self.dt = float(env.step_dt)
        self._clock = env.cfg.clock
        self._indicators = phase_indicators
        self.reason_names: list[str] = []
        self._rows: dict[str, list[np.ndarray]] = defaultdict(list)

    def add(self, result: StepResult, mode: torch.Tensor, mode_probs: torch.Tensor | None) -> None:
        metrics = result.extras["metrics"]
        n = result.reward.shape[0]
        command = torch.stack([metrics["command_vx"], torch.zeros_like(metrics["command_vx"]),
                               metrics["command_yaw_rate"]], dim=-1)
        push = self._indicators(metrics["phase"], command, self._clock)["push"] > 0.5
        reasons = torch.zeros(n, dtype=torch.int64)
        for name, mask in result.extras["terminations"].items():
            if name not in self.reason_names:
                self.reason_names.append(name)
            reasons |= mask.cpu().long() << self.reason_names.index(name)
        values = {
            "mode": mode, "free_contacts": result.extras["dynamics_targets"]["next_contacts"],
            "foot_contact": metrics["foot_contact"], "phase": metrics["phase"], "push": push,
            "board_speed": metrics["board_speed"], "command_vx": metrics["command_vx"],
            "command_yaw": metrics["command_yaw_rate"], "yaw_rate": metrics["yaw_rate"],
            "attachment_error": metrics["attachment_error"], "terminated": result.terminated,
            "truncated": result.truncated, "reasons": reasons,
        }
        if "marker_distance" in metrics:
            values["marker_distance"] = metrics["marker_distance"]
        if mode_probs is not None:
            values["mode_probs"] = mode_probs
        for key, value in values.items():
            self._rows[key].append(value.detach().cpu().numpy().copy())

    def arrays(self) -> dict[str, np.ndarray]:
        return {key: np.stack(rows) for key, rows in self._rows.items()}

    def close(self) -> None:
        """Nothing to release; kept so callers can treat the log like other resources."""


def reasons_of(bits: int, reason_names: Sequence[str]) -> tuple[str, ...]:
    return tuple(name for r, name in enumerate(reason_names) if bits >> r & 1)


# ---- episodes --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Episode:
    env: int
    index: int  # this env's episode number
    start: int  # rows [start, stop) of the step arrays
    stop: int
    outcome: EpisodeOutcome
    lin_vel_abs_error: float  # mean |v_cmd - v_board| over the episode's steps
    yaw_rate_abs_error: float  # mean |yaw_cmd - yaw rate|
    failures: tuple[str, ...]

    @property
    def success(self) -> bool:
        return not self.failures


def split_episodes(done: np.ndarray, quotas: Sequence[int]) -> list[tuple[int, int, int, int]]:
    """(env, index, start, stop) of the first quotas[env] complete episodes of each env, from the
    per-step done flags [T, N]; ordered by env, then episode."""
    found = []
    for env, quota in enumerate(quotas):
        ends = np.flatnonzero(done[:, env])[:quota]
        starts = np.concatenate(([0], ends[:-1] + 1)) if len(ends) else np.zeros(0, dtype=np.int64)
        found += [(env, k, int(s), int(e) + 1) for k, (s, e) in enumerate(zip(starts, ends))]
    return found


def summarise_episode(arrays: dict[str, np.ndarray], env: int, index: int, start: int, stop: int, dt: float,
                      reason_names: Sequence[str], criterion: SuccessCriterion) -> Episode:
    rows = slice(start, stop)
    push = arrays["push"][rows, env]
    last = stop - 1
    reasons = reasons_of(int(arrays["reasons"][last, env]), reason_names) if arrays["terminated"][last, env] else ()
    if arrays["terminated"][last, env] and not reasons:
        reasons = ("unknown",)
    outcome = EpisodeOutcome(
        length_s=(stop - start) * dt,
        distance_m=float(np.abs(arrays["board_speed"][rows, env]).sum() * dt),
        push_s=float(push.sum() * dt),
        glide_s=float((~push).sum() * dt),
        termination_reasons=reasons,
        max_attachment_error_m=float(arrays["attachment_error"][rows, env].max()),
        mount_transitions=mount_transitions(arrays["marker_distance"][rows, env], criterion)
        if "marker_distance" in arrays else None,
    )
    return Episode(
        env=env, index=index, start=start, stop=stop, outcome=outcome,
        lin_vel_abs_error=float(np.abs(arrays["command_vx"][rows, env] - arrays["board_speed"][rows, env]).mean()),
        yaw_rate_abs_error=float(np.abs(arrays["command_yaw"][rows, env] - arrays["yaw_rate"][rows, env]).mean()),
        failures=episode_failures(outcome, criterion),
    )


@dataclass
class Evaluation:
    episodes: list[Episode]
    arrays: dict[str, np.ndarray]  # the whole rollout, [T, N, ...]
    reason_names: list[str]
    dt: float
    num_modes: int
    criterion: SuccessCriterion
    steps: int
    seconds: float  # wall time of the rollout


def run_evaluation(env: Any, policy: Callable[[dict[str, torch.Tensor]], torch.Tensor], actor: Any, episodes: int,
                   criterion: SuccessCriterion | None = None, progress: bool = True) -> Evaluation:
    """Step `env` with the deterministic `policy` until each env has completed its quota of the
    N = `episodes` episodes (env i: episodes i, i + M, ...). The env should be freshly made."""
    import time

    if episodes < 1:
        raise ValueError("episodes must be >= 1")
    n = int(env.num_envs)
    quotas = [episodes // n + (1 if i < episodes % n else 0) for i in range(n)]
    criterion = criterion or criterion_for(env)
    log = StepLog(env)
    completed = np.zeros(n, dtype=np.int64)
    limit = max(quotas) * int(env.max_episode_length) + 1
    obs = env.observations()
    steps = 0
    start = time.perf_counter()
    bar = tqdm(total=episodes, desc="eval", unit="episode", disable=not progress, dynamic_ncols=True, mininterval=0.5)
    try:
        while (completed < quotas).any():
            if steps >= limit:
                raise RuntimeError(f"episodes did not end within {limit} steps; is the env's time limit set?")
            actions = policy(obs)
            mode = actor.last_mode
            probs = actor.last_mode_probs
            result = env.step(actions.to(env.device))
            log.add(result, mode, probs)
            steps += 1
            done = (result.terminated | result.truncated).cpu().numpy()
            counted_before = int(np.minimum(completed, quotas).sum())
            completed += done
            bar.update(int(np.minimum(completed, quotas).sum()) - counted_before)
            bar.set_postfix_str(f"{steps} steps", refresh=False)
            obs = result.observations
    finally:
        bar.close()
        log.close()
    seconds = time.perf_counter() - start
    arrays = log.arrays()
    done = arrays["terminated"] | arrays["truncated"]
    found = [summarise_episode(arrays, e, k, s, t, log.dt, log.reason_names, criterion)
             for e, k, s, t in split_episodes(done, quotas)]
    return Evaluation(episodes=found, arrays=arrays, reason_names=list(log.reason_names), dt=log.dt,
                      num_modes=int(actor.modes_cfg.num_modes), criterion=criterion, steps=steps, seconds=seconds)


def _stats(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max())}


def summary(evaluation: Evaluation) -> dict[str, Any]:
    """The JSON-ready numbers of an evaluation (no wall times, so a seed reproduces it exactly)."""
    eps = evaluation.episodes
    a = evaluation.arrays
    terminations: dict[str, int] = {TIME_OUT: sum(1 for e in eps if not e.outcome.termination_reasons)}
    for name in sorted({r for e in eps for r in e.outcome.termination_reasons}):
        terminations[name] = sum(1 for e in eps if name in e.outcome.termination_reasons)
    rows = [(e.env, np.arange(e.start, e.stop)) for e in eps]
    steps = sum(len(r) for _, r in rows)
    lin = sum(float(np.abs(a["command_vx"][r, env] - a["board_speed"][r, env]).sum()) for env, r in rows) / steps
    yaw = sum(float(np.abs(a["command_yaw"][r, env] - a["yaw_rate"][r, env]).sum()) for env, r in rows) / steps
    modes = [a["mode"][r, env] for env, r in rows]
    labels = [contact_pattern_labels(torch.from_numpy(a["free_contacts"][r, env])).numpy() for env, r in rows]
    return {
        "episodes": len(eps),
        "success_rate": sum(e.success for e in eps) / len(eps),
        "successes": sum(e.success for e in eps),
        "success_criterion": {**asdict(evaluation.criterion), "definition": evaluation.criterion.describe()},
        "failures": {name: sum(1 for e in eps if name in e.failures) for name in FAILURE_NAMES},
        "distance_m": _stats([e.outcome.distance_m for e in eps]),  # board path length per episode
        "episode_length_s": _stats([e.outcome.length_s for e in eps]),
        "tracking": {
            "lin_vel_abs_error_mps": lin,
            "yaw_rate_abs_error_radps": yaw,
            "definition": "means over every control step of the episodes: |command vx - board forward speed "
                          "(deck frame)| and |command yaw rate - base yaw rate (body frame)|",
        },
        "falls": sum(1 for e in eps if e.outcome.termination_reasons),
        "terminations": terminations,  # episodes per end reason (one episode may have several)
        "modes": mode_statistics(modes, labels, evaluation.num_modes, evaluation.dt),
        "per_episode": [
            {"env": e.env, "index": e.index, **asdict(e.outcome),
             "termination_reasons": list(e.outcome.termination_reasons),
             "lin_vel_abs_error_mps": e.lin_vel_abs_error, "yaw_rate_abs_error_radps": e.yaw_rate_abs_error,
             "success": e.success, "failures": list(e.failures)}
            for e in eps
        ],
    }
