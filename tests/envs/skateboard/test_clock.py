import torch

from dhal.envs.skateboard import clock
from dhal.envs.skateboard.config import ClockConfig

CFG = ClockConfig()
MOVING = torch.tensor([[1.0, 0.0, 0.0]])


def test_push_window_is_a_third_of_the_cycle():
    t = torch.arange(0, 4.0, 0.02)
    phase = clock.clock_phase(t, CFG)
    push = clock.phase_indicators(phase, MOVING.expand(len(t), 3), CFG)["push"]
    # sin(2 pi t / 4) >= 0.5 for t in [1/3, 5/3] s: 1.33 s of the 4 s cycle.
    assert abs(float(push.mean()) - (4 / 3) / 4) < 0.02
    assert push[t < 0.3].sum() == 0 and push[(t > 0.4) & (t < 1.6)].min() == 1


def test_still_command_always_glides_and_zeroes_phase_input():
    still = torch.zeros(1, 3)
    phase = torch.tensor([0.9])
    ind = clock.phase_indicators(phase, still, CFG)
    assert ind["glide"].item() == 1 and ind["push"].item() == 0
    assert clock.phase_input(phase, still, CFG).item() == 0
    assert abs(clock.phase_input(phase, MOVING, CFG).item() - 0.9) < 1e-6


def test_gate_settles_at_one_not_dhal_1_4():
    gates = {"glide": torch.zeros(1), "push": torch.zeros(1)}
    for _ in range(60):
        gates = clock.updated_gates(gates, {"glide": torch.ones(1), "push": torch.zeros(1)}, CFG)
    assert abs(gates["glide"].item() - 1.0) < 1e-6
    assert gates["push"].item() == 0
