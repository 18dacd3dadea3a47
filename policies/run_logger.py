"""rsl-rl's run logger with two changes: tagged scalars and a console block only when verbose,
and episode bookkeeping without a host read per step.

rsl-rl's `Logger.process_env_step` asks which envs finished (`nonzero`, then two copies to the
host) at every step. On a GPU each such read stalls the launch queue, so the env's next step
cannot be queued while this one runs. Here the finished episodes' returns and lengths stay on
the device and move to the host once per iteration, when `log` runs; the buffers and scalars
come out the same (same episodes, same order).
"""

from __future__ import annotations

import contextlib
import io
import statistics
from typing import Any

import torch
from rsl_rl.utils.logger import Logger


class DHALLogger(Logger):
    """rsl-rl's logger, plus tagged scalars; its console block only when `verbose`."""

    verbose: bool = False
    writer: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ended: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # per step: done, return, length

    def init_logging_writer(self) -> None:
        with self._console():
            super().init_logging_writer()

    def process_env_step(self, rewards: torch.Tensor, dones: torch.Tensor, extras: dict,
                         intrinsic_rewards: torch.Tensor | None = None) -> None:
        if self.writer is None or intrinsic_rewards is not None:  # RND (not used by DHAL): rsl-rl's way
            super().process_env_step(rewards, dones, extras, intrinsic_rewards)
            return
        if "episode" in extras:
            self.ep_extras.append(extras["episode"])
        elif "log" in extras:
            self.ep_extras.append(extras["log"])
        self.cur_reward_sum += rewards
        self.cur_episode_length += 1
        done = dones > 0
        self._ended.append((done, torch.where(done, self.cur_reward_sum, 0.0),
                            torch.where(done, self.cur_episode_length, 0.0)))
        self.cur_reward_sum.masked_fill_(done, 0.0)
        self.cur_episode_length.masked_fill_(done, 0.0)

    def log(self, it: int, start_it: int, total_it: int, collect_time: float, learn_time: float,
            loss_dict: dict, learning_rate: float, action_std: torch.Tensor, rnd_weight: float | None,
            print_minimal: bool = False, width: int = 80, pad: int = 40) -> None:
        self._move_ended_episodes()
        plain = {k: v for k, v in loss_dict.items() if "/" not in k}
        if self.writer is not None:
            for key, value in loss_dict.items():
                if "/" in key:
                    self.writer.add_scalar(key, value, it)
        with self._console():
            super().log(it, start_it, total_it, collect_time, learn_time, plain, learning_rate, action_std,
                        rnd_weight, print_minimal, width, pad)

    def mean_reward(self) -> float | None:
        self._move_ended_episodes()
        return statistics.mean(self.rewbuffer) if self.rewbuffer else None

    def close(self) -> None:
        if self.writer is not None and hasattr(self.writer, "close"):
            self.writer.flush()
            self.writer.close()
        self.writer = None

    def _move_ended_episodes(self) -> None:
        """The episodes that ended since the last call, into rsl-rl's buffers (one host read)."""
        if not self._ended:
            return
        done, returns, lengths = (torch.stack(parts) for parts in zip(*self._ended))
        self._ended.clear()
        self.rewbuffer.extend(returns[done].cpu().tolist())
        self.lenbuffer.extend(lengths[done].cpu().tolist())

    def _console(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext() if self.verbose else contextlib.redirect_stdout(io.StringIO())
