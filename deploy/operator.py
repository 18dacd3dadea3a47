"""Operator input: the Go1 remote (as /joy) and named requests, turned into safety requests and a
velocity command.

Buttons that make the robot move (stand up, start the policy) must be held for `hold_s`, as
walk-these-ways asks for a double press: a brushed button must never start the motors. Buttons
that make it safer (damping, sit down) act on the press.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dhal.deploy.go1.remote import REMOTE_AXES, REMOTE_BUTTONS
from dhal.deploy.safety_types import Request


def parse_request(text: str) -> Request:
    """'stand_up' | 'start_policy' | 'sit_down' | 'damp' | 'reset' -> Request (ValueError otherwise)."""
    try:
        return Request(text.strip().lower())
    except ValueError:
        raise ValueError(f"unknown operator request {text!r}; use one of {[r.value for r in Request]}") from None


@dataclass(frozen=True)
class JoyMap:
    """Which remote inputs do what. Combinations are tuples of button names (all pressed)."""

    stand_up: tuple[str, ...] = ("start",)
    start_policy: tuple[str, ...] = ("A",)
    sit_down: tuple[str, ...] = ("B",)
    damp: tuple[str, ...] = ("select",)
    damp_alt: tuple[str, ...] = ("L2", "B")
    reset: tuple[str, ...] = ("L2", "start")
    hold_s: float = 0.5  # stand-up and start-policy need the buttons held this long
    forward_axis: str = "ly"  # stick up = forward
    yaw_axis: str = "rx"  # stick right = turn right (negative yaw rate)
    max_forward_mps: float = 1.6  # full stick; the training command range
    max_yaw_rate: float = 0.8

    def __post_init__(self) -> None:
        for name in ("stand_up", "start_policy", "sit_down", "damp", "damp_alt", "reset"):
            unknown = set(getattr(self, name)) - set(REMOTE_BUTTONS)
            if unknown:
                raise ValueError(f"JoyMap.{name} uses unknown buttons {sorted(unknown)}; buttons are {REMOTE_BUTTONS}")
        for name in ("forward_axis", "yaw_axis"):
            if getattr(self, name) not in REMOTE_AXES:
                raise ValueError(f"JoyMap.{name} {getattr(self, name)!r} is not an axis of {REMOTE_AXES}")


class JoyInterpreter:
    """Feeds on sensor_msgs/Joy (buttons and axes in the bridge's REMOTE_* order)."""

    def __init__(self, joy_map: JoyMap) -> None:
        self.map = joy_map
        self._held_since: dict[str, float] = {}
        self._fired: set[str] = set()

    def update(self, buttons: Sequence[int], axes: Sequence[float], now_s: float) -> tuple[list[Request], np.ndarray]:
        """(requests to apply now, velocity command (vx, vy, yaw rate))."""
        if len(buttons) != len(REMOTE_BUTTONS) or len(axes) != len(REMOTE_AXES):
            raise ValueError(f"Joy message has {len(buttons)} buttons and {len(axes)} axes, "
                             f"expected {len(REMOTE_BUTTONS)} and {len(REMOTE_AXES)}")
        pressed = {name for name, value in zip(REMOTE_BUTTONS, buttons) if value}
        m = self.map
        # Most specific combination first: L2+B is damping, not sit-down; L2+START is reset.
        actions = (("damp", m.damp, Request.DAMP, 0.0), ("damp_alt", m.damp_alt, Request.DAMP, 0.0),
                   ("reset", m.reset, Request.RESET, 0.0), ("sit_down", m.sit_down, Request.SIT_DOWN, 0.0),
                   ("stand_up", m.stand_up, Request.STAND_UP, m.hold_s),
                   ("start_policy", m.start_policy, Request.START_POLICY, m.hold_s))
        requests: list[Request] = []
        claimed: set[str] = set()
        for name, combo, request, hold in sorted(actions, key=lambda a: -len(a[1])):
            active = set(combo) <= pressed and not (set(combo) & claimed)
            if not active:
                self._held_since.pop(name, None)
                self._fired.discard(name)
                continue
            claimed |= set(combo)
            since = self._held_since.setdefault(name, now_s)
            if name not in self._fired and now_s - since >= hold:
                self._fired.add(name)
                requests.append(request)
        values = dict(zip(REMOTE_AXES, (float(a) for a in axes)))
        vx = float(np.clip(values[m.forward_axis], -1.0, 1.0)) * m.max_forward_mps
        yaw = -float(np.clip(values[m.yaw_axis], -1.0, 1.0)) * m.max_yaw_rate
        return requests, np.array([vx, 0.0, yaw])
