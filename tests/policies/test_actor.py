"""DHALActor: Beta/Gaussian heads, mode sampling paths, deterministic inference and ONNX export."""

from __future__ import annotations

import warnings

import pytest
import torch
from rsl_rl.modules import BetaDistribution, GaussianDistribution
from tensordict import TensorDict

from dhal.policies.actor import REPLAY_MODE_KEY, REPLAY_NOISE_KEY, DHALActor
from dhal.policies.bench_update import random_observations, synthetic_algorithm
from dhal.policies.training import export_onnx

torch.set_num_threads(1)


def actor_and_obs(overrides: dict | None = None, n: int = 6):
    alg, spec = synthetic_algorithm("smoke", num_envs=n, overrides=overrides)
    return alg.actor, random_observations(spec, torch.Generator().manual_seed(3)), spec


def test_beta_policy_on_the_env_action_range():
    actor, obs, spec = actor_and_obs()
    assert isinstance(actor.distribution, BetaDistribution)
    assert actor.distribution.action_range == [spec.action_low, spec.action_high]
    actions = actor(obs, stochastic_output=True)
    assert actions.shape == (6, 12)
    assert actions.min() >= -3.0 and actions.max() <= 3.0
    # the MLP reads [newest frame, latent]
    assert actor.mlp[0].in_features == spec.frame_size + actor.modes_cfg.latent_dim


def test_mode_outputs_of_the_last_act_are_kept():
    actor, obs, _ = actor_and_obs()
    actor(obs, stochastic_output=True)
    assert actor.last_mode.shape == (6,) and actor.last_mode.dtype == torch.int64
    assert actor.last_mode_probs.shape == (6, 3)
    assert torch.allclose(actor.last_mode_probs.sum(-1), torch.ones(6))
    assert actor.last_sample.noise.shape == (6, actor.modes_cfg.latent_dim)


def test_inference_path_is_deterministic_argmax_and_mean():
    actor, obs, _ = actor_and_obs()
    actor.eval()
    with torch.no_grad():
        first, second = actor(obs), actor(obs)
        probs = torch.softmax(actor.modes.mode_logits(obs["history"]), -1)
    assert torch.equal(first, second)
    assert torch.equal(actor.last_mode, probs.argmax(-1))


def test_replay_reuses_the_stored_mode_and_noise():
    actor, obs, _ = actor_and_obs()
    torch.manual_seed(0)
    actions = actor(obs, stochastic_output=True)
    old_log_prob = actor.get_output_log_prob(actions)
    stored = obs.copy()
    stored[REPLAY_MODE_KEY] = actor.last_sample.mode
    stored[REPLAY_NOISE_KEY] = actor.last_sample.noise
    for _ in range(2):  # fresh randomness elsewhere must not matter
        torch.manual_seed(123)
        actor(stored, stochastic_output=True)
        assert torch.allclose(actor.get_output_log_prob(actions), old_log_prob, atol=1e-6)
        assert torch.equal(actor.last_mode, stored[REPLAY_MODE_KEY])


def test_resample_draws_a_new_latent_each_time():
    """DHAL's released behaviour (DHAL.md §6.6): the update's latent differs from the rollout's."""
    actor, obs, _ = actor_and_obs({"actor.mode_sampling": "resample"})
    torch.manual_seed(0)
    actions = actor(obs, stochastic_output=True)
    old = actor.get_output_log_prob(actions)
    actor(obs, stochastic_output=True)
    assert not torch.allclose(actor.get_output_log_prob(actions), old)


def test_gaussian_ablation_from_config_alone():
    actor, obs, _ = actor_and_obs({"actor.distribution": "gaussian"})
    assert isinstance(actor.distribution, GaussianDistribution)
    assert actor(obs, stochastic_output=True).shape == (6, 12)


def test_wrong_history_size_is_explained():
    obs = TensorDict({"history": torch.zeros(2, 100), "privileged": torch.zeros(2, 5)}, batch_size=[2])
    with pytest.raises(ValueError, match="flattened history"):
        DHALActor(obs, {"actor": ["history"], "critic": ["privileged"]}, "actor", 12,
                  distribution_cfg={"class_name": "BetaDistribution"})


def test_onnx_export_matches_the_inference_policy(tmp_path):
    onnx = pytest.importorskip("onnx")
    actor, obs, _ = actor_and_obs(n=3)
    actor.eval()
    path = export_onnx(actor, tmp_path / "policy.onnx", dynamo=False)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["history"]
    assert [o.name for o in model.graph.output] == ["actions", "mode_probs", "latent"]
    from onnx.reference import ReferenceEvaluator

    history = obs["history"].numpy()
    actions, probs, latent = ReferenceEvaluator(model).run(None, {"history": history})  # dynamic batch of 3
    with torch.no_grad():
        expected = actor(obs)
    assert actions.shape == (3, 12)
    assert torch.allclose(torch.from_numpy(actions), expected, atol=1e-5)
    assert torch.allclose(torch.from_numpy(probs), actor.last_mode_probs, atol=1e-5)
    assert latent.shape == (3, actor.modes_cfg.latent_dim)


def test_torchscript_export_matches_the_inference_policy():
    actor, obs, _ = actor_and_obs(n=2)
    actor.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script is deprecated in torch 2.13
        scripted = torch.jit.script(actor.as_jit())
    with torch.no_grad():
        actions, probs, _ = scripted(obs["history"])
        assert torch.equal(actions, actor(obs))
    assert torch.equal(probs, actor.last_mode_probs)
