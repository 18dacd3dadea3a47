"""A seeded switching linear dynamical system with known modes: the ground truth of `dhal bench modes`.

* state x = [s, y]: a guard variable s and y in R^(state_dim-1); input u ~ N(0, I) in R^input_dim;
* three modes with distinct stable affine dynamics  s' = s + v_k,  y' = A_k y + B_k u + c_k,  plus
  Gaussian process noise; A_k = rho_k * (random orthogonal) with rho = (0.5, 0.3, 0.7), and each mode
  has its own equilibrium y*_k = (I - A_k)^-1 c_k of norm `equilibrium_norm`;
* with `clocked_guard`, s is a clock: it moves by whole ticks of fall_speed without noise, as the gait
  clock in DHAL's input does, so one tick separates the last step before a guard from the switch step;
  without it s carries process noise and its values near a guard are continuous;
* switching on x_t (before the transition that x_t starts), a cycle like glide -> push -> air:
  mode 0 (s rises by rise_speed) -> mode 1 when s >= guard;  mode 1 (s falls by fall_speed) -> mode 2
  when s <= 0;  mode 2 (s falls) -> mode 0 when s <= -guard;  plus a Markov jump 0 -> 1 with
  probability `jump_prob` per step (an early push);
* frames are [x_t, u_t]; a history is the last `history_length` frames, oldest first, ending at t;
  the targets are x_{t+1} and a mode-free "contact" signal 1[y_{t+1, j} > 0] for j < contact_dim.

The mode of transition t is identifiable from the history: the slope of s over the last frames
gives the previous mode and x_t shows whether a guard fires; only the Markov-jump steps are not
(`SLDSData.identifiable`). So the best any predictor can do from the history is the true system's
expected next state given the previous mode and x_t, u_t, which mixes glide and push with the jump
probability wherever a jump may happen (`SLDSData.bayes_next_state`); its error on the same samples
(`bayes_error`) is the floor that every K shares, jumps included, where `noise_floor` counts only
the process noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

RHOS = (0.5, 0.3, 0.7)  # spectral radius of A_k per mode
NUM_MODES = len(RHOS)


@dataclass
class SLDSConfig:
    """The system and the data drawn from it."""

    state_dim: int = 6
    """The guard variable and state_dim - 1 linear dims. `dhal bench modes` uses 12: three modes of 5 dims are
    easy for one network once the decoder reads the newest frame (docs/results/bench_modes.md)."""
    input_dim: int = 2
    contact_dim: int = 2
    history_length: int = 12
    train_sequences: int = 128
    test_sequences: int = 32
    """Held-out sequences. 32 hold only a few dozen Markov jumps, which moves the error ratio of the same
    trained models by up to 0.8, so `dhal bench modes` uses 256 (docs/results/bench_modes.md, "Twelve seeds")."""
    sequence_length: int = 200
    burn_in: int = 20
    guard: float = 1.0
    rise_speed: float = 0.1
    fall_speed: float = 0.05
    jump_prob: float = 0.01
    """Per-step probability of the unforeseeable early push. At 0.01 nearly one glide in five ends in one,
    and they make most of the best predictor's error (0.012-0.069 on 28 clocked systems, against 0.002
    of noise), a floor that every K shares and that pulls the error ratio towards 1. `dhal bench modes`
    uses 0.002 (docs/results/bench_modes.md, "Rarer jumps and a larger state")."""
    input_gain: float = 0.5
    equilibrium_norm: float = 2.0
    process_noise: float = 0.02
    clocked_guard: bool = False
    """s moves on a noise-free lattice of fall_speed (a clock, as in DHAL's input) instead of carrying
    process noise; guard and rise_speed must then be whole multiples of fall_speed."""

    def clock_ticks(self) -> tuple[int, int]:
        """(guard, rise_speed) in ticks of fall_speed; ValueError if they are not whole multiples."""
        ticks = []
        for name in ("guard", "rise_speed"):
            value = getattr(self, name) / self.fall_speed
            if not (self.fall_speed > 0 and abs(value - round(value)) < 1e-6 and round(value) >= 1):
                raise ValueError(f"clocked_guard needs {name} ({getattr(self, name)}) to be a whole multiple "
                                 f"of fall_speed ({self.fall_speed})")
            ticks.append(round(value))
        return ticks[0], ticks[1]

    def noise_floor(self) -> float:
        """The true model's expected next-state error (sum of squares over dims; a clock has no noise)."""
        return self.process_noise ** 2 * (self.state_dim - 1 if self.clocked_guard else self.state_dim)


@dataclass
class SLDSData:
    histories: Tensor  # [N, H*F]
    next_state: Tensor  # [N, state_dim]
    next_contacts: Tensor  # [N, contact_dim]
    modes: Tensor  # [N] true mode of the predicted transition
    identifiable: Tensor  # [N] bool: False on Markov-jump steps
    bayes_next_state: Tensor  # [N, state_dim] E[x_{t+1} | history]: the best prediction from the history
    sequence_shape: tuple[int, int]  # (sequences, windows per sequence), row-major in N


@dataclass
class Trajectories:
    """`simulate`'s output; the mode and flags at index t describe transition t (x_t -> x_{t+1})."""

    states: Tensor  # [S, T+1, state_dim]
    inputs: Tensor  # [S, T, input_dim]
    modes: Tensor  # [S, T]
    jumped: Tensor  # [S, T] bool: a Markov jump started this transition
    jump_possible: Tensor  # [S, T] bool: glide before and no guard, so a jump could have happened


@dataclass
class SLDSystem:
    speeds: Tensor  # [3] s' = s + v_k
    A: Tensor  # [3, dy, dy]
    B: Tensor  # [3, dy, du]
    c: Tensor  # [3, dy]


def make_system(cfg: SLDSConfig, generator: torch.Generator) -> SLDSystem:
    dy, du = cfg.state_dim - 1, cfg.input_dim
    if dy < cfg.contact_dim:
        raise ValueError(f"state_dim={cfg.state_dim} leaves too few y dims for contact_dim={cfg.contact_dim}")
    if cfg.clocked_guard:
        cfg.clock_ticks()
    A, B, c = [], [], []
    for rho in RHOS:
        q, r = torch.linalg.qr(torch.randn(dy, dy, generator=generator))
        q = q * torch.sign(torch.diagonal(r))  # a uniformly random orthogonal matrix
        A.append(rho * q)
        B.append(cfg.input_gain * torch.randn(dy, du, generator=generator) / math.sqrt(du))
        # a distinct equilibrium y* = (I - A)^-1 c of norm `equilibrium_norm` per mode
        direction = torch.randn(dy, generator=generator)
        c.append((torch.eye(dy) - A[-1]) @ (cfg.equilibrium_norm * direction / direction.norm()))
    speeds = torch.tensor([cfg.rise_speed, -cfg.fall_speed, -cfg.fall_speed])
    return SLDSystem(speeds=speeds, A=torch.stack(A), B=torch.stack(B), c=torch.stack(c))


def expected_next_state(system: SLDSystem, state: Tensor, u: Tensor, mode: Tensor) -> Tensor:
    """[N, state_dim] the noise-free next state of transition (x, u) in `mode` [N]: the dynamics that
    `simulate` adds process noise to."""
    s, y = state[:, 0], state[:, 1:]
    y_next = (system.A[mode] @ y.unsqueeze(-1) + system.B[mode] @ u.unsqueeze(-1)).squeeze(-1) + system.c[mode]
    return torch.cat([(s + system.speeds[mode])[:, None], y_next], 1)


def simulate(cfg: SLDSConfig, system: SLDSystem, num_sequences: int, generator: torch.Generator) -> Trajectories:
    """`num_sequences` trajectories of `sequence_length` transitions after the burn-in."""
    n, du, steps = num_sequences, cfg.input_dim, cfg.burn_in + cfg.sequence_length
    if cfg.clocked_guard:
        guard_ticks, _ = cfg.clock_ticks()
        phase = torch.randint(-guard_ticks, guard_ticks + 1, (n,), generator=generator)
        s = phase * cfg.fall_speed
        phase_speeds = (system.speeds / cfg.fall_speed).round().long()
    else:
        s = (torch.rand(n, generator=generator) * 2 - 1) * cfg.guard
    # on the clock's lattice a guard fires at its tick, whatever the float rounding of tick * phase
    tolerance = cfg.fall_speed / 2 if cfg.clocked_guard else 0.0
    y = torch.randn(n, cfg.state_dim - 1, generator=generator)
    mode = torch.zeros(n, dtype=torch.long)
    states, inputs, modes, jumps, possible = [torch.cat([s[:, None], y], 1)], [], [], [], []
    for _ in range(steps):
        # the guards and the Markov jump act on x_t and the previous mode
        at_push_guard = s >= cfg.guard - tolerance
        can_jump = (mode == 0) & ~at_push_guard
        jump = can_jump & (torch.rand(n, generator=generator) < cfg.jump_prob)
        to_push = ((mode == 0) & at_push_guard) | jump
        to_air = (mode == 1) & (s <= tolerance)
        to_glide = (mode == 2) & (s <= -cfg.guard + tolerance)
        mode = torch.where(to_push, 1, torch.where(to_air, 2, torch.where(to_glide, 0, mode)))
        u = torch.randn(n, du, generator=generator)
        noise = cfg.process_noise * torch.randn(n, cfg.state_dim, generator=generator)
        expected = expected_next_state(system, states[-1], u, mode)
        if cfg.clocked_guard:
            phase = phase + phase_speeds[mode]
            s = phase * cfg.fall_speed
        else:
            s = expected[:, 0] + noise[:, 0]
        states.append(torch.cat([s[:, None], expected[:, 1:] + noise[:, 1:]], 1))
        inputs.append(u)
        modes.append(mode.clone())
        jumps.append(jump)
        possible.append(can_jump)
    b = cfg.burn_in
    return Trajectories(states=torch.stack(states, 1)[:, b:], inputs=torch.stack(inputs, 1)[:, b:],
                        modes=torch.stack(modes, 1)[:, b:], jumped=torch.stack(jumps, 1)[:, b:],
                        jump_possible=torch.stack(possible, 1)[:, b:])


def make_dataset(cfg: SLDSConfig, system: SLDSystem, num_sequences: int, generator: torch.Generator) -> SLDSData:
    run = simulate(cfg, system, num_sequences, generator)
    states, modes = run.states, run.modes
    h = cfg.history_length
    frames = torch.cat([states[:, :-1], run.inputs], -1)  # [S, T, F]: frame t = [x_t, u_t]
    windows = frames.unfold(1, h, 1).transpose(2, 3)  # [S, T-h+1, h, F], window w ends at t = w+h-1
    num_windows = windows.shape[1]
    t_end = torch.arange(h - 1, h - 1 + num_windows)
    next_state = states[:, t_end + 1]
    contacts = (next_state[..., 1:1 + cfg.contact_dim] > 0).float()
    state, u = states[:, t_end].reshape(-1, cfg.state_dim), run.inputs[:, t_end].reshape(-1, cfg.input_dim)
    mode = modes[:, t_end].reshape(-1)
    # where a jump may start, the history cannot tell glide from an early push: their expectation
    possible = run.jump_possible[:, t_end].reshape(-1)
    glide = expected_next_state(system, state, u, torch.zeros_like(mode))
    push = expected_next_state(system, state, u, torch.ones_like(mode))
    mixed = (1 - cfg.jump_prob) * glide + cfg.jump_prob * push
    bayes = torch.where(possible[:, None], mixed, expected_next_state(system, state, u, mode))
    return SLDSData(
        histories=windows.reshape(num_sequences * num_windows, -1).contiguous(),
        next_state=next_state.reshape(-1, cfg.state_dim),
        next_contacts=contacts.reshape(-1, cfg.contact_dim),
        modes=mode,
        identifiable=~run.jumped[:, t_end].reshape(-1),
        bayes_next_state=bayes,
        sequence_shape=(num_sequences, num_windows),
    )


def bayes_error(data: SLDSData) -> float:
    """The mean next-state error (sum of squares over dims) of the best predictor from the history."""
    return float((data.bayes_next_state - data.next_state).square().sum(-1).mean())


def switch_offsets(data: SLDSData) -> Tensor:
    """[N] signed steps from each sample to the nearest switch step (the first transition of a new mode)
    in its sequence: 0 on the switch step, -1 just before it; a large value where a sequence has none."""
    sequences, windows = data.sequence_shape
    modes = data.modes.view(sequences, windows)
    offsets = torch.full((sequences, windows), 10**6, dtype=torch.long)
    steps = torch.arange(windows)
    for i in range(sequences):
        switches = torch.nonzero(modes[i, 1:] != modes[i, :-1]).flatten() + 1
        if switches.numel():
            signed = steps[:, None] - switches[None]
            offsets[i] = signed.gather(1, signed.abs().argmin(1, keepdim=True))[:, 0]
    return offsets.reshape(-1)
