"""The deploy MCAP log: PolicyStep CDR, schemas, writer thread, crash recovery and the reader."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcap_ros2._dynamic import generate_dynamic, serialize_dynamic

from dhal.deploy.log_schema import (
    ARRAY_FIELDS,
    POLICY_STEP_SCHEMA,
    POLICY_STEP_TYPE,
    SCHEMA_SEPARATOR,
    MsgDefinitionNotFound,
    decode_policy_step,
    encode_policy_step,
)
from dhal.deploy.log_read import read_log, summary
from dhal.deploy.mcap_log import McapLogError, McapLogger, PolicyStepRecord, ros2msg_schema
from dhal.deploy.topics import IMU, JOINT_STATES, JOINT_TARGETS, ROBOT_MODE, Topic

REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000_000_000


def make_record(i: int) -> PolicyStepRecord:
    """Deterministic per index, so a child process and the test build the same steps."""
    rng = np.random.default_rng(i)
    observation = rng.standard_normal(960).astype(np.float32)
    observation[i % 960] = np.nan if i % 7 == 0 else observation[i % 960]
    return PolicyStepRecord(
        stamp_ns=T0 + i * 20_000_000 - 1_500_000, step=i, fsm_state=i % 5, robot_mode=3,
        observation=observation, action=rng.standard_normal(12).astype(np.float32),
        joint_targets=rng.standard_normal(12).astype(np.float32) if i % 3 else np.zeros(0, np.float32),
        mode_probs=rng.random(3).astype(np.float32), command=np.array([0.5, 0.0, 0.1], np.float32),
        inference_ms=0.3 + i, state_age_ms=1.25, loop_period_ms=20.0, clamp_flags=i % 4, fault_flags=2**31 + i,
    )


def assert_steps_equal(steps, expected: list[PolicyStepRecord]) -> None:
    assert len(steps) == len(expected)
    for i, record in enumerate(expected):
        assert steps.observation[i].view(np.uint32).tolist() == record.observation.view(np.uint32).tolist()
        assert steps.action[i].tobytes() == record.action.tobytes()
        if record.joint_targets.size:
            assert steps.joint_targets[i].tobytes() == record.joint_targets.tobytes()
        else:
            assert np.isnan(steps.joint_targets[i]).all()
    assert steps.step.tolist() == [r.step for r in expected]
    assert steps.stamp_ns.tolist() == [r.stamp_ns for r in expected]
    assert steps.fault_flags.tolist() == [r.fault_flags for r in expected]
    assert steps.inference_ms.tolist() == [r.inference_ms for r in expected]


def as_dict(record: PolicyStepRecord, frame_id: str = "") -> dict:
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    sec, nanosec = divmod(values.pop("stamp_ns"), 1_000_000_000)
    values = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in values.items()}
    return {"header": {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": frame_id}, **values}


float32_arrays = st.lists(st.floats(width=32, allow_nan=False), max_size=5).map(lambda v: np.array(v, np.float32))


@settings(max_examples=40, deadline=None)
@given(
    arrays=st.fixed_dictionaries({name: float32_arrays for name in ARRAY_FIELDS}),
    stamp_ns=st.integers(0, 2**31 * 1_000_000_000 - 1), step=st.integers(0, 2**32 - 1), small=st.integers(0, 255),
    flags=st.integers(0, 2**32 - 1), frame_id=st.text(max_size=6),
)
def test_policy_step_cdr_matches_mcap_ros2(arrays, stamp_ns, step, small, flags, frame_id) -> None:
    record = PolicyStepRecord(
        stamp_ns=stamp_ns, step=step, fsm_state=small, robot_mode=255 - small, inference_ms=-1.5,
        state_age_ms=float("inf"), loop_period_ms=20.0, clamp_flags=flags, fault_flags=step, **arrays,
    )
    encoder = serialize_dynamic(POLICY_STEP_TYPE, POLICY_STEP_SCHEMA)[POLICY_STEP_TYPE]
    assert encode_policy_step(record) == encoder(as_dict(record))
    # A non-empty frame_id shifts every later field's alignment; the decoder must follow it.
    decoded = decode_policy_step(encoder(as_dict(record, frame_id)))
    assert as_dict(decoded) == as_dict(record)
    independent = generate_dynamic(POLICY_STEP_TYPE, POLICY_STEP_SCHEMA)[POLICY_STEP_TYPE](encode_policy_step(record))
    assert independent.header.stamp.nanosec == stamp_ns % 1_000_000_000 and independent.fault_flags == step


def test_malformed_step_records_are_rejected_by_field_name() -> None:
    record = make_record(1)
    with pytest.raises(ValueError, match="observation must be 1-D"):
        encode_policy_step(dataclasses.replace(record, observation=record.observation.reshape(2, -1)))
    with pytest.raises(ValueError, match="fsm_state=256"):
        encode_policy_step(dataclasses.replace(record, fsm_state=256))
    with pytest.raises(ValueError, match="stamp_ns=.* int32 seconds"):
        encode_policy_step(dataclasses.replace(record, stamp_ns=2**31 * 1_000_000_000))
    with pytest.raises(McapLogError, match="truncated or malformed"):
        decode_policy_step(encode_policy_step(record)[:-3])


def blocks(schema: str) -> dict[str, str]:
    """ros2msg schema -> {'MSG name': definition without comments and blank lines}."""
    out = {}
    for i, block in enumerate(schema.split(SCHEMA_SEPARATOR + "\n")):
        lines = [ln.split("#")[0].rstrip() for ln in block.splitlines()]
        lines = [ln for ln in lines if ln.strip()]
        name = lines.pop(0).removeprefix("MSG: ") if i else "<root>"
        out[name] = "\n".join(lines)
    return out


def test_imu_schema_holds_every_dependency_once() -> None:
    schema = ros2msg_schema("sensor_msgs/msg/Imu")
    found = blocks(schema)
    assert list(found) == [
        "<root>", "std_msgs/Header", "builtin_interfaces/Time", "geometry_msgs/Quaternion", "geometry_msgs/Vector3",
    ]
    assert found["builtin_interfaces/Time"] == "int32 sec\nuint32 nanosec"
    assert schema.count("\n" + "=" * 80 + "\nMSG: ") == 4
    assert "sensor_msgs/Imu" in generate_dynamic("sensor_msgs/msg/Imu", schema)


def test_policy_step_schema_embeds_the_installed_header_definitions() -> None:
    embedded = blocks(POLICY_STEP_SCHEMA)
    installed = blocks(ros2msg_schema("std_msgs/msg/Header"))
    assert embedded["std_msgs/Header"] == installed["<root>"]
    assert embedded["builtin_interfaces/Time"] == installed["builtin_interfaces/Time"]


def test_missing_msg_definition_names_the_type_and_its_user(tmp_path: Path) -> None:
    (tmp_path / "pkg_a" / "msg").mkdir(parents=True)
    (tmp_path / "pkg_a" / "msg" / "Outer.msg").write_text("# comment\nInner[] items\nuint8 N=3\n")
    with pytest.raises(MsgDefinitionNotFound, match=r"pkg_a/msg/Inner \(a field type of pkg_a/Outer\)"):
        ros2msg_schema("pkg_a/msg/Outer", search_dirs=[tmp_path])
    with pytest.raises(McapLogError, match="malformed ROS message type name"):
        ros2msg_schema("Imu")


def raw_messages():
    from geometry_msgs.msg import Quaternion, Vector3
    from sensor_msgs.msg import Imu, JointState
    from std_msgs.msg import Float64MultiArray, UInt8

    from dhal.deploy.ros import to_stamp

    joints = [
        JointState(name=["FR_hip", "FR_thigh"], position=[0.1 * i, -0.2], velocity=[1.0, 2.0], effort=[])
        for i in range(3)
    ]
    for i, js in enumerate(joints):
        js.header.stamp = to_stamp(T0 + i)
    imu = Imu(orientation=Quaternion(x=0.0, y=0.1, z=0.2, w=0.97), angular_velocity=Vector3(x=1.0, y=2.0, z=3.0))
    imu.orientation_covariance[0] = -1.0
    return joints, imu, Float64MultiArray(data=[0.5] * 12), UInt8(data=3)


def test_round_trip_of_steps_raw_messages_attachments_and_metadata(tmp_path: Path) -> None:
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import JointState

    joints, imu, targets, mode = raw_messages()
    records = [make_record(i) for i in range(30)]
    onnx_bytes = bytes(range(256)) * 10
    path = tmp_path / "run.mcap"
    with McapLogger(
        path, metadata={"deploy": {"git_sha": "abc123", "robot": "go1-7"}},
        attachments={"policy.onnx": onnx_bytes}, topics=[JOINT_STATES],
    ) as logger:
        logger.add_attachment("config.json", b'{"kp": 20}')
        logger.add_metadata("operator", {"notes": "flat floor"})
        for i, record in enumerate(records):
            assert logger.log_step(record, T0 + i * 20_000_000)
        for i, js in enumerate(joints):
            logger.log_raw(JOINT_STATES, serialize_message(js), T0 + i)
        logger.log_message(IMU, imu, T0)
        logger.log_message(JOINT_TARGETS, targets, T0 + 1)
        logger.log_message(ROBOT_MODE, mode, T0 + 2)
    assert logger.dropped == 0

    run = read_log(path)
    assert run.complete and run.problem is None and run.dropped == 0
    assert_steps_equal(run.steps, records)
    assert run.steps.log_time_ns.tolist() == [T0 + i * 20_000_000 for i in range(30)]
    assert run.steps.observation.dtype == np.float32 and run.steps.latent.shape == (30, 0)

    topic = run.topics[JOINT_STATES.name]
    assert topic.type == "sensor_msgs/msg/JointState" and topic.log_time_ns.tolist() == [T0, T0 + 1, T0 + 2]
    assert [deserialize_message(blob, JointState) for blob in topic.data] == joints
    decoded = topic.messages[1]
    assert (decoded.name, list(decoded.position)) == (joints[1].name, [0.1, -0.2])
    assert decoded.header.stamp.nanosec == joints[1].header.stamp.nanosec
    decoded_imu = run.topics[IMU.name].messages[0]
    assert decoded_imu.orientation.w == 0.97 and decoded_imu.angular_velocity.z == 3.0
    assert decoded_imu.orientation_covariance[0] == -1.0
    assert list(run.topics[JOINT_TARGETS.name].messages[0].data) == [0.5] * 12
    assert run.topics[ROBOT_MODE.name].messages[0].data == 3

    assert run.attachments == {"policy.onnx": onnx_bytes, "config.json": b'{"kp": 20}'}
    assert run.metadata["deploy"] == {"git_sha": "abc123", "robot": "go1-7"}
    assert run.metadata["operator"] == {"notes": "flat floor"}

    text = summary(path)
    for expected in ("closed cleanly", "/dhal/policy_step", "JointState", "policy.onnx", "git_sha, robot"):
        assert expected in text
    assert "messages:    36" in text and "duration:    0.580 s" in text


def test_misuse_is_reported_where_it_happens(tmp_path: Path) -> None:
    _, _, _, mode = raw_messages()
    with McapLogger(tmp_path / "a.mcap") as logger:
        with pytest.raises(TypeError, match="got a std_msgs/msg/UInt8, the topic carries sensor_msgs/msg/JointState"):
            logger.log_message(JOINT_STATES, mode, T0)
        logger.log_message(ROBOT_MODE, mode, T0)
        with pytest.raises(ValueError, match="already logged as std_msgs/msg/UInt8"):
            logger.log_raw(Topic(ROBOT_MODE.name, "std_msgs/msg/Bool", reliable=True), b"\x00\x01\x00\x00\x01", T0)
        with pytest.raises(ValueError, match="log_time_ns"):
            logger.log_step(make_record(0), -1)
        logger.log_step(make_record(1), T0)
        with pytest.raises(ValueError, match="observation has 959 values, earlier steps had 960"):
            logger.log_step(dataclasses.replace(make_record(2), observation=np.zeros(959, np.float32)), T0)
        with pytest.raises(ValueError, match="keys and values must be str"):
            logger.add_metadata("bad", {"n": 3})  # type: ignore[dict-item]
    with pytest.raises(McapLogError, match="is closed"):
        logger.log_step(make_record(0), T0)


def test_writer_failure_is_raised_at_close_and_later_messages_are_dropped(tmp_path: Path) -> None:
    logger = McapLogger(tmp_path / "b.mcap")
    logger.log_raw(Topic("/nope", "nope_msgs/msg/Missing", reliable=True), b"\x00\x01\x00\x00", T0)
    logger.drain()
    assert isinstance(logger.error, MsgDefinitionNotFound)
    assert not logger.log_step(make_record(0), T0)
    with pytest.raises(McapLogError, match=r"b\.mcap failed: .*nope_msgs/msg/Missing"):
        logger.close()
    assert logger.dropped == 1


class GatedStream(io.BytesIO):
    """An output whose writes wait while the gate is closed: a writer stalled on a slow disk."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.writer_stuck = threading.Event()

    def write(self, data: Any) -> int:
        if not self.gate.is_set():
            self.writer_stuck.set()
            self.gate.wait()
        return super().write(data)


def test_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    stream = GatedStream()
    logger = McapLogger(stream, queue_size=4, chunk_size=1, flush_interval_s=None)
    logger.flush()
    stream.gate.clear()
    assert logger.log_step(make_record(0), T0)
    assert stream.writer_stuck.wait(timeout=60), "the writer never reached the stalled output"
    # The writer holds step 0; the queue takes 4 more and every later step is dropped at once.
    accepted = [logger.log_step(make_record(i), T0 + i) for i in range(1, 11)]
    assert accepted == [True] * 4 + [False] * 6 and logger.dropped == 6
    stream.gate.set()
    logger.close()
    path = tmp_path / "gated.mcap"
    path.write_bytes(stream.getvalue())
    run = read_log(path)
    assert run.steps.step.tolist() == [0, 1, 2, 3, 4] and run.dropped == 6


CHILD = """
import sys
from tests.deploy.test_mcap_log import T0, make_record
from dhal.deploy.mcap_log import McapLogger
path, count, interval = sys.argv[1], int(sys.argv[2]), sys.argv[3]
logger = McapLogger(path, chunk_size=32 * 1024, flush_interval_s=None if interval == "none" else float(interval))
for i in range(count):
    logger.log_step(make_record(i), T0 + i)
logger.drain()
print("ready", flush=True)
sys.stdin.readline()
"""


@pytest.mark.parametrize("flush_interval", ["none", "0"])
def test_sigkilled_writer_leaves_a_readable_file(tmp_path: Path, flush_interval: str) -> None:
    count, path = 60, tmp_path / "killed.mcap"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(count), flush_interval],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    run = read_log(path)
    assert not run.complete and "truncated" in (run.problem or "")
    recovered = len(run.steps)
    if flush_interval == "0":
        assert recovered == count  # every step closed its own chunk
    else:
        steps_per_chunk = 32 * 1024 // len(encode_policy_step(make_record(0))) + 2
        assert count - steps_per_chunk <= recovered <= count
    assert_steps_equal(run.steps, [make_record(i) for i in range(recovered)])
    assert "NOT closed" in summary(path)


def test_every_truncation_reads_a_prefix_of_the_steps(tmp_path: Path) -> None:
    source = tmp_path / "full.mcap"
    with McapLogger(source, chunk_size=8 * 1024, attachments={"config.json": b"{}"}) as logger:
        for i in range(24):
            logger.log_step(make_record(i), T0 + i)
    data = source.read_bytes()
    cut_path = tmp_path / "cut.mcap"
    previous = 0
    for cut in [*range(8, len(data), len(data) // 40), len(data) - 1]:
        cut_path.write_bytes(data[:cut])
        run = read_log(cut_path)
        assert not run.complete
        assert run.steps.step.tolist() == list(range(len(run.steps))) and len(run.steps) >= previous
        previous = len(run.steps)
    assert previous == 24


def test_unreadable_files_raise_errors_naming_them(tmp_path: Path) -> None:
    empty, text = tmp_path / "empty.mcap", tmp_path / "notes.mcap"
    empty.write_bytes(b"")
    text.write_text("this is not a log\n")
    with pytest.raises(McapLogError, match=r"empty\.mcap is empty"):
        read_log(empty)
    with pytest.raises(McapLogError, match=r"notes\.mcap is not an MCAP file"):
        summary(text)
    with pytest.raises(McapLogError, match=r"cannot read log .*absent\.mcap"):
        read_log(tmp_path / "absent.mcap")
    with pytest.raises(McapLogError, match="cannot open log file"):
        McapLogger(tmp_path / "no_dir" / "x.mcap")


FOXGLOVE_READER = """
const fs = require("fs");
const { McapIndexedReader } = require("@mcap/core");
const { loadDecompressHandlers } = require("@mcap/support");
const { parse } = require("@foxglove/rosmsg");
const { MessageReader } = require("@foxglove/rosmsg2-serialization");
(async () => {
  const buf = fs.readFileSync(process.argv[2]);
  const readable = {
    size: async () => BigInt(buf.length),
    read: async (offset, length) => buf.subarray(Number(offset), Number(offset + length)),
  };
  const reader = await McapIndexedReader.Initialize({ readable, decompressHandlers: await loadDecompressHandlers() });
  const parsers = new Map();
  const out = { counts: {}, observations: [], joint_names: [], attachments: [] };
  for await (const m of reader.readMessages()) {
    const channel = reader.channelsById.get(m.channelId);
    const schema = reader.schemasById.get(channel.schemaId);
    if (!parsers.has(schema.id)) {
      parsers.set(schema.id, new MessageReader(parse(new TextDecoder().decode(schema.data), { ros2: true })));
    }
    const msg = parsers.get(schema.id).readMessage(m.data);
    out.counts[channel.topic] = (out.counts[channel.topic] || 0) + 1;
    if (schema.name.endsWith("PolicyStep")) {
      out.observations.push(Buffer.from(Float32Array.from(msg.observation).buffer).toString("base64"));
    } else if (schema.name.endsWith("JointState")) {
      out.joint_names.push(msg.name);
    }
  }
  for await (const a of reader.readAttachments()) out.attachments.push(a.name);
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


@pytest.mark.skipif(
    not (shutil.which("node") and os.environ.get("DHAL_FOXGLOVE_NODE_MODULES")),
    reason="set DHAL_FOXGLOVE_NODE_MODULES to a node_modules with @mcap/core, @mcap/support, "
    "@foxglove/rosmsg and @foxglove/rosmsg2-serialization",
)
def test_foxglove_libraries_decode_the_log(tmp_path: Path) -> None:
    from rclpy.serialization import serialize_message

    joints, imu, targets, mode = raw_messages()
    records = [make_record(i) for i in range(5)]
    path = tmp_path / "fox.mcap"
    with McapLogger(path, attachments={"policy.onnx": b"onnx"}) as logger:
        for i, record in enumerate(records):
            logger.log_step(record, T0 + i)
            logger.log_raw(JOINT_STATES, serialize_message(joints[i % 3]), T0 + i)
        logger.log_message(IMU, imu, T0)
        logger.log_message(JOINT_TARGETS, targets, T0)
        logger.log_message(ROBOT_MODE, mode, T0)
    script = tmp_path / "read.js"
    script.write_text(FOXGLOVE_READER)
    env = {**os.environ, "NODE_PATH": os.environ["DHAL_FOXGLOVE_NODE_MODULES"]}
    result = subprocess.run(["node", str(script), str(path)], capture_output=True, text=True, env=env, check=True)
    out = json.loads(result.stdout)
    assert out["counts"] == {
        "/dhal/policy_step": 5, JOINT_STATES.name: 5, IMU.name: 1, JOINT_TARGETS.name: 1, ROBOT_MODE.name: 1,
    }
    assert [base64.b64decode(o) for o in out["observations"]] == [r.observation.tobytes() for r in records]
    assert out["joint_names"][0] == ["FR_hip", "FR_thigh"] and out["attachments"] == ["policy.onnx"]
