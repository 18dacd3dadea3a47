"""Per-step quantities of a rollout (env 0 and the mean over envs), saved as .npz and as a plot."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from dhal.envs.api import StepResult

# Series names; each is stored as "<name>/env0" and "<name>/mean", shape [T, k].
REWARD_TOTAL = "reward/total"
REWARD_GROUPS = "reward/groups"
TERMINATED = "done/terminated"
TRUNCATED = "done/truncated"
METRIC_PREFIX = "metrics/"


class RolloutRecorder:
    """Collects what one `StepResult` says about env 0 and about all envs on average."""

    def __init__(self, step_dt: float, reward_group_names: tuple[str, ...]) -> None:
        self.step_dt = step_dt
        self.reward_group_names = reward_group_names
        self.num_steps = 0
        self._env0: dict[str, list[np.ndarray]] = defaultdict(list)
        self._mean: dict[str, list[np.ndarray]] = defaultdict(list)

    def add(self, result: StepResult) -> None:
        self.num_steps += 1
        self._add(REWARD_TOTAL, result.reward)
        if "reward_groups" in result.extras:
            self._add(REWARD_GROUPS, result.extras["reward_groups"])
            self.reward_group_names = tuple(result.extras.get("reward_group_names", self.reward_group_names))
        self._add(TERMINATED, result.terminated)
        self._add(TRUNCATED, result.truncated)
        for name, value in result.extras.get("metrics", {}).items():
            self._add(METRIC_PREFIX + name, value)

    def _add(self, name: str, value: torch.Tensor) -> None:
        per_env = value.detach().to("cpu", torch.float32).reshape(value.shape[0], -1)
        self._env0[name].append(per_env[0].numpy())
        self._mean[name].append(per_env.mean(0).numpy())

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"time": np.arange(1, self.num_steps + 1) * self.step_dt}
        for name in self._env0:
            out[f"{name}/env0"] = np.stack(self._env0[name])
            out[f"{name}/mean"] = np.stack(self._mean[name])
        return out


def save_arrays(arrays: dict[str, np.ndarray], path: Path) -> None:
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]


def plot_rollout(
    arrays: dict[str, np.ndarray], reward_group_names: tuple[str, ...], path: Path, title: str
) -> None:
    """One panel per quantity: env 0 solid, the mean over envs dashed, one colour per component."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on training machines
    import matplotlib.pyplot as plt

    series = [name.removesuffix("/env0") for name in arrays if name.endswith("/env0")]
    reward_panel = [name for name in (REWARD_TOTAL, REWARD_GROUPS) if name in series]
    done_panel = [name for name in (TERMINATED, TRUNCATED) if name in series]
    panels = [("reward", reward_panel), ("episode ends", done_panel)]
    panels += [(name.removeprefix(METRIC_PREFIX), [name]) for name in series if name.startswith(METRIC_PREFIX)]

    columns = 2
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(12, 2.6 * rows), sharex=True, squeeze=False)
    time = arrays["time"]
    for axis, (panel_title, names) in zip(axes.flat, panels):
        colour = 0
        for name in names:
            labels = _component_labels(name, arrays[f"{name}/env0"].shape[1], reward_group_names)
            for k, label in enumerate(labels):
                style = {"color": f"C{colour % 10}"}
                axis.plot(time, arrays[f"{name}/env0"][:, k], label=f"{label} (env 0)", **style)
                axis.plot(time, arrays[f"{name}/mean"][:, k], linestyle="--", label=f"{label} (mean)", **style)
                colour += 1
        axis.set_title(panel_title, fontsize=10)
        axis.grid(alpha=0.3)
        axis.tick_params(labelbottom=True)  # sharex hides them above the last row
        if colour:
            axis.legend(fontsize=6, ncol=2, loc="best")
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    for axis in axes[-1]:
        axis.set_xlabel("time (s)")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _component_labels(name: str, width: int, reward_group_names: tuple[str, ...]) -> list[str]:
    if name == REWARD_GROUPS and len(reward_group_names) == width:
        return list(reward_group_names)
    short = name.rsplit("/", 1)[-1]
    return [short] if width == 1 else [f"{short}[{k}]" for k in range(width)]
