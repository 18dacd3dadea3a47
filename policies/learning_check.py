"""The learning check: does a fixed-length training run beat a policy that knows nothing?

A trained checkpoint (deterministic actions) and uniform random actions each drive the training
task on the same seed for the same number of control steps. The check passes when the trained
policy's episodes are `min_length_ratio` times longer and its glide and push returns (reward
per episode) are `min_return_ratio` times the random policy's. It can fail: it reports which
criterion missed by how much, and `dhal bench learning` exits non-zero.

Returns grow with survival. The per-step glide and push rewards, which do not, are reported next
to the verdict: they show whether the policy does the task better while it is on the board, not
only for longer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from dhal.envs.registry import make_env

ActionFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]

# Tags dhal train writes, plotted in the curve figure: (panel title, tags).
CURVE_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("mean episode length (steps)", ("Train/mean_episode_length",)),
    ("mean episode return", ("Train/mean_reward",)),
    ("reward per step by group", ("Reward/glide_per_step", "Reward/push_per_step", "Reward/sim2real_per_step")),
    ("mode vs contact NMI", ("Modes/argmax_contact_nmi",)),
)


@dataclass
class RolloutStats:
    steps: int
    num_envs: int
    episodes: int  # completed within the rollout
    # Control steps per episode, the episodes still running at the end counted at their length
    # so far: counting only completed episodes would favour a policy that falls early over one
    # that never falls.
    mean_episode_length: float
    reward_per_step: dict[str, float]  # by reward group, mean over envs and steps

    @property
    def return_per_episode(self) -> dict[str, float]:
        """Reward per episode by group (running episodes counted as far as they got)."""
        return {group: value * self.mean_episode_length for group, value in self.reward_per_step.items()}


@dataclass
class Criterion:
    name: str
    trained: float
    random: float
    required_ratio: float

    @property
    def ratio(self) -> float:
        return self.trained / self.random if self.random > 0 else float("inf")

    @property
    def passed(self) -> bool:
        return self.trained >= self.required_ratio * self.random


@dataclass
class LearningVerdict:
    trained: RolloutStats
    random: RolloutStats
    criteria: list[Criterion] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)

    def to_dict(self) -> dict[str, Any]:
        def rollout(s: RolloutStats) -> dict[str, Any]:
            return {**asdict(s), "return_per_episode": s.return_per_episode}

        return {"passed": self.passed, "trained": rollout(self.trained), "random": rollout(self.random),
                "criteria": [{**asdict(c), "ratio": c.ratio, "passed": c.passed} for c in self.criteria]}

    def table(self) -> str:
        lines = [f"  {'criterion':<28} {'trained':>9} {'random':>9} {'ratio':>7} {'needed':>7}  verdict"]
        for c in self.criteria:
            lines.append(f"  {c.name:<28} {c.trained:>9.4f} {c.random:>9.4f} {c.ratio:>7.2f} "
                         f"{c.required_ratio:>7.2f}  {'PASS' if c.passed else 'FAIL'}")
        lines.append("  for information (not judged): reward per step while on the board")
        for group, value in self.trained.reward_per_step.items():
            base = self.random.reward_per_step[group]
            ratio = value / base if base > 0 else float("inf")
            lines.append(f"  {group + ' reward per step':<28} {value:>9.4f} {base:>9.4f} {ratio:>7.2f}")
        return "\n".join(lines)


def random_actions(env: Any, generator: torch.Generator) -> ActionFn:
    low, high = float(env.action_low), float(env.action_high)

    def act(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return low + (high - low) * torch.rand(env.num_envs, env.num_actions, generator=generator)

    return act


def rollout_stats(env: Any, act: ActionFn, steps: int) -> RolloutStats:
    """Run `steps` control steps from a fresh reset: episode lengths (censored at the end) and
    per-step group rewards."""
    obs = env.reset()
    group_sums = torch.zeros(len(env.reward_group_names))
    lengths: list[float] = []
    with torch.inference_mode():
        for _ in range(steps):
            before = env.episode_length_buf.clone()
            result = env.step(act(obs))
            obs = result.observations
            group_sums += result.extras["reward_groups"].sum(0).cpu()
            done = (result.terminated | result.truncated).cpu()
            lengths += (before.cpu()[done] + 1).float().tolist()
    per_step = (group_sums / (steps * env.num_envs)).tolist()
    completed = len(lengths)
    lengths += env.episode_length_buf.cpu().float().tolist()
    return RolloutStats(steps=steps, num_envs=env.num_envs, episodes=completed,
                        mean_episode_length=sum(lengths) / len(lengths),
                        reward_per_step=dict(zip(env.reward_group_names, per_step)))


def judge(trained: RolloutStats, random: RolloutStats, min_length_ratio: float, min_return_ratio: float,
          reward_groups: Sequence[str] = ("glide", "push")) -> LearningVerdict:
    criteria = [Criterion("mean episode length (steps)", trained.mean_episode_length,
                          random.mean_episode_length, min_length_ratio)]
    for group in reward_groups:
        if group not in trained.reward_per_step:
            raise KeyError(f"reward group {group!r} is not in the task's groups {sorted(trained.reward_per_step)}")
        criteria.append(Criterion(f"{group} return per episode", trained.return_per_episode[group],
                                  random.return_per_episode[group], min_return_ratio))
    return LearningVerdict(trained=trained, random=random, criteria=criteria)


def compare_with_random(checkpoint: Path, num_envs: int, steps: int, seed: int,
                        min_length_ratio: float, min_return_ratio: float) -> LearningVerdict:
    """The checkpoint's deterministic policy and random actions on the task it was trained on."""
    from dhal.policies.inference import check_env_fits, checkpoint_env_overrides, load_checkpoint_policy

    loaded = load_checkpoint_policy(checkpoint)
    task = loaded.config.get("env", {}).get("task", "dhal-skateboard")
    overrides = checkpoint_env_overrides(loaded.config)
    env = make_env(task, num_envs=num_envs, seed=seed, overrides=overrides)
    try:
        check_env_fits(env, loaded)
        trained = rollout_stats(env, loaded.policy, steps)
    finally:
        env.close()
    env = make_env(task, num_envs=num_envs, seed=seed, overrides=overrides)
    try:
        random = rollout_stats(env, random_actions(env, torch.Generator().manual_seed(seed)), steps)
    finally:
        env.close()
    return judge(trained, random, min_length_ratio, min_return_ratio)


def plot_curves(run: Path, out: Path, random: RolloutStats | None = None,
                panels: Sequence[tuple[str, Sequence[str]]] = CURVE_PANELS) -> Path:
    """A run's TensorBoard curves (`run`: a run folder, all its event files, or one event file),
    one panel per (title, tags), with the random policy's level drawn in where it applies."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dhal.policies.plotting import pyplot_agg

    events = [run] if run.is_file() else sorted(run.glob("events.out.tfevents.*"))
    if not events:
        raise FileNotFoundError(f"no TensorBoard events in {run}")
    accumulators = []
    for path in events:  # each file read once, not once per panel
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
        accumulator.Reload()
        accumulators.append(accumulator)
    plt = pyplot_agg()
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(12, 4 * rows), squeeze=False)
    for ax, (title, tags) in zip(axes.flat, panels):
        for accumulator in accumulators:
            for tag in tags:
                if tag in accumulator.Tags()["scalars"]:
                    points = accumulator.Scalars(tag)
                    ax.plot([p.step for p in points], [p.value for p in points], label=tag.split("/")[-1])
        if random is not None and title.startswith("mean episode length"):
            ax.axhline(random.mean_episode_length, color="k", linestyle="--", label="random actions")
        if random is not None and title.startswith("reward per step"):
            for i, (group, value) in enumerate(random.reward_per_step.items()):
                ax.axhline(value, color=f"C{i}", linestyle="--", linewidth=0.8, label=f"{group} (random)")
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        else:  # a run too short (or too old) to have logged these tags
            ax.text(0.5, 0.5, "not logged in this run", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
