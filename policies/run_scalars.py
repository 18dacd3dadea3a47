"""A training run's TensorBoard scalars, read back from its event files (for summaries and plots
of runs brought back from another machine)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path


def read_scalars(run: Path, tags: Collection[str] | None = None) -> dict[str, dict[int, float]]:
    """{tag: {iteration: value}} over every event file of the run folder `run` (a resumed run has
    several; a later file overrides an earlier one at the same iteration), for `tags` or all."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(run.glob("events.out.tfevents.*"))
    if not events:
        raise FileNotFoundError(f"no TensorBoard events in {run}")
    series: dict[str, dict[int, float]] = {}
    for path in events:
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
        accumulator.Reload()
        present = accumulator.Tags()["scalars"]
        for tag in present if tags is None else set(tags) & set(present):
            series.setdefault(tag, {}).update({e.step: e.value for e in accumulator.Scalars(tag)})
    return series
