"""DHALPPO: per-group GAE, own-critic time-out bootstrap, advantage weights by name, gradient
routing to the classifier, ablation configs, and the NMI statistic."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from dhal.policies import presets
from dhal.policies.bench_update import (
    fill_synthetic_rollout, random_extras, random_observations, synthetic_algorithm, synthetic_spec,
)
from dhal.policies.metrics import contact_pattern_labels, normalized_mutual_information
from dhal.policies.modes import ModeOutput
from dhal.policies.ppo import TARGET_CONTACTS_KEY, TARGET_STATE_KEY, build_algorithm, combine_advantages, critic_streams
from tests.host_reads import HostReads

torch.set_num_threads(1)

NAMES = ("glide", "push", "sim2real")
WEIGHTS = {"glide": 0.35, "push": 0.40, "sim2real": 0.25}


# ---- NMI ---------------------------------------------------------------------------------------------

def test_nmi_of_identical_labellings_is_one_whatever_the_names():
    a = torch.tensor([0, 0, 1, 1, 2, 2])
    assert normalized_mutual_information(a, a) == pytest.approx(1.0)
    assert normalized_mutual_information(a, torch.tensor([5, 5, 3, 3, 7, 7])) == pytest.approx(1.0)


def test_nmi_of_independent_labellings_is_zero():
    a = torch.tensor([0, 0, 1, 1])
    b = torch.tensor([0, 1, 0, 1])
    assert normalized_mutual_information(a, b) == pytest.approx(0.0, abs=1e-12)


def test_nmi_matches_a_hand_computation():
    a = torch.tensor([0, 0, 0, 1, 1, 1])
    b = torch.tensor([0, 0, 1, 1, 1, 1])
    # joint: (0,0)=2/6, (0,1)=1/6, (1,1)=3/6; p(a)=(1/2,1/2), p(b)=(1/3,2/3)
    mi = 2 / 6 * math.log((2 / 6) / (1 / 2 * 1 / 3)) + 1 / 6 * math.log((1 / 6) / (1 / 2 * 2 / 3)) \
        + 3 / 6 * math.log((3 / 6) / (1 / 2 * 2 / 3))
    h_a = math.log(2)
    h_b = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
    assert normalized_mutual_information(a, b) == pytest.approx(mi / ((h_a + h_b) / 2))
    assert normalized_mutual_information(b, a) == pytest.approx(mi / ((h_a + h_b) / 2))


def test_nmi_degenerate_cases_and_errors():
    const = torch.zeros(4, dtype=torch.long)
    assert normalized_mutual_information(const, const) == 1.0
    assert normalized_mutual_information(const, torch.tensor([0, 1, 0, 1])) == 0.0
    with pytest.raises(ValueError):
        normalized_mutual_information(const, torch.zeros(3))


def test_contact_pattern_labels_are_bit_patterns():
    contacts = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    assert contact_pattern_labels(contacts).tolist() == [0, 1, 6, 7]


# ---- returns and advantages --------------------------------------------------------------------------

def test_per_group_gae_equals_a_naive_loop():
    alg, spec = synthetic_algorithm("smoke", num_envs=4, overrides={"ppo.gamma": 0.9, "ppo.lam": 0.8})
    last_obs = fill_synthetic_rollout(alg, spec, seed=1, done_prob=0.2, timeout_prob=0.1)
    st = alg.storage
    with torch.no_grad():
        last_values = alg.critic(last_obs)
    rewards, values, dones = st.rewards.tolist(), st.values.tolist(), st.dones.squeeze(-1).tolist()
    assert any(any(row) for row in dones), "the synthetic rollout should contain episode ends"
    T, N, G = st.rewards.shape
    for n in range(N):
        for g in range(G):
            adv = 0.0
            for t in reversed(range(T)):
                next_v = float(last_values[n, g]) if t == T - 1 else values[t + 1][n][g]
                not_done = 1.0 - dones[t][n]
                delta = rewards[t][n][g] + not_done * 0.9 * next_v - values[t][n][g]
                adv = delta + not_done * 0.9 * 0.8 * adv
                assert float(st.returns[t, n, g]) == pytest.approx(adv + values[t][n][g], abs=1e-5)


def test_advantages_are_normalised_per_group_then_weighted_by_name():
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(6, 5, 3, generator=g) * torch.tensor([1.0, 10.0, 100.0]) + torch.tensor([5.0, -3.0, 40.0])
    # the weights are matched by name, whatever the dict's order
    names, _, weights = critic_streams("multi", NAMES, {"sim2real": 0.25, "glide": 0.35, "push": 0.40})
    assert names == NAMES and weights.tolist() == pytest.approx([0.35, 0.40, 0.25])
    combined = combine_advantages(raw, weights)
    assert combined.shape == (6, 5, 1)
    expected = sum(w * (raw[..., i] - raw[..., i].mean()) / (raw[..., i].std() + 1e-8)
                   for i, w in enumerate([0.35, 0.40, 0.25]))
    assert torch.allclose(combined.squeeze(-1), expected, atol=1e-5)


def test_advantage_weight_names_must_match_the_env_groups():
    with pytest.raises(ValueError, match="reward groups"):
        critic_streams("multi", NAMES, {"glide": 0.5, "push": 0.5})
    with pytest.raises(ValueError, match="reward groups"):
        critic_streams("multi", NAMES, {"glide": 0.3, "push": 0.3, "reg": 0.4})
    cfg = presets.smoke()
    cfg = dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, advantage_weights={"glide": 0.5, "push": 0.5}))
    with pytest.raises(ValueError, match="sim2real"):
        build_algorithm(synthetic_spec(4), presets.rsl_rl_config(cfg))


def test_time_out_bootstraps_each_group_with_its_own_critic():
    alg, spec = synthetic_algorithm("smoke", num_envs=4)
    constants = torch.tensor([1.0, 20.0, 300.0])
    with torch.no_grad():  # V_g(s) = c_g everywhere
        for head, c in zip(alg.critic.mlp.heads, constants):
            head[-1].weight.zero_()
            head[-1].bias.fill_(float(c))
    gen = torch.Generator().manual_seed(0)
    obs = random_observations(spec, gen)
    _, _, extras = random_extras(spec, gen)
    extras["reward_groups"] = torch.zeros(4, 3)
    extras["time_outs"] = torch.tensor([True, False, True, False])
    dones = extras["time_outs"].clone()
    with torch.inference_mode():
        alg.act(obs)
        alg.process_env_step(random_observations(spec, gen), torch.zeros(4), dones, extras)
    stored = alg.storage.rewards[0]
    gamma = alg.gamma
    assert torch.allclose(stored[0], gamma * constants) and torch.allclose(stored[2], gamma * constants)
    assert torch.equal(stored[1], torch.zeros(3)) and torch.equal(stored[3], torch.zeros(3))


def test_dynamics_targets_are_stored_with_the_transition():
    alg, spec = synthetic_algorithm("smoke", num_envs=4)
    gen = torch.Generator().manual_seed(0)
    obs = random_observations(spec, gen)
    _, dones, extras = random_extras(spec, gen)
    with torch.inference_mode():
        alg.act(obs)
        alg.process_env_step(random_observations(spec, gen), torch.zeros(4), dones, extras)
    stored = alg.storage.observations[0]
    assert torch.equal(stored[TARGET_STATE_KEY], extras["dynamics_targets"]["next_state"])
    assert torch.equal(stored[TARGET_CONTACTS_KEY], extras["dynamics_targets"]["next_contacts"])
    assert torch.equal(stored["history"], obs["history"])  # o_t, not o_{t+1}


def test_wrong_dynamics_target_size_is_explained():
    alg, spec = synthetic_algorithm("smoke", num_envs=4)
    gen = torch.Generator().manual_seed(0)
    _, dones, extras = random_extras(spec, gen)
    extras["dynamics_targets"]["next_contacts"] = torch.zeros(4, 4)
    with torch.inference_mode(), pytest.raises(ValueError, match="next_contacts"):
        alg.act(random_observations(spec, gen))
        alg.process_env_step(random_observations(spec, gen), torch.zeros(4), dones, extras)


# ---- gradients -------------------------------------------------------------------------------------

def _grad_sum(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("sampling", ["replay", "resample", "deterministic"])
def test_classifier_is_trained_by_the_dynamics_loss_only(sampling):
    alg, spec = synthetic_algorithm("smoke", num_envs=4, overrides={"actor.mode_sampling": sampling})
    fill_synthetic_rollout(alg, spec)
    batch = next(alg.storage.mini_batch_generator(1, 1))
    classifier, encoders = alg.actor.modes.classifier, alg.actor.modes.vaes

    terms = alg.minibatch_losses(batch)
    alg.optimizer.zero_grad()
    (terms["surrogate"] + terms["value"] - 0.01 * terms["entropy"]).backward()
    assert _grad_sum(classifier) == 0.0
    assert _grad_sum(encoders) > 0.0  # PPO does reach the selected encoders through z
    assert _grad_sum(alg.actor.mlp) > 0.0

    terms = alg.minibatch_losses(batch)
    alg.optimizer.zero_grad()
    terms["dynamics"].backward()
    assert _grad_sum(classifier) > 0.0


def test_replay_gives_ratio_one_and_zero_kl_before_the_first_step():
    alg, spec = synthetic_algorithm("smoke", num_envs=4)
    fill_synthetic_rollout(alg, spec)
    terms = alg.minibatch_losses(next(alg.storage.mini_batch_generator(1, 1)))
    assert float(terms["ratio_deviation"]) < 1e-5
    assert float(terms["kl"]) < 1e-6


# ---- ablations and the update -----------------------------------------------------------------------

def test_update_returns_the_logged_terms():
    alg, spec = synthetic_algorithm("smoke", num_envs=4)
    fill_synthetic_rollout(alg, spec)
    result = alg.update()
    for key in ("surrogate", "value", "entropy", "kl", "dynamics", "value_glide", "value_push", "value_sim2real",
                "Dynamics/rec_loss_mode_0", "Dynamics/occupancy_mode_2", "Modes/switch_rate", "Modes/contact_nmi",
                "Modes/acting_occupancy_0", "Policy/beta_alpha_mean", "Policy/beta_beta_mean",
                "Reward/glide_per_step"):
        assert key in result and math.isfinite(result[key]), key
    assert result["value"] == pytest.approx(result["value_glide"] + result["value_push"] + result["value_sim2real"])
    assert alg.storage.step == 0



def test_the_update_reads_the_device_once_per_minibatch_not_once_per_logged_term():
    """The adaptive learning rate needs the KL on the host after each minibatch's forward pass;
    the twenty-odd logged terms are summed on the device and read once at the end (they were
    read after every minibatch's backward pass, which kept the next one from being queued).
    Adam's step counters are host tensors (reading them waits for nothing), so not counted."""
    alg, spec = synthetic_algorithm("smoke", num_envs=4)
    alg.num_mini_batches, alg.num_learning_epochs = 2, 3
    fill_synthetic_rollout(alg, spec)
    end_of_update = 35  # the means' one read, and rollout_statistics' mode, switch and NMI summaries
    reads = HostReads(ignore_callers=("torch/optim",))
    with reads:
        alg.update()
    assert sum(reads.calls.values()) <= 2 * 3 + end_of_update, dict(reads.calls)

@pytest.mark.parametrize("mode, column", [("single", torch.ones(3)), ("single_transferred", torch.tensor([0.35, 0.40, 0.25]))])
def test_single_critic_ablations_build_and_learn(mode, column):
    alg, spec = synthetic_algorithm("smoke", num_envs=4, overrides={"critic.mode": mode})
    assert alg.critic_names == ("total",) and len(alg.critic.mlp.heads) == 1
    gen = torch.Generator().manual_seed(0)
    _, dones, extras = random_extras(spec, gen, timeout_prob=0.0)
    with torch.inference_mode():
        alg.act(random_observations(spec, gen))
        alg.process_env_step(random_observations(spec, gen), torch.zeros(4), dones, extras)
    assert torch.allclose(alg.storage.rewards[0, :, 0], extras["reward_groups"] @ column)
    alg.storage.clear()
    fill_synthetic_rollout(alg, spec)
    result = alg.update()
    assert "value_total" in result and math.isfinite(result["value"])


def test_gaussian_ablation_learns_one_iteration():
    alg, spec = synthetic_algorithm("smoke", num_envs=4, overrides={"actor.distribution": "gaussian"})
    fill_synthetic_rollout(alg, spec)
    result = alg.update()
    assert math.isfinite(result["surrogate"]) and "Policy/std_mean" in result


def test_num_modes_is_a_config_switch():
    alg, spec = synthetic_algorithm("smoke", num_envs=4, overrides={"modes.num_modes": 2})
    assert len(alg.actor.modes.vaes) == 2
    fill_synthetic_rollout(alg, spec)
    assert "Dynamics/rec_loss_mode_1" in alg.update()


def test_mode_switch_rate_and_contact_nmi_over_a_scripted_rollout():
    alg, spec = synthetic_algorithm("smoke", num_envs=2, overrides={"num_steps_per_env": 4,
                                                                     "actor.mode_sampling": "deterministic"})
    modes = iter(torch.tensor(m) for m in ([0, 0], [0, 1], [1, 0], [1, 1]))
    done_after = {1: torch.tensor([False, True])}  # env 1 restarts after step 1: its next change is no switch

    def scripted(history, deterministic, generator=None):
        mode = next(modes)
        one_hot = torch.nn.functional.one_hot(mode, 3).float()
        return ModeOutput(latent=torch.zeros(2, alg.actor.modes_cfg.latent_dim), mode_probs=one_hot, mode=mode,
                          one_hot=one_hot)

    alg.actor.modes.act_latent = scripted
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for step in range(4):
            alg.act(random_observations(spec, gen))
            mode = alg.actor.last_mode
            _, _, extras = random_extras(spec, gen, timeout_prob=0.0)
            contacts = torch.zeros(2, 3)
            contacts[:, 0] = mode.float()  # contact pattern label == mode
            extras["dynamics_targets"]["next_contacts"] = contacts
            dones = done_after.get(step, torch.zeros(2, dtype=torch.bool))
            alg.process_env_step(random_observations(spec, gen), torch.zeros(2), dones, extras)
    stats = alg.rollout_statistics()
    # comparable steps: t1 both, t2 env 0 only, t3 both = 5; switches: t1 env 1, t2 env 0, t3 env 1 = 3
    assert stats["Modes/switch_rate"] == pytest.approx(3 / 5)
    assert stats["Modes/argmax_switch_rate"] == pytest.approx(3 / 5)
    assert stats["Modes/contact_nmi"] == pytest.approx(1.0)
    assert stats["Modes/acting_occupancy_0"] == pytest.approx(0.5)
    assert stats["Modes/acting_occupancy_2"] == 0.0
