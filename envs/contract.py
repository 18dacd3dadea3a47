"""The observation/action contract: declared once, used by training, export, the ROS node and replay.

A proprioceptive *frame* is a list of named terms; each has a size, a scale and a Gaussian noise
level (in physical units, added before scaling). The actor sees the last `history_length` noisy
frames, oldest first. Everything that turns robot signals into policy inputs, or policy outputs
into joint targets, goes through `Contract` so that nobody re-derives offsets by hand.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Mapping

import torch

from dhal.envs.robots import go1


@dataclass(frozen=True)
class ObsTerm:
    name: str
    size: int
    scale: tuple[float, ...] | float = 1.0
    noise_std: float = 0.0

    def scale_tensor(self, device: torch.device | str = "cpu") -> torch.Tensor:
        scale = self.scale if isinstance(self.scale, tuple) else (self.scale,) * self.size
        if len(scale) != self.size:
            raise ValueError(f"term {self.name!r}: {len(scale)} scales for size {self.size}")
        return torch.tensor(scale, dtype=torch.float32, device=device)


def dhal_frame_terms(noise: Mapping[str, float] | None = None) -> tuple[ObsTerm, ...]:
    """DHAL's 48-d frame (DHAL.md §2.1). `noise` overrides per-term noise levels."""
    levels = {
        "base_rp": 0.08,
        "base_ang_vel": 0.4,
        "projected_gravity": 0.05,
        "joint_pos": 0.05,
        "joint_vel": 0.1,
    }
    if noise is not None:
        unknown = set(noise) - set(levels)
        if unknown:
            raise KeyError(f"noise given for unknown or noise-free terms {sorted(unknown)}; "
                           f"noisy terms are {sorted(levels)}")
        levels.update(noise)
    n = len(go1.JOINT_NAMES)
    return (
        ObsTerm("base_rp", 2, 1.0, levels["base_rp"]),
        ObsTerm("base_ang_vel", 3, 0.25, levels["base_ang_vel"]),
        ObsTerm("projected_gravity", 3, 1.0, levels["projected_gravity"]),
        ObsTerm("command", 3, (2.0, 2.0, 0.25)),
        ObsTerm("joint_pos", n, 1.0, levels["joint_pos"]),
        ObsTerm("joint_vel", n, 0.05, levels["joint_vel"]),
        ObsTerm("last_action", n, 1.0),
        ObsTerm("phase", 1, 1.0),
    )


# The clean terms the dynamics model predicts one step ahead (DHAL.md §2.2: 33-d).
DHAL_DYNAMICS_TERMS = ("base_rp", "base_ang_vel", "projected_gravity", "joint_pos", "joint_vel", "phase")


@dataclass(frozen=True)
class Contract:
    joint_names: tuple[str, ...]
    default_pose: tuple[float, ...]
    action_scale: float
    action_limit: float  # actions live in [-action_limit, action_limit] (the Beta support)
    kp: float
    kd: float
    torque_limits: tuple[float, ...]
    frame_terms: tuple[ObsTerm, ...]
    history_length: int
    control_dt: float
    clock_period: float
    # The phase input is zeroed while |command| is below this (the robot is asked to stand still).
    phase_input_threshold: float = 0.1
    dynamics_terms: tuple[str, ...] = DHAL_DYNAMICS_TERMS
    observation_clip: float = 100.0
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        for name, values in (("default_pose", self.default_pose), ("torque_limits", self.torque_limits)):
            if len(values) != n:
                raise ValueError(f"contract {name} has {len(values)} entries for {n} joints")
        names = [t.name for t in self.frame_terms]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate frame terms in {names}")
        missing = set(self.dynamics_terms) - set(names)
        if missing:
            raise ValueError(f"dynamics terms {sorted(missing)} are not frame terms")
        # Per-(terms, device) scale/noise vectors and index tensors, built on first use. Not a
        # dataclass field, so equality, hashing and serialisation ignore it.
        object.__setattr__(self, "_vectors", {})

    # ---- layout -------------------------------------------------------------------------------
    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def frame_size(self) -> int:
        return sum(t.size for t in self.frame_terms)

    @property
    def history_size(self) -> int:
        return self.frame_size * self.history_length

    @property
    def dynamics_size(self) -> int:
        return sum(self.term(n).size for n in self.dynamics_terms)

    def term(self, name: str) -> ObsTerm:
        for t in self.frame_terms:
            if t.name == name:
                return t
        raise KeyError(f"no frame term {name!r}; terms are {[t.name for t in self.frame_terms]}")

    def term_slice(self, name: str) -> slice:
        start = 0
        for t in self.frame_terms:
            if t.name == name:
                return slice(start, start + t.size)
            start += t.size
        raise KeyError(f"no frame term {name!r}; terms are {[t.name for t in self.frame_terms]}")

    # ---- building inputs ------------------------------------------------------------------------
    def _vector(self, kind: str, terms: tuple[str, ...], device: torch.device) -> torch.Tensor:
        key = (kind, terms, str(device))
        cache: dict = self._vectors  # type: ignore[attr-defined]
        if key not in cache:
            if kind == "scale":
                value = torch.cat([self.term(n).scale_tensor(device) for n in terms])
            elif kind == "default_pose":  # cached: a fresh host tensor per step would sync a GPU
                value = torch.tensor(self.default_pose, dtype=torch.float32, device=device)
            elif kind == "noise":
                value = torch.cat([torch.full((self.term(n).size,), self.term(n).noise_std, device=device) for n in terms])
            else:  # "dynamics": positions of the dynamics terms inside a full frame
                value = torch.cat([torch.arange(self.frame_size, device=device)[self.term_slice(n)] for n in terms])
            cache[key] = value
        return cache[key]

    def _raw(self, values: Mapping[str, torch.Tensor], terms: tuple[str, ...]) -> torch.Tensor:
        parts = []
        for name in terms:
            term = self.term(name)
            if name not in values:
                raise KeyError(f"frame term {name!r} missing from the given values {sorted(values)}")
            v = values[name]
            if v.shape[-1] != term.size:
                raise ValueError(f"frame term {name!r} has size {v.shape[-1]}, contract says {term.size}")
            parts.append(v)
        return torch.cat(parts, dim=-1)

    @property
    def term_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.frame_terms)

    def build_frame(
        self,
        values: Mapping[str, torch.Tensor],
        noise: bool = False,
        generator: torch.Generator | None = None,
        terms: tuple[str, ...] | None = None,
    ) -> torch.Tensor:
        """Concatenate scaled terms [B, size] in contract order (or in `terms` order)."""
        terms = self.term_names if terms is None else terms
        raw = self._raw(values, terms)
        if noise:
            sigma = self._vector("noise", terms, raw.device)
            raw = raw + sigma * torch.randn(raw.shape, generator=generator, device=raw.device)
        return (raw * self._vector("scale", terms, raw.device)).clamp(-self.observation_clip, self.observation_clip)

    def build_frames(
        self, values: Mapping[str, torch.Tensor], generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(noisy, clean) full frames from one set of values, sharing the concatenation. The
        noise is drawn from `generator`, or given as a standard-normal `noise` [B, frame_size]."""
        raw = self._raw(values, self.term_names)
        scale = self._vector("scale", self.term_names, raw.device)
        sigma = self._vector("noise", self.term_names, raw.device)
        if noise is None:
            noise = torch.randn(raw.shape, generator=generator, device=raw.device)
        noisy = raw + sigma * noise
        clip = self.observation_clip
        return (noisy * scale).clamp(-clip, clip), (raw * scale).clamp(-clip, clip)

    def dynamics_state(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The clean next-state vector the dynamics model predicts (no noise)."""
        return self.build_frame(values, noise=False, terms=self.dynamics_terms)

    def dynamics_from_frame(self, frame: torch.Tensor) -> torch.Tensor:
        """The dynamics-state part [B, dynamics_size] of clean full frames [B, frame_size]."""
        return frame[..., self._vector("dynamics", self.dynamics_terms, frame.device)]

    def joint_targets(self, actions: torch.Tensor) -> torch.Tensor:
        """Joint position targets for actions [B, n]: default pose + scale * clipped action."""
        if actions.shape[-1] != self.num_joints:
            raise ValueError(f"actions have {actions.shape[-1]} entries, contract has {self.num_joints} joints")
        default = self._vector("default_pose", (), actions.device).to(actions.dtype)
        clipped = actions.clamp(-self.action_limit, self.action_limit)
        return default + self.action_scale * clipped

    # ---- serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Contract:
        data = dict(data)
        data["frame_terms"] = tuple(
            ObsTerm(t["name"], t["size"], tuple(t["scale"]) if isinstance(t["scale"], list) else t["scale"],
                    t["noise_std"])
            for t in data["frame_terms"]
        )
        for key in ("joint_names", "default_pose", "torque_limits", "dynamics_terms"):
            data[key] = tuple(data[key])
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def digest(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def go1_contract(
    history_length: int = 20,
    control_dt: float = 0.02,
    clock_period: float = 4.0,
    action_scale: float = 0.25,
    action_limit: float = 3.0,
    noise: Mapping[str, float] | None = None,
    phase_input_threshold: float = 0.1,
) -> Contract:
    return Contract(
        joint_names=go1.JOINT_NAMES,
        default_pose=go1.DEFAULT_POSE,
        action_scale=action_scale,
        action_limit=action_limit,
        kp=go1.KP,
        kd=go1.KD,
        torque_limits=go1.TORQUE_LIMITS,
        frame_terms=dhal_frame_terms(noise),
        history_length=history_length,
        control_dt=control_dt,
        clock_period=clock_period,
        phase_input_threshold=phase_input_threshold,
    )
