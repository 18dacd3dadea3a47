import pytest

from dhal.envs.overrides import ConfigError, apply_overrides
from dhal.envs.skateboard.config import SkateboardConfig


def test_dotted_and_nested_overrides():
    cfg = apply_overrides(SkateboardConfig(), {"sim.decimation": 2, "clock": {"period_s": 2.5}})
    assert cfg.sim.decimation == 2
    assert cfg.clock.period_s == 2.5
    assert SkateboardConfig().sim.decimation == 4  # the default is untouched


def test_reward_term_weight_override():
    cfg = apply_overrides(SkateboardConfig(), {"rewards.terms.torques.weight": -2e-5})
    assert cfg.rewards.terms["torques"].weight == -2e-5


def test_lists_become_tuples_and_ints_floats():
    cfg = apply_overrides(SkateboardConfig(), {"commands.lin_vel_x": [-1, 1], "clock.period_s": 3})
    assert cfg.commands.lin_vel_x == (-1, 1)
    assert isinstance(cfg.clock.period_s, float)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"sim.decimaton": 2}, "sim.decimaton"),
        ({"rewards.terms.not_a_term.weight": 1.0}, "not_a_term"),
        ({"sim.decimation": "four"}, "expected int"),
        ({"observations.critic": "huge"}, "huge"),
        ({"commands.lin_vel_x": [1, 2, 3]}, "expected 2 values"),
        ({"sim.decimation.x": 1}, "below a plain value"),
    ],
)
def test_bad_overrides_name_the_problem(overrides, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(SkateboardConfig(), overrides)


def test_unknown_reward_group_is_rejected():
    with pytest.raises(ValueError, match="groups"):
        apply_overrides(SkateboardConfig(), {"rewards.groups": ["glide", "push"]})
