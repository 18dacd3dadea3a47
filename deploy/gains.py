"""Joint PD gains per robot mode, shared by every robot side (the MuJoCo node and the Go1 bridge).

On the wire, joint targets are positions only (ros2_control's forward controller); the robot side
picks kp/kd from the mode the controller requested. ACTIVE_POLICY uses the gains the policy was
trained with (from its contract) unless explicitly overridden, because a gain mismatch is a
sim-to-real gap the policy never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dhal.deploy.topics import RobotMode

if TYPE_CHECKING:  # the contract module imports torch, which the bridge process does not need
    from dhal.envs.contract import Contract


@dataclass(frozen=True)
class PdGains:
    kp: float
    kd: float

    def __post_init__(self) -> None:
        if not (self.kp >= 0.0 and self.kd >= 0.0):
            raise ValueError(f"PD gains must be non-negative, got kp={self.kp}, kd={self.kd}")


@dataclass(frozen=True)
class ModeGains:
    policy: PdGains
    # Stiffer than the policy's 40/1 so the stand holds the pose on the deck with less sag, yet
    # close enough that handing over to the policy does not jolt the joints.
    stand: PdGains = PdGains(60.0, 2.0)
    # kp = 0 never pulls toward a stale target; kd > 0 brakes the fall of a limp robot.
    damping: PdGains = PdGains(0.0, 2.0)
    passive: PdGains = PdGains(0.0, 0.0)

    def __post_init__(self) -> None:
        if self.damping.kp != 0.0 or self.passive.kp != 0.0 or self.passive.kd != 0.0:
            raise ValueError("damping must have kp = 0 and passive kp = kd = 0: neither may hold a stiff target")

    @classmethod
    def for_contract(cls, contract: Contract, **overrides: PdGains) -> ModeGains:
        return cls(policy=PdGains(contract.kp, contract.kd), **overrides)

    def of(self, mode: RobotMode) -> PdGains:
        return {
            RobotMode.PASSIVE: self.passive,
            RobotMode.DAMPING: self.damping,
            RobotMode.ACTIVE_STAND: self.stand,
            RobotMode.ACTIVE_POLICY: self.policy,
        }[RobotMode(mode)]
