"""One self-contained MCAP file per run of a deploy node, written off the control thread. Its reader
is `dhal.deploy.log_read`.

The control thread only encodes a step to CDR (microseconds) and hands the bytes to an unbounded queue
guarded by a counting semaphore: it never blocks, never touches the file and never compresses. When
`queue_size` messages are waiting, new ones are dropped and counted. A writer thread owns the
`mcap.Writer`: zstd chunks of `chunk_size` bytes, each handed to the OS as soon as it is complete,
and an open chunk is closed after `flush_interval_s`, so a process killed with SIGKILL leaves a file
that `log_read.read_log` reads up to its last completed chunk (the page cache survives the process; use
`os.fsync` outside this class if power loss matters).
"""

from __future__ import annotations

import atexit
import mimetypes
import os
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import mcap.writer
import numpy as np
from mcap.well_known import MessageEncoding, Profile, SchemaEncoding

from dhal.deploy.log_schema import (
    ARRAY_FIELDS,
    POLICY_STEP_SCHEMA,
    POLICY_STEP_TOPIC,
    POLICY_STEP_TYPE,
    McapLogError,
    PolicyStepRecord,
    encode_policy_step,
    ros2msg_schema,
)
from dhal.deploy.topics import Topic

__all__ = ["McapLogger", "McapLogError", "ros2msg_schema", "PolicyStepRecord", "STATS_METADATA_NAME"]

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
