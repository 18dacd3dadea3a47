"""Reading a run's TensorBoard scalars back: every event file, later files winning."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dhal.policies.run_scalars import read_scalars


def write_events(run: Path, suffix: str, points: dict[str, list[tuple[int, float]]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(run), filename_suffix=suffix)
    for tag, values in points.items():
        for step, value in values:
            writer.add_scalar(tag, value, step)
    writer.close()


def test_a_resumed_run_is_read_as_one_series(tmp_path: Path) -> None:
    write_events(tmp_path, ".a", {"Train/mean_reward": [(0, 1.0), (1, 2.0)], "Perf/collection_time": [(0, 0.5)]})
    time.sleep(1.1)  # event file names carry the second they were opened: keep the order
    write_events(tmp_path, ".b", {"Train/mean_reward": [(1, 3.0), (2, 4.0)]})
    assert read_scalars(tmp_path) == {"Train/mean_reward": {0: 1.0, 1: 3.0, 2: 4.0}, "Perf/collection_time": {0: 0.5}}
    assert read_scalars(tmp_path, {"Perf/collection_time", "absent"}) == {"Perf/collection_time": {0: 0.5}}


def test_a_folder_without_events_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no TensorBoard events"):
        read_scalars(tmp_path)
