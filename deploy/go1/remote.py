"""The Go1 wireless remote as it arrives in LowState.wirelessRemote (40 bytes).

Layout from unitree_legged_sdk (go1 branch) `include/unitree_legged_sdk/joystick.h`,
`xRockerBtnDataStruct`: head[2], a 16-bit button field (bit 0 first: R1, L1, start, select, R2, L2,
F1, F2, A, B, X, Y, up, right, down, left), then floats lx, rx, ry, L2, ly, then 16 idle bytes.

On /joy (`sensor_msgs/Joy`) the bridge publishes `axes` in `REMOTE_AXES` order and `buttons` in
`REMOTE_BUTTONS` order, i.e. the SDK's own order; consumers index by these names.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

REMOTE_BUTTONS: tuple[str, ...] = (
    "R1", "L1", "start", "select", "R2", "L2", "F1", "F2", "A", "B", "X", "Y", "up", "right", "down", "left",
)
REMOTE_AXES: tuple[str, ...] = ("lx", "rx", "ry", "L2", "ly")

_LAYOUT = struct.Struct("<2sH5f16s")
assert _LAYOUT.size == 40


@dataclass(frozen=True)
class RemoteState:
    buttons: tuple[bool, ...] = (False,) * len(REMOTE_BUTTONS)
    axes: tuple[float, ...] = (0.0,) * len(REMOTE_AXES)

    def __post_init__(self) -> None:
        if len(self.buttons) != len(REMOTE_BUTTONS) or len(self.axes) != len(REMOTE_AXES):
            raise ValueError(f"a remote state has {len(REMOTE_BUTTONS)} buttons and {len(REMOTE_AXES)} axes, "
                             f"got {len(self.buttons)} and {len(self.axes)}")

    def pressed(self, name: str) -> bool:
        return self.buttons[REMOTE_BUTTONS.index(name)]

    def axis(self, name: str) -> float:
        return self.axes[REMOTE_AXES.index(name)]

    @classmethod
    def with_pressed(cls, *names: str, **axes: float) -> RemoteState:
        unknown = (set(names) - set(REMOTE_BUTTONS)) | (set(axes) - set(REMOTE_AXES))
        if unknown:
            raise KeyError(f"unknown remote inputs {sorted(unknown)}; buttons {REMOTE_BUTTONS}, axes {REMOTE_AXES}")
        return cls(buttons=tuple(b in names for b in REMOTE_BUTTONS),
                   axes=tuple(float(axes.get(a, 0.0)) for a in REMOTE_AXES))


def decode_remote(raw: bytes) -> RemoteState:
    if len(raw) != _LAYOUT.size:
        raise ValueError(f"wirelessRemote must be {_LAYOUT.size} bytes, got {len(raw)}")
    _, bits, *axes, _ = _LAYOUT.unpack(raw)
    return RemoteState(
        buttons=tuple(bool(bits >> i & 1) for i in range(len(REMOTE_BUTTONS))),
        axes=tuple(float(a) for a in axes),
    )


def encode_remote(state: RemoteState) -> bytes:
    bits = sum(1 << i for i, pressed in enumerate(state.buttons) if pressed)
    return _LAYOUT.pack(bytes(2), bits, *state.axes, bytes(16))
