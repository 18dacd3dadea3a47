import pytest
import torch

from dhal.envs.robots import go1
from dhal.envs.skateboard import rewards
from dhal.envs.skateboard.config import RewardConfig, RewardTerm
from tests.envs.skateboard.conftest import make_state


def ctx_for(state, cfg=None, **kw):
    n = state.base_pos.shape[0]
    args = dict(
        state=state, cfg=cfg or RewardConfig(), commands=torch.zeros(n, 3), actions=torch.zeros(n, 12),
        last_actions=torch.zeros(n, 12), last_joint_vel=torch.zeros(n, 12), last_torques=torch.zeros(n, 12),
        wheel_contact=torch.ones(n, 4, dtype=torch.bool), default_pose=torch.tensor(go1.DEFAULT_POSE),
        glide_pose=torch.tensor(go1.GLIDE_POSE), dt=0.02,
    )
    args.update(kw)
    return rewards.RewardContext(**args)


def test_gliding_on_markers_maximises_glide_terms():
    ctx = ctx_for(make_state())
    assert torch.all(rewards.feet_on_board(ctx) == 4)
    assert torch.all(rewards.contact_number(ctx) == 2 * (4 + 4))
    assert torch.allclose(rewards.feet_distance(ctx), torch.ones(2))
    assert torch.allclose(rewards.joint_pos_glide(ctx), torch.ones(2))


def test_pushing_foot_on_ground_is_penalised():
    s = make_state()
    s.foot_pos = s.foot_pos.clone()
    s.foot_pos[:, 0] = torch.tensor([0.1, -0.25, 0.02])  # FR on the floor beside the deck
    ctx = ctx_for(s)
    assert torch.all(rewards.feet_on_board(ctx) == 3)
    # 3 feet on board, not all four: 2*3; FR not on board and on ground: -2.
    assert torch.all(rewards.contact_number(ctx) == 6 - 2)
    off = torch.tensor([0.1, -0.25 + 0.14, 0.02 - 0.05]).norm()
    assert torch.allclose(rewards.feet_distance(ctx), torch.exp(-3.0 * off).expand(2))


def test_velocity_tracking_saturates_below_the_clip():
    s = make_state(base_lin_vel_b=torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    ctx = ctx_for(s, commands=torch.tensor([[1.05, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    r = rewards.track_lin_vel(ctx)
    assert torch.allclose(r[0], torch.exp(torch.tensor(-(0.2**2 + 0.2**2) / 0.5)))
    assert r[1] < r[0]


def test_regularisers_respond_to_their_inputs():
    s = make_state(joint_torque=torch.ones(2, 12) * 2.0, collision_force=torch.tensor([[0.0] * 7 + [5.0], [0.0] * 8]))
    ctx = ctx_for(s, actions=torch.ones(2, 12), last_actions=torch.zeros(2, 12))
    assert torch.allclose(rewards.torques(ctx), torch.full((2,), 48.0))
    assert rewards.collisions(ctx).tolist() == [1.0, 0.0]
    assert torch.allclose(rewards.action_rate(ctx), torch.full((2,), 12**0.5))  # L2 norm, not squared


def test_groups_gates_and_positive_clip():
    cfg = RewardConfig(terms={
        "feet_on_board": RewardTerm("glide", 1.0, "glide"),
        "torques": RewardTerm("sim2real", -1.0),
        "track_ang_vel": RewardTerm("push", 1.0, "push"),
    })
    s = make_state(joint_torque=torch.ones(2, 12))
    gates = {"glide": torch.tensor([1.0, 0.5]), "push": torch.tensor([0.0, 1.0])}
    out = rewards.compute_rewards(ctx_for(s, cfg=cfg), gates)
    assert out.groups.shape == (2, 3)
    assert torch.allclose(out.groups[:, 0], torch.tensor([4.0, 2.0]) * 0.02)
    assert torch.allclose(out.groups[:, 1], torch.tensor([0.0, 1.0]) * 0.02)
    assert torch.all(out.groups[:, 2] == 0)  # negative sim2real sum clipped at 0
    assert torch.allclose(out.terms["torques"], torch.full((2,), -12.0 * 0.02))
    assert torch.allclose(out.total, out.groups.sum(-1))


def test_unknown_reward_term_is_named():
    with pytest.raises(KeyError, match="flying"):
        rewards.check_reward_config(RewardConfig(terms={"flying": RewardTerm("glide", 1.0)}))
