"""One self-contained MCAP file per run of a deploy node, written off the control thread, and its reader.

The control thread only encodes a step to CDR (microseconds) and hands the bytes to an unbounded queue
guarded by a counting semaphore: it never blocks, never touches the file and never compresses. When
`queue_size` messages are waiting, new ones are dropped and counted. A writer thread owns the
`mcap.Writer`: zstd chunks of `chunk_size` bytes, each handed to the OS as soon as it is complete,
and an open chunk is closed after `flush_interval_s`, so a process killed with SIGKILL leaves a file
that `read_log` reads up to its last completed chunk (the page cache survives the process; use
`os.fsync` outside this class if power loss matters).
"""

from __future__ import annotations

import atexit
import datetime
import functools
import mimetypes
import os
import queue
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import mcap.writer
import numpy as np
import numpy.typing as npt
import zstandard
from mcap.exceptions import EndOfFile, McapError
from mcap.records import Attachment, Channel, Footer, Message, Metadata, Schema
from mcap.stream_reader import StreamReader
from mcap.well_known import MessageEncoding, Profile, SchemaEncoding
from mcap_ros2.decoder import DecoderFactory

from dhal.deploy.log_schema import (
    ARRAY_FIELDS,
    POLICY_STEP_SCHEMA,
    POLICY_STEP_TOPIC,
    POLICY_STEP_TYPE,
    McapLogError,
    PolicyStepRecord,
    decode_policy_step,
    encode_policy_step,
    ros2msg_schema,
)
from dhal.deploy.topics import Topic

__all__ = [
    "McapLogger", "McapLogError", "LoggedRun", "LoggedSteps", "TopicMessages", "read_log", "summary",
    "ros2msg_schema", "PolicyStepRecord",
]

STATS_METADATA_NAME = "dhal_log"


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    type_name: str
    data: bytes
    log_time_ns: int


@dataclass(frozen=True, slots=True)
class _Metadata:
    name: str
    data: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Attachment:
    name: str
    media_type: str
    data: bytes
    log_time_ns: int


@dataclass(frozen=True, slots=True)
class _Barrier:
    done: threading.Event = field(default_factory=threading.Event)
    finish_chunk: bool = True


class _Stop:
    pass


_Item = _Message | _Metadata | _Attachment | _Barrier | _Stop


def _check_metadata(name: str, data: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(name, str) or not name:
        raise ValueError(f"metadata name must be a non-empty str, got {name!r}")
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"metadata {name!r}: keys and values must be str, got {key!r}: {value!r}")
    return dict(data)


def _attachment(name: str, data: bytes, media_type: str | None) -> _Attachment:
    if not isinstance(name, str) or not name:
        raise ValueError(f"attachment name must be a non-empty str, got {name!r}")
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"attachment {name!r} must be bytes, got {type(data).__name__}")
    if media_type is None:
        yaml = name.endswith((".yaml", ".yml"))
        media_type = "application/yaml" if yaml else mimetypes.guess_type(name)[0] or "application/octet-stream"
    return _Attachment(name, media_type, bytes(data), time.time_ns())


class McapLogger:
    """Writes `PolicyStep` records and raw CDR messages of the deploy topics to one MCAP file.

    `output` is a path or a seekable binary stream (the logger then leaves it open). `topics`
    resolves those topics' schemas now, so a missing .msg file fails here rather than in the writer.
    `log_step`, `log_raw` and `log_message` never block: they drop and count when the queue is full.
    """

    def __init__(
        self,
        output: str | os.PathLike[str] | IO[bytes],
        *,
        metadata: Mapping[str, Mapping[str, str]] = {},
        attachments: Mapping[str, bytes] = {},
        topics: Iterable[Topic] = (),
        queue_size: int = 4096,
        chunk_size: int = 256 * 1024,
        flush_interval_s: float | None = 1.0,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if flush_interval_s is not None and flush_interval_s < 0:
            raise ValueError(f"flush_interval_s must be >= 0 or None, got {flush_interval_s}")
        self.name = str(output) if isinstance(output, (str, os.PathLike)) else getattr(output, "name", repr(output))
        self._schema_texts: dict[str, str] = {POLICY_STEP_TYPE: POLICY_STEP_SCHEMA}
        self._topic_types: dict[str, str] = {POLICY_STEP_TOPIC: POLICY_STEP_TYPE}
        self._step_widths: dict[str, int] = {}
        for topic in topics:
            self._claim_topic(topic.name, topic.type)
            self._schema_texts[topic.type] = ros2msg_schema(topic.type)
        initial: list[_Item] = [_Metadata(name, _check_metadata(name, data)) for name, data in metadata.items()]
        initial += [_attachment(name, blob, None) for name, blob in attachments.items()]

        self._owns_stream = isinstance(output, (str, os.PathLike))
        try:
            self._stream: IO[bytes] = open(output, "wb") if isinstance(output, (str, os.PathLike)) else output
        except OSError as exc:
            raise McapLogError(f"cannot open log file {self.name}: {exc}") from exc
        self._writer = mcap.writer.Writer(
            self._stream, chunk_size=chunk_size, compression=mcap.writer.CompressionType.ZSTD
        )
        self._writer.start(profile=Profile.ROS2, library="dhal.deploy.mcap_log")
        self._flush_interval_s = flush_interval_s

        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._free_slots = threading.Semaphore(queue_size)
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._closed = False
        self._error: BaseException | None = None
        self._written = {"steps": 0, "messages": 0}
        self._thread = threading.Thread(target=self._run, name=f"mcap-log:{self.name}", daemon=True)
        self._thread.start()
        atexit.register(self.close)
        for item in initial:
            self._queue.put(item)

    # ---- producer side: any thread, never blocks ------------------------------------------------

    @property
    def dropped(self) -> int:
        """Messages not written because the queue was full (or the writer had failed)."""
        return self._dropped

    @property
    def error(self) -> BaseException | None:
        """The exception that stopped the writer thread, if any (also raised by `close`)."""
        return self._error

    def log_step(self, record: PolicyStepRecord, log_time_ns: int) -> bool:
        """Queue one policy step; False if it was dropped. Raises ValueError for a malformed record.

        An array field is either empty or keeps one length for the whole run, so that the reader
        can stack it; a change of length is a bug of the caller and raises here.
        """
        for name in ARRAY_FIELDS:
            width = np.size(getattr(record, name))
            if width and self._step_widths.setdefault(name, width) != width:
                earlier = self._step_widths[name]
                raise ValueError(f"PolicyStepRecord.{name} has {width} values, earlier steps had {earlier}")
        return self._enqueue(POLICY_STEP_TOPIC, POLICY_STEP_TYPE, encode_policy_step(record), log_time_ns)

    def log_raw(self, topic: Topic, cdr_bytes: bytes, log_time_ns: int) -> bool:
        """Queue a message already serialised (rclpy `serialize_message` or a raw subscription)."""
        if not isinstance(cdr_bytes, bytes):
            raise TypeError(f"log_raw({topic.name}): cdr_bytes must be bytes, got {type(cdr_bytes).__name__}")
        self._claim_topic(topic.name, topic.type)
        return self._enqueue(topic.name, topic.type, cdr_bytes, log_time_ns)

    def log_message(self, topic: Topic, msg: Any, log_time_ns: int) -> bool:
        """Serialise an rclpy message object with rclpy and queue it."""
        from rclpy.serialization import serialize_message

        module = type(msg).__module__.split(".")
        actual = f"{module[0]}/{module[1] if len(module) > 1 else '?'}/{type(msg).__name__}"
        if actual != topic.type:
            raise TypeError(f"log_message({topic.name}): got a {actual}, the topic carries {topic.type}")
        return self.log_raw(topic, serialize_message(msg), log_time_ns)

    def add_metadata(self, name: str, data: Mapping[str, str]) -> None:
        self._check_open()
        self._queue.put(_Metadata(name, _check_metadata(name, data)))

    def add_attachment(self, name: str, data: bytes, media_type: str | None = None) -> None:
        self._check_open()
        self._queue.put(_attachment(name, data, media_type))

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is in the writer (completed chunks are with the OS)."""
        return self._barrier(finish_chunk=False, timeout=timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Like `drain`, and also close the open chunk, so all that was logged survives a crash."""
        return self._barrier(finish_chunk=True, timeout=timeout)

    def close(self) -> None:
        """Write what is queued, the drop count as metadata and the summary; raise if the writer failed."""
        if not self._closed:
            self._closed = True
            atexit.unregister(self.close)
            self._queue.put(_Stop())
            self._thread.join()
        if self._error is not None:
            raise McapLogError(f"writing log {self.name} failed: {self._error!r}") from self._error

    def __enter__(self) -> McapLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise McapLogError(f"log {self.name} is closed")

    def _claim_topic(self, topic_name: str, type_name: str) -> None:
        known = self._topic_types.setdefault(topic_name, type_name)
        if known != type_name:
            raise ValueError(f"topic {topic_name} already logged as {known}, cannot also log {type_name}")

    def _enqueue(self, topic_name: str, type_name: str, data: bytes, log_time_ns: int) -> bool:
        self._check_open()
        if not isinstance(log_time_ns, int) or log_time_ns < 0:
            raise ValueError(f"log_time_ns must be a non-negative int (nanoseconds), got {log_time_ns!r}")
        if self._error is None and self._free_slots.acquire(blocking=False):
            self._queue.put(_Message(topic_name, type_name, data, log_time_ns))
            return True
        with self._dropped_lock:
            self._dropped += 1
        return False

    def _barrier(self, finish_chunk: bool, timeout: float | None) -> bool:
        self._check_open()
        barrier = _Barrier(finish_chunk=finish_chunk)
        self._queue.put(barrier)
        return barrier.done.wait(timeout)

    # ---- writer thread -------------------------------------------------------------------------

    def _run(self) -> None:
        channels: dict[str, int] = {}
        schemas: dict[str, int] = {}
        open_chunk_deadline: float | None = None  # set while messages sit in an unflushed chunk
        while True:
            timeout = None if open_chunk_deadline is None else max(0.0, open_chunk_deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = _Barrier(finish_chunk=True)
            if isinstance(item, _Stop):
                self._finish()
                return
            if isinstance(item, _Message):
                self._free_slots.release()
            try:
                if self._error is not None:
                    if isinstance(item, _Message):
                        with self._dropped_lock:
                            self._dropped += 1
                    continue
                if isinstance(item, _Message):
                    self._write_message(item, channels, schemas)
                    if open_chunk_deadline is None and self._flush_interval_s is not None:
                        open_chunk_deadline = time.monotonic() + self._flush_interval_s
                elif isinstance(item, _Metadata):
                    self._writer.add_metadata(item.name, item.data)
                elif isinstance(item, _Attachment):
                    self._writer.add_attachment(
                        item.log_time_ns, item.log_time_ns, item.name, item.media_type, item.data
                    )
                if isinstance(item, _Barrier) and item.finish_chunk or (
                    open_chunk_deadline is not None and time.monotonic() >= open_chunk_deadline
                ):
                    self._writer.flush()
                    open_chunk_deadline = None
                self._stream.flush()  # hands a chunk the writer completed by size to the OS at once
            except Exception as exc:  # noqa: BLE001 - raised by close(); the thread keeps draining the queue
                self._error = exc
            finally:
                if isinstance(item, _Barrier):
                    item.done.set()

    def _write_message(self, item: _Message, channels: dict[str, int], schemas: dict[str, int]) -> None:
        channel_id = channels.get(item.topic)
        if channel_id is None:
            schema_id = schemas.get(item.type_name)
            if schema_id is None:
                text = self._schema_texts.get(item.type_name) or ros2msg_schema(item.type_name)
                schema_id = self._writer.register_schema(item.type_name, SchemaEncoding.ROS2, text.encode())
                schemas[item.type_name] = schema_id
            channel_id = self._writer.register_channel(item.topic, MessageEncoding.CDR, schema_id)
            channels[item.topic] = channel_id
        self._writer.add_message(channel_id, item.log_time_ns, item.data, item.log_time_ns)
        self._written["steps" if item.type_name == POLICY_STEP_TYPE else "messages"] += 1

    def _finish(self) -> None:
        try:
            if self._error is None:
                stats = {"dropped": str(self._dropped), **{f"{k}_written": str(v) for k, v in self._written.items()}}
                self._writer.add_metadata(STATS_METADATA_NAME, stats)
                self._writer.finish()
                self._stream.flush()
        except Exception as exc:  # noqa: BLE001 - raised by close()
            self._error = exc
        finally:
            if self._owns_stream:
                self._stream.close()


# ---------------------------------------------------------------------------------------------
# Reading


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
