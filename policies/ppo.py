"""Multi-critic PPO with DHAL's dynamics loss, on stock rsl-rl 5.x (LEARNER.md §3, §8).

Per iteration (DHAL.md §4, §6.5):
* Rollout: each transition stores the group rewards mapped to the critics' reward streams
  (`reward_matrix`), the dynamics targets of the step (taken by the env before resets) and, with
  `mode_sampling="replay"`, the sampled mode and latent noise.
* Time-outs: r_g += gamma * V_g(s_t) with each group's OWN critic (DHAL's code adds the value of an
  untrained "total" critic to every group, DHAL.md §11.2 item 12; not reproduced).
* Returns: GAE(gamma, lambda) per reward stream with its own critic; each stream's advantage is
  normalised over the whole rollout, then combined with the advantage weights (by group NAME) and
  not renormalised.
* Update, per minibatch: clipped surrogate on the combined advantage + value_loss_coef * sum over
  critics of the clipped value loss - entropy_coef * entropy + dynamics_loss_coef *
  HybridModes.dynamics_loss; one backward, grad-norm clipping (actor incl. modes, critics), one
  Adam step; the adaptive learning rate follows rsl-rl (KL of the action distribution, exact Beta
  KL for the Beta policy).

The classifier is trained only by the dynamics loss: the acting path detaches the mode
probabilities (and, with replay, does not run the classifier in the update at all).

Critic modes: "multi" = one critic per env reward group; "single" ("wo-MC") = one critic on the
plain sum of the groups; "single_transferred" = one critic on sum_g w_g * r_g.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from rsl_rl.algorithms import PPO
from rsl_rl.env import VecEnv
from rsl_rl.storage import RolloutStorage
from rsl_rl.utils import resolve_class, resolve_obs_groups
from tensordict import TensorDict
from torch import Tensor, nn

from dhal.policies.actor import REPLAY_MODE_KEY, REPLAY_NOISE_KEY, DHALActor
from dhal.policies.critic import MultiCritic
from dhal.policies.metrics import contact_pattern_labels, normalized_mutual_information
from dhal.policies.modes import ModesConfig
from dhal.policies.storage import MultiCriticRolloutStorage

TARGET_STATE_KEY = "target_next_state"
TARGET_CONTACTS_KEY = "target_next_contacts"
CRITIC_MODES = ("multi", "single", "single_transferred")
SINGLE_CRITIC_NAME = "total"


# ---- what the learner needs to know about the env -------------------------------------------------

@dataclass(frozen=True)
class EnvSpec:
    num_envs: int
    num_actions: int
    obs_sizes: dict[str, int]
    action_low: float
    action_high: float
    reward_group_names: tuple[str, ...]
    history_length: int
    frame_size: int
    state_dim: int
    contact_dim: int

    @classmethod
    def from_env(cls, env: Any, obs: TensorDict | None = None, defaults: ModesConfig | None = None) -> EnvSpec:
        """From an rsl-rl VecEnv (its `unwrapped` BatchedEnv) or a BatchedEnv. The dynamics-target sizes
        come from the env's observation contract when it has one; the contact size is checked against
        the first step's targets."""
        base = getattr(env, "unwrapped", env)
        defaults = defaults or ModesConfig()
        if obs is not None:
            obs_sizes = {k: int(v.shape[-1]) for k, v in obs.items()}
        else:
            obs_sizes = dict(base.observation_sizes)
        contract = getattr(base, "contract", None)
        if contract is not None:
            history_length, frame_size, state_dim = contract.history_length, contract.frame_size, contract.dynamics_size
        else:
            frame_size = obs_sizes.get("proprio", defaults.frame_size)
            history_length = obs_sizes["history"] // frame_size
            state_dim = defaults.state_dim
        return cls(
            num_envs=int(base.num_envs),
            num_actions=int(base.num_actions),
            obs_sizes=obs_sizes,
            action_low=float(base.action_low),
            action_high=float(base.action_high),
            reward_group_names=tuple(base.reward_group_names),
            history_length=int(history_length),
            frame_size=int(frame_size),
            state_dim=int(state_dim),
            contact_dim=defaults.contact_dim,
        )

    def zero_observations(self, device: str = "cpu") -> TensorDict:
        return TensorDict(
            {k: torch.zeros(self.num_envs, d, device=device) for k, d in self.obs_sizes.items()},
            batch_size=[self.num_envs], device=device,
        )


def critic_streams(
    critic_mode: str, group_names: Sequence[str], advantage_weights: Mapping[str, float]
) -> tuple[tuple[str, ...], Tensor, Tensor]:
    """(critic names, reward matrix [G_env, G_critic], advantage weights [G_critic]).

    The advantage weights are keyed by the env's reward group names; any difference is an error."""
    group_names = tuple(group_names)
    if critic_mode not in CRITIC_MODES:
        raise ValueError(f"critic_mode must be one of {CRITIC_MODES}, got {critic_mode!r}")
    if set(advantage_weights) != set(group_names) or len(set(group_names)) != len(group_names):
        raise ValueError(
            f"advantage_weights name the reward groups {sorted(advantage_weights)}, but the env's reward "
            f"groups are {list(group_names)}; give exactly one weight per env group"
        )
    weights = torch.tensor([float(advantage_weights[name]) for name in group_names])
    if critic_mode == "multi":
        return group_names, torch.eye(len(group_names)), weights
    if critic_mode == "single":
        return (SINGLE_CRITIC_NAME,), torch.ones(len(group_names), 1), torch.ones(1)
    return (SINGLE_CRITIC_NAME,), weights.reshape(-1, 1).clone(), torch.ones(1)


def build_algorithm(spec: EnvSpec, cfg: dict, device: str = "cpu", obs: TensorDict | None = None) -> DHALPPO:
    """Actor, critics, storage and DHALPPO from the rsl-rl config dict (`presets.rsl_rl_config`).
    Sets cfg["obs_groups"] to the resolved groups, as rsl-rl's construct_algorithm does."""
    obs = obs if obs is not None else spec.zero_observations(device)
    alg_class, alg_cfg = resolve_class(cfg["algorithm"])
    actor_class, actor_cfg = resolve_class(cfg["actor"])
    critic_class, critic_cfg = resolve_class(cfg["critic"])
    cfg["obs_groups"] = resolve_obs_groups(obs, cfg["obs_groups"], ["actor", "critic"])

    modes = dict(actor_cfg.pop("modes", {}) or {})
    modes.update(history_length=spec.history_length, frame_size=spec.frame_size,
                 state_dim=spec.state_dim, contact_dim=spec.contact_dim)
    distribution = dict(actor_cfg.pop("distribution_cfg"))
    if distribution.get("class_name") in ("BetaDistribution", "rsl_rl.modules:BetaDistribution"):
        distribution.setdefault("action_range", [spec.action_low, spec.action_high])
    actor = actor_class(obs, cfg["obs_groups"], "actor", spec.num_actions, distribution_cfg=distribution,
                        modes=modes, **actor_cfg).to(device)

    critic_mode = alg_cfg.get("critic_mode", "multi")
    names, _, _ = critic_streams(critic_mode, spec.reward_group_names, alg_cfg.get("advantage_weights", {}))
    critic = critic_class(obs, cfg["obs_groups"], "critic", len(names), group_names=names, **critic_cfg).to(device)

    modes_cfg: ModesConfig = actor.modes_cfg
    extra: dict[str, tuple[tuple[int, ...], torch.dtype]] = {
        TARGET_STATE_KEY: ((modes_cfg.state_dim,), torch.float32),
        TARGET_CONTACTS_KEY: ((modes_cfg.contact_dim,), torch.float32),
    }
    if actor.mode_sampling == "replay":
        extra[REPLAY_MODE_KEY] = ((), torch.int64)
        extra[REPLAY_NOISE_KEY] = ((modes_cfg.latent_dim,), torch.float32)
    storage = MultiCriticRolloutStorage(spec.num_envs, cfg["num_steps_per_env"], obs, [spec.num_actions],
                                        len(names), extra, device)
    alg = alg_class(actor, critic, storage, reward_group_names=spec.reward_group_names, device=device,
                    multi_gpu_cfg=cfg.get("multi_gpu"), **alg_cfg)
    alg.compile(cfg.get("torch_compile_mode"))
    return alg


# ---- the algorithm -------------------------------------------------------------------------------

class DHALPPO(PPO):
    actor: DHALActor
    critic: MultiCritic
    storage: MultiCriticRolloutStorage
    learning_rate: float

    def __init__(
        self,
        actor: DHALActor,
        critic: MultiCritic,
        storage: MultiCriticRolloutStorage,
        reward_group_names: Sequence[str],
        advantage_weights: Mapping[str, float],
        critic_mode: str = "multi",
        dynamics_loss_coef: float = 1.0,
        rnd_cfg: dict | None = None,
        symmetry_cfg: dict | None = None,
        normalize_advantage_per_mini_batch: bool = False,
        use_mixed_precision: bool = False,
        multi_gpu_cfg: dict | None = None,
        **ppo_kwargs: Any,
    ) -> None:
        unsupported = {
            "rnd_cfg": rnd_cfg, "symmetry_cfg": symmetry_cfg,
            "normalize_advantage_per_mini_batch": normalize_advantage_per_mini_batch,
            "use_mixed_precision": use_mixed_precision,
        }
        used = [name for name, value in unsupported.items() if value]
        if used:
            raise ValueError(f"DHALPPO does not support {used}")
        if actor.is_recurrent or critic.is_recurrent:
            raise ValueError("DHALPPO supports feed-forward actor and critics only")
        # Several processes (torchrun, one per GPU): rsl-rl's runner sets multi_gpu_cfg and
        # broadcasts the parameters; `update` averages gradients and the KL over the processes.
        super().__init__(actor, critic, storage, multi_gpu_cfg=multi_gpu_cfg, **ppo_kwargs)
        self.reward_group_names = tuple(reward_group_names)
        self.critic_mode = critic_mode
        self.critic_names, reward_matrix, weights = critic_streams(critic_mode, reward_group_names, advantage_weights)
        if getattr(critic, "num_groups", 1) != len(self.critic_names):
            raise ValueError(f"critic mode {critic_mode!r} needs {len(self.critic_names)} critics "
                             f"({', '.join(self.critic_names)}); the critic model has {critic.num_groups}")
        if storage.num_groups != len(self.critic_names):
            raise ValueError(f"storage holds {storage.num_groups} reward streams, the critics are {len(self.critic_names)}")
        self.reward_matrix = reward_matrix.to(self.device)
        self.advantage_weights = weights.to(self.device)
        self.dynamics_loss_coef = dynamics_loss_coef
        self.history_key = actor.obs_groups[0]
        self._targets_checked = False
        self._acting_mode: Tensor | None = None  # [2, N]: the acting (sampled) mode and the argmax mode
        self._allocate_rollout_stats()

    @staticmethod
    def construct_algorithm(obs: TensorDict, env: VecEnv, cfg: dict, device: str) -> DHALPPO:
        """What rsl-rl's OnPolicyRunner calls: everything built from the env and the config dict."""
        return build_algorithm(EnvSpec.from_env(env, obs), cfg, device, obs)

    # ---- rollout ---------------------------------------------------------------------------------
    def _allocate_rollout_stats(self) -> None:
        t, n, dev = self.storage.num_transitions_per_env, self.storage.num_envs, self.device
        self._rollout_modes = torch.zeros(2, t, n, dtype=torch.long, device=dev)  # acting, argmax
        self._rollout_contacts = torch.zeros(t, n, dtype=torch.long, device=dev)
        self._group_reward_sums = torch.zeros(len(self.reward_group_names), device=dev)
        self._prev_mode = torch.full((2, n), -1, dtype=torch.long, device=dev)
        self._switch_counts = torch.zeros(2, 2, device=dev)  # [acting|argmax, switches|comparable steps]

    def act(self, obs: TensorDict) -> Tensor:
        actions = super().act(obs)
        stored = obs.copy()  # shallow; the storage-only fields are added to the copy
        if self.actor.mode_sampling == "replay":
            sample = self.actor.last_sample
            assert sample is not None, "the replay actor keeps the sample of its last stochastic forward"
            stored[REPLAY_MODE_KEY] = sample.mode
            stored[REPLAY_NOISE_KEY] = sample.noise
        self.transition.observations = stored
        assert self.actor.last_mode is not None and self.actor.last_mode_probs is not None
        mode = torch.stack([self.actor.last_mode, self.actor.last_mode_probs.argmax(-1)])
        self._acting_mode = mode
        comparable = self._prev_mode >= 0
        self._switch_counts[:, 0] += ((mode != self._prev_mode) & comparable).sum(-1)
        self._switch_counts[:, 1] += comparable.sum(-1)
        self._prev_mode.copy_(mode)
        return actions

    def process_env_step(self, obs: TensorDict, rewards: Tensor, dones: Tensor, extras: dict[str, Any]) -> None:
        groups = self._check_extras(extras)
        self.transition.rewards = groups @ self.reward_matrix  # [N, G_critic]
        self.transition.dones = dones
        if "time_outs" in extras:
            time_outs = extras["time_outs"].to(self.device).unsqueeze(1).float()
            # each stream bootstraps with its own critic's V(s_t) (rsl-rl convention: pre-step value)
            self.transition.rewards = self.transition.rewards + self.gamma * self.transition.values * time_outs
        targets = extras["dynamics_targets"]
        contacts = targets["next_contacts"].to(self.device).float()
        self.transition.observations[TARGET_STATE_KEY] = targets["next_state"].to(self.device).float()
        self.transition.observations[TARGET_CONTACTS_KEY] = contacts

        step = self.storage.step
        if self._acting_mode is None:
            raise RuntimeError("process_env_step() before act()")
        if step < self.storage.num_transitions_per_env:
            self._rollout_modes[:, step].copy_(self._acting_mode)
            self._rollout_contacts[step].copy_(contact_pattern_labels(contacts))
        self._group_reward_sums += groups.sum(0)

        self.storage.add_transition(self.transition)
        self.transition.clear()
        self.actor.reset(dones)
        self.critic.reset(dones)
        self._prev_mode.masked_fill_(dones.to(self.device).bool().unsqueeze(0), -1)  # a new episode starts unswitched

    def _check_extras(self, extras: dict[str, Any]) -> Tensor:
        for key in ("reward_groups", "dynamics_targets"):
            if key not in extras:
                raise KeyError(f"the env's extras lack {key!r}; DHALPPO needs per-group rewards and dynamics targets")
        groups = extras["reward_groups"].to(self.device).float()
        if not self._targets_checked:
            names = tuple(extras.get("reward_group_names", self.reward_group_names))
            if names != self.reward_group_names:
                raise ValueError(f"the env's reward groups are {list(names)}, the learner was built for "
                                 f"{list(self.reward_group_names)}")
            n = self.storage.num_envs
            if tuple(groups.shape) != (n, len(self.reward_group_names)):
                raise ValueError(f"reward_groups must be [{n}, {len(self.reward_group_names)}], got {list(groups.shape)}")
            cfg = self.actor.modes_cfg
            for key, size in (("next_state", cfg.state_dim), ("next_contacts", cfg.contact_dim)):
                shape = tuple(extras["dynamics_targets"][key].shape)
                if shape != (n, size):
                    raise ValueError(f"dynamics target {key!r} is {list(shape)}, the dynamics model expects [{n}, {size}]")
            self._targets_checked = True
        return groups

    def compute_returns(self, obs: TensorDict) -> None:
        st = self.storage
        last_values = self.critic(obs).detach()
        advantage: Tensor | float = 0.0
        for step in reversed(range(st.num_transitions_per_env)):
            next_values = last_values if step == st.num_transitions_per_env - 1 else st.values[step + 1]
            not_terminal = 1.0 - st.dones[step].float()  # [N, 1], broadcasts over the G streams
            delta = st.rewards[step] + not_terminal * self.gamma * next_values - st.values[step]
            advantage = delta + not_terminal * self.gamma * self.lam * advantage
            st.returns[step] = advantage + st.values[step]
        st.advantages = combine_advantages(st.returns - st.values, self.advantage_weights)

    # ---- update ----------------------------------------------------------------------------------
    def minibatch_losses(self, batch: RolloutStorage.Batch) -> dict[str, Any]:
        """All loss terms of one minibatch (tensors with graph, plus detached statistics)."""
        obs = batch.observations
        self.actor(obs, stochastic_output=True)
        log_prob = self.actor.get_output_log_prob(batch.actions)
        params = self.actor.output_distribution_params
        entropy = self.actor.output_entropy.mean()
        values = self.critic(obs)  # [B, G]

        with torch.no_grad():
            kl = self.actor.get_kl_divergence(batch.old_distribution_params, params).mean()
        ratio = torch.exp(log_prob - batch.old_actions_log_prob.squeeze(-1))
        adv = batch.advantages.squeeze(-1)
        clipped_ratio = torch.clamp(ratio, 1.0 - self.clip_param, 1.0 + self.clip_param)
        surrogate = torch.max(-adv * ratio, -adv * clipped_ratio).mean()

        if self.use_clipped_value_loss:
            value_clipped = batch.values + (values - batch.values).clamp(-self.clip_param, self.clip_param)
            per_critic = torch.max((values - batch.returns).pow(2), (value_clipped - batch.returns).pow(2)).mean(0)
        else:
            per_critic = (values - batch.returns).pow(2).mean(0)

        dynamics, dyn_stats = self.actor.modes.dynamics_loss(
            obs[self.history_key], obs[TARGET_STATE_KEY], obs[TARGET_CONTACTS_KEY])
        return {
            "surrogate": surrogate,
            "value": per_critic.sum(),
            "value_per_critic": per_critic,
            "entropy": entropy,
            "dynamics": dynamics,
            "kl": kl,
            "dynamics_stats": dyn_stats,
            "ratio_deviation": (ratio.detach() - 1.0).abs().mean(),
            "clip_fraction": ((ratio.detach() - 1.0).abs() > self.clip_param).float().mean(),
        }

    def update(self) -> dict[str, float]:
        # The loss terms are summed on the device and read once at the end: a host read per
        # minibatch would wait for its backward pass before the next minibatch could be queued.
        sums: dict[str, Tensor] = {}

        def add(key: str, value: Tensor) -> None:
            sums[key] = value if key not in sums else sums[key] + value

        num_updates = 0
        first_ratio_deviation: Tensor | None = None
        for batch in self.storage.mini_batch_generator(self.num_mini_batches, self.num_learning_epochs):
            terms = self.minibatch_losses(batch)
            if first_ratio_deviation is None:
                first_ratio_deviation = terms["ratio_deviation"].detach()
            if self.desired_kl is not None and self.schedule == "adaptive":
                self._adapt_learning_rate(self._mean_over_ranks(terms["kl"].detach()))
            loss = (
                terms["surrogate"]
                + self.value_loss_coef * terms["value"]
                - self.entropy_coef * terms["entropy"]
                + self.dynamics_loss_coef * terms["dynamics"]
            )
            self.optimizer.zero_grad()
            loss.backward()
            if self.is_multi_gpu:
                # Every rank steps with the mean gradient, so the replicas stay identical.
                self.reduce_parameters()
            nn.utils.clip_grad_norm_(self.actor.parameters(), self.max_grad_norm)
            nn.utils.clip_grad_norm_(self.critic.parameters(), self.max_grad_norm)
            self.optimizer.step()

            num_updates += 1
            for key in ("surrogate", "value", "entropy", "dynamics", "kl", "clip_fraction"):
                add(key, terms[key].detach())
            for name, value in zip(self.critic_names, terms["value_per_critic"].detach()):
                add(f"value_{name}", value)
            for key, value in terms["dynamics_stats"].items():
                if key != "loss":
                    add(f"Dynamics/{key}", value)

        obs = self.storage.observations.flatten(0, 1)
        self.actor.update_normalization(obs)
        self.critic.update_normalization(obs)

        names = list(sums)
        means = (torch.stack([sums[name].float() for name in names]) / max(num_updates, 1)).tolist() if names else []
        result = dict(zip(names, means))
        result["Policy/clip_fraction"] = result.pop("clip_fraction")
        result["Policy/first_minibatch_ratio_deviation"] = (
            0.0 if first_ratio_deviation is None else float(first_ratio_deviation))
        result.update(self.rollout_statistics())
        self.storage.clear()
        self._reset_rollout_stats()
        return result

    def _mean_over_ranks(self, value: Tensor) -> float:
        """A scalar averaged over the training processes (itself with one process). Every rank
        then takes the same learning-rate decision from the same number."""
        if self.is_multi_gpu:
            value = value.clone()
            torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.SUM)
            value /= self.gpu_world_size
        return float(value)

    def _adapt_learning_rate(self, kl_mean: float) -> None:
        """rsl-rl's rule: /1.5 above 2 * desired_kl, *1.5 below desired_kl / 2, within [1e-5, 1e-2]."""
        if kl_mean > self.desired_kl * 2.0:
            self.learning_rate = max(1e-5, self.learning_rate / 1.5)
        elif 0.0 < kl_mean < self.desired_kl / 2.0:
            self.learning_rate = min(1e-2, self.learning_rate * 1.5)
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate

    # ---- statistics --------------------------------------------------------------------------------
    def rollout_statistics(self) -> dict[str, float]:
        """Per-rollout scalars: group rewards per step, mode occupancy, switch rate, mode/contact NMI,
        the policy distribution's parameters. Keys carry their TensorBoard section."""
        st = self.storage
        steps = max(st.step, 1) * st.num_envs
        stats: dict[str, float] = {}
        for name, total in zip(self.reward_group_names, self._group_reward_sums):
            stats[f"Reward/{name}_per_step"] = float(total) / steps
        for name, returns in zip(self.critic_names, st.returns.mean((0, 1))):
            stats[f"Value/return_{name}"] = float(returns)
        filled = st.step
        if filled > 0:
            contacts = self._rollout_contacts[:filled].reshape(-1)
            for which, prefix in enumerate(("", "argmax_")):
                modes = self._rollout_modes[which, :filled].reshape(-1)
                counts = torch.bincount(modes, minlength=self.actor.modes_cfg.num_modes).float() / modes.numel()
                for k, share in enumerate(counts):
                    stats[f"Modes/{prefix or 'acting_'}occupancy_{k}"] = float(share)
                stats[f"Modes/{prefix}contact_nmi"] = normalized_mutual_information(modes, contacts)
                switches, comparable = self._switch_counts[which]
                stats[f"Modes/{prefix}switch_rate"] = float(switches / comparable) if comparable > 0 else 0.0
        if st.distribution_params is not None:
            first, second = (p[:filled] for p in st.distribution_params[:2])
            if self.actor.distribution.__class__.__name__ == "BetaDistribution":
                stats["Policy/beta_alpha_mean"] = float(first.mean())
                stats["Policy/beta_beta_mean"] = float(second.mean())
            else:
                stats["Policy/std_mean"] = float(second.mean())
        return stats

    def _reset_rollout_stats(self) -> None:
        self._group_reward_sums.zero_()
        self._switch_counts.zero_()


def combine_advantages(advantages: Tensor, weights: Tensor, eps: float = 1e-8) -> Tensor:
    """[T, N, G] per-stream advantages -> [T, N, 1]: each stream normalised over the rollout
    (mean 0, std 1), then sum_g w_g * A_g (not renormalised, as DHAL)."""
    flat = advantages.flatten(0, -2)
    normalised = (advantages - flat.mean(0)) / (flat.std(0) + eps)
    return (normalised * weights.to(advantages.device)).sum(-1, keepdim=True)

