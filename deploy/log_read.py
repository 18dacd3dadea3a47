"""Reading the logs that `McapLogger` (`dhal.deploy.mcap_log`) writes, also a file cut short by a
crash (up to its last complete chunk): `read_log` stacks the PolicyStep records per field and keeps
each raw topic's CDR bytes, decoded on demand without ROS; `summary` describes a file as
`ros2 bag info` would.
"""

from __future__ import annotations

import datetime
import functools
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mcap.writer
import numpy as np
import numpy.typing as npt
import zstandard
from mcap.exceptions import EndOfFile, McapError
from mcap.records import Attachment, Channel, Footer, Message, Metadata, Schema
from mcap.stream_reader import StreamReader
from mcap_ros2.decoder import DecoderFactory

from dhal.deploy.log_schema import ARRAY_FIELDS, POLICY_STEP_TOPIC, POLICY_STEP_TYPE, McapLogError, decode_policy_step
from dhal.deploy.mcap_log import STATS_METADATA_NAME

__all__ = ["LoggedRun", "LoggedSteps", "TopicMessages", "read_log", "summary"]


@dataclass(eq=False)
class LoggedSteps:
    """The PolicyStep records of a run stacked per field: arrays [T] or [T, n].

    A step that logged an array field empty (e.g. joint_targets while nothing was published) has a
    NaN row there when other steps logged n values.
    """

    log_time_ns: npt.NDArray[np.int64]
    stamp_ns: npt.NDArray[np.int64]
    step: npt.NDArray[np.uint32]
    fsm_state: npt.NDArray[np.uint8]
    robot_mode: npt.NDArray[np.uint8]
    observation: npt.NDArray[np.float32]
    action: npt.NDArray[np.float32]
    joint_targets: npt.NDArray[np.float32]
    policy_targets: npt.NDArray[np.float32]
    mode_probs: npt.NDArray[np.float32]
    latent: npt.NDArray[np.float32]
    command: npt.NDArray[np.float32]
    inference_ms: npt.NDArray[np.float64]
    state_age_ms: npt.NDArray[np.float64]
    loop_period_ms: npt.NDArray[np.float64]
    clamp_flags: npt.NDArray[np.uint32]
    fault_flags: npt.NDArray[np.uint32]

    def __len__(self) -> int:
        return len(self.step)


@dataclass(eq=False)
class TopicMessages:
    """The messages of one raw topic: CDR bytes (for rclpy's `deserialize_message`) and decoded objects."""

    type: str
    log_time_ns: npt.NDArray[np.int64]
    data: list[bytes]
    decode: Callable[[bytes], Any] = field(repr=False)

    def __len__(self) -> int:
        return len(self.data)

    @functools.cached_property
    def messages(self) -> list[Any]:
        """Decoded with mcap-ros2-support from the schema in the file (no ROS needed); attributes as in rclpy."""
        return [self.decode(blob) for blob in self.data]


@dataclass(eq=False)
class LoggedRun:
    path: str
    steps: LoggedSteps
    topics: dict[str, TopicMessages]
    attachments: dict[str, bytes]
    metadata: dict[str, dict[str, str]]
    complete: bool  # the writer closed the file; False after a crash or kill
    problem: str | None  # why reading stopped before a clean end, if it did

    @property
    def dropped(self) -> int | None:
        """Messages the logger dropped, as it recorded at close (None for a file that was not closed)."""
        stats = self.metadata.get(STATS_METADATA_NAME)
        return int(stats["dropped"]) if stats and "dropped" in stats else None


@dataclass
class _Scan:
    path: str
    size: int
    schemas: dict[int, Schema] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    messages: dict[int, list[Message]] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    complete: bool = False
    problem: str | None = None


def _scan(path: str | os.PathLike[str]) -> _Scan:
    """Every record up to the end, or up to the last complete chunk of a truncated file."""
    name = os.fspath(path)
    try:
        size = os.path.getsize(name)
        stream = open(name, "rb")
    except OSError as exc:
        raise McapLogError(f"cannot read log {name}: {exc}") from exc
    with stream:
        if size == 0:
            raise McapLogError(f"log {name} is empty (0 bytes)")
        head = stream.read(len(mcap.writer.MCAP0_MAGIC))
        if head != mcap.writer.MCAP0_MAGIC:
            raise McapLogError(f"{name} is not an MCAP file: it starts with {head!r}")
        stream.seek(0)
        scan = _Scan(name, size)
        try:
            for record in StreamReader(stream, validate_crcs=True).records:
                if isinstance(record, Message):
                    scan.messages.setdefault(record.channel_id, []).append(record)
                elif isinstance(record, Schema):
                    scan.schemas[record.id] = record
                elif isinstance(record, Channel):
                    scan.channels[record.id] = record
                elif isinstance(record, Attachment):
                    scan.attachments.append(record)
                elif isinstance(record, Metadata):
                    scan.metadata[record.name] = dict(record.metadata)
                elif isinstance(record, Footer):
                    scan.complete = True
        except EndOfFile:
            scan.problem = f"truncated at {size} bytes (its writer did not close it); read to the last complete chunk"
        except (McapError, ValueError, struct.error, zstandard.ZstdError) as exc:
            scan.problem = f"corrupt record, read up to the one before: {exc!r}"
    scan.complete = scan.complete and scan.problem is None
    return scan


def _stack_rows(path: str, name: str, rows: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
    lengths = {row.size for row in rows}
    widths = lengths - {0}
    if len(widths) > 1:
        raise McapLogError(f"{path}: PolicyStep.{name} changes length within the run: {sorted(lengths)}")
    width = widths.pop() if widths else 0
    if len(lengths) == 1:
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)
    stacked = np.full((len(rows), width), np.nan, dtype=np.float32)
    for i, row in enumerate(rows):
        if row.size:
            stacked[i] = row
    return stacked


def _steps(path: str, messages: list[Message]) -> LoggedSteps:
    records = [decode_policy_step(m.data) for m in messages]
    arrays = {name: _stack_rows(path, name, [getattr(r, name) for r in records]) for name in ARRAY_FIELDS}

    def column(name: str, dtype: type[np.generic]) -> Any:
        return np.array([getattr(r, name) for r in records], dtype=dtype)

    return LoggedSteps(
        log_time_ns=np.array([m.log_time for m in messages], dtype=np.int64),
        stamp_ns=column("stamp_ns", np.int64), step=column("step", np.uint32),
        fsm_state=column("fsm_state", np.uint8), robot_mode=column("robot_mode", np.uint8),
        inference_ms=column("inference_ms", np.float64), state_age_ms=column("state_age_ms", np.float64),
        loop_period_ms=column("loop_period_ms", np.float64),
        clamp_flags=column("clamp_flags", np.uint32), fault_flags=column("fault_flags", np.uint32),
        **arrays,
    )


def read_log(path: str | os.PathLike[str]) -> LoggedRun:
    """Read a log written by `McapLogger`, also one cut short by a crash (see `LoggedRun.complete`)."""
    scan = _scan(path)
    decoders = DecoderFactory()
    step_messages: list[Message] = []
    topics: dict[str, TopicMessages] = {}
    for channel_id, messages in scan.messages.items():
        channel = scan.channels.get(channel_id)
        if channel is None:
            raise McapLogError(f"{scan.path}: messages on channel {channel_id}, which the file never defines")
        schema = scan.schemas.get(channel.schema_id)
        if channel.topic == POLICY_STEP_TOPIC and schema is not None and schema.name == POLICY_STEP_TYPE:
            step_messages.extend(messages)
            continue
        decoder = decoders.decoder_for(channel.message_encoding, schema)
        if decoder is None:
            raise McapLogError(
                f"{scan.path}: topic {channel.topic} is not ROS 2 CDR with a ros2msg schema "
                f"(encoding {channel.message_encoding!r}); cannot decode it"
            )
        topics[channel.topic] = TopicMessages(
            type=schema.name if schema is not None else "",
            log_time_ns=np.array([m.log_time for m in messages], dtype=np.int64),
            data=[m.data for m in messages],
            decode=decoder,
        )
    step_messages.sort(key=lambda m: m.log_time)
    return LoggedRun(
        path=scan.path, steps=_steps(scan.path, step_messages), topics=topics,
        attachments={a.name: a.data for a in scan.attachments}, metadata=scan.metadata,
        complete=scan.complete, problem=scan.problem,
    )


def _utc(ns: int) -> str:
    return datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.timezone.utc).isoformat(timespec="milliseconds")


def summary(path: str | os.PathLike[str]) -> str:
    """What `ros2 bag info` would say: duration, messages per topic, attachments and metadata keys."""
    scan = _scan(path)
    state = "closed cleanly" if scan.complete else f"NOT closed: {scan.problem}"
    lines = [f"file:        {scan.path} ({scan.size} bytes, {state})"]
    times = [m.log_time for messages in scan.messages.values() for m in messages]
    if times:
        start, end = min(times), max(times)
        lines.append(f"duration:    {(end - start) / 1e9:.3f} s ({_utc(start)} .. {_utc(end)})")
    lines.append(f"messages:    {len(times)}")
    rows = []
    for channel_id, messages in scan.messages.items():
        channel = scan.channels.get(channel_id)
        schema = scan.schemas.get(channel.schema_id) if channel else None
        topic = channel.topic if channel else f"<channel {channel_id}>"
        rows.append(f"  {topic:<45} {schema.name if schema else '?':<40} {len(messages):>8}")
    lines += sorted(rows)
    lines.append(f"attachments: {len(scan.attachments)}")
    lines += [f"  {a.name:<45} {a.media_type:<40} {len(a.data):>8} bytes" for a in scan.attachments]
    lines.append(f"metadata:    {len(scan.metadata)}")
    lines += [f"  {name}: {', '.join(sorted(data))}" for name, data in scan.metadata.items()]
    return "\n".join(lines) + "\n"
