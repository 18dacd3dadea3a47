"""Typed training configs and the three presets (`paper`, `cpu`, `smoke`).

Every number of the learner lives here; the modules take these dataclasses (or the plain dict
`rsl_rl_config` makes of them) and hard-code nothing. Sources: DHAL.md §4-§7 (paper and released
code) and LEARNER.md §7 (CPU costs).

Ablation switches (DHAL Table VII, Fig. 7):
* `critic.mode`: "multi" (one critic per reward group, DHAL), "single" ("wo-MC": one critic on the
  plain sum of the groups), "single_transferred" ("wo-MC (transferred)": one critic on the groups
  pre-multiplied by their advantage weights).
* `actor.distribution`: "beta" (DHAL) or "gaussian" ("wo-Beta").
* `modes.num_modes`: K.

`actor.mode_sampling` decides what the PPO update does with the stochastic mode/latent of the
rollout (DHAL.md §6.6, §11.2 item 16):
* "replay" (default): the rollout samples mode ~ Categorical(p) and z = mu + sigma * eps as DHAL
  does; the sampled mode index and eps are stored with the transition and re-used in the update,
  so the new log-prob is evaluated under the same mode and noise as the old one (the importance
  ratio is exactly 1 before the first gradient step; the encoder still gets the reparameterised
  gradient through mu and sigma).
* "resample": DHAL's released code: the update draws a fresh mode and eps (noisy ratio).
* "deterministic": argmax mode and mu both in the rollout and in the update.
Inference/export is always deterministic: argmax mode, mu of that mode, Beta (or Gaussian) mean.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from dhal.policies.modes import ModesConfig

PresetName = Literal["paper", "cpu", "smoke"]
CriticMode = Literal["multi", "single", "single_transferred"]
DistributionName = Literal["beta", "gaussian"]
ModeSampling = Literal["replay", "resample", "deterministic"]

# DHAL Table IV / code: advantage weights of the glide, push and sim2real critics.
DHAL_ADVANTAGE_WEIGHTS: dict[str, float] = {"glide": 0.35, "push": 0.40, "sim2real": 0.25}

ACTOR_CLASS = "dhal.policies.actor:DHALActor"
CRITIC_CLASS = "dhal.policies.critic:MultiCritic"
ALGORITHM_CLASS = "dhal.policies.ppo:DHALPPO"


@dataclass(frozen=True)
class ActorConfig:
    hidden_dims: tuple[int, ...] = (512, 256, 128)  # DHAL.md §7
    activation: str = "elu"
    distribution: DistributionName = "beta"
    gaussian_init_std: float = 1.0  # only for distribution="gaussian"
    mode_sampling: ModeSampling = "replay"


@dataclass(frozen=True)
class CriticConfig:
    hidden_dims: tuple[int, ...] = (512, 256, 128)  # DHAL.md §7, one such MLP per critic
    activation: str = "elu"
    mode: CriticMode = "multi"
    obs_normalization: bool = False  # DHAL scales observations by hand; no running normaliser


@dataclass(frozen=True)
class PPOConfig:
    num_learning_epochs: int = 5
    num_mini_batches: int = 4
    clip_param: float = 0.2
    gamma: float = 0.99
    lam: float = 0.9
    value_loss_coef: float = 1.0  # on the SUM of the critics' clipped value losses (DHAL)
    entropy_coef: float = 0.01
    learning_rate: float = 2e-4
    max_grad_norm: float = 1.0
    schedule: Literal["adaptive", "fixed"] = "adaptive"
    desired_kl: float = 0.01
    use_clipped_value_loss: bool = True
    advantage_weights: dict[str, float] = field(default_factory=lambda: dict(DHAL_ADVANTAGE_WEIGHTS))
    dynamics_loss_coef: float = 1.0  # weight of HybridModes.dynamics_loss in the joint loss (DHAL: 1)


@dataclass(frozen=True)
class TrainConfig:
    num_envs: int = 4096
    num_steps_per_env: int = 24
    save_interval: int = 300  # iterations between checkpoints (DHAL code)
    init_at_random_ep_len: bool = True  # desynchronise the episodes at the start of a run
    torch_threads: int | None = None  # None: torch's default
    actor: ActorConfig = field(default_factory=ActorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    # Env-dependent dims (frame_size, history_length, state_dim, contact_dim) are taken from the
    # env when the learner is built; the values here only matter for the learning-side fields.
    modes: ModesConfig = field(default_factory=ModesConfig)


def paper() -> TrainConfig:
    """DHAL's settings (DHAL.md §7): 4096 envs x 24 steps, 5 epochs x 4 minibatches. GPU work."""
    return TrainConfig()


def cpu() -> TrainConfig:
    """Learns something on 2 CPU cores in about an hour (LEARNER.md §7: ~3.5 s of NN time/iteration).

    No entropy bonus: at 3072 samples per iteration the paper's 0.01 outweighs the noisy surrogate
    gradient and holds the Beta policy's spread at its initial width (measured, seed 1: mean std 1.43
    at iteration 300 with 0.01, 0.37 without; training episodes 301 vs 819 steps; 1.5x and 3.5x as long
    on seeds 0 and 2). The deterministic policy then glides better but falls a little more often
    (BENCHMARKS.md, "Learning check")."""
    return TrainConfig(
        num_envs=128,
        num_steps_per_env=24,
        save_interval=50,
        torch_threads=1,
        ppo=PPOConfig(num_learning_epochs=2, num_mini_batches=2, entropy_coef=0.0),
    )


def smoke() -> TrainConfig:
    """Seconds per iteration, for tests and CI: tiny envs, rollouts and networks."""
    return TrainConfig(
        num_envs=4,
        num_steps_per_env=8,
        save_interval=1,
        torch_threads=1,
        actor=ActorConfig(hidden_dims=(32, 32)),
        critic=CriticConfig(hidden_dims=(32, 32)),
        ppo=PPOConfig(num_learning_epochs=1, num_mini_batches=1),
        modes=ModesConfig(latent_dim=8, classifier_hidden=(32, 16), decoder_hidden=(32,), encoder_out_dim=32),
    )


PRESETS: dict[str, typing.Callable[[], TrainConfig]] = {"paper": paper, "cpu": cpu, "smoke": smoke}


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return PRESETS[name]()


# ---- the rsl-rl config dict --------------------------------------------------------------------

LEARNING_MODES_FIELDS = tuple(
    f.name for f in dataclasses.fields(ModesConfig)
    if f.name not in ("frame_size", "history_length", "state_dim", "contact_dim")
)


def rsl_rl_config(cfg: TrainConfig, run_name: str = "dhal") -> dict[str, Any]:
    """The `train_cfg` dict `OnPolicyRunner` / `DHALPPO.construct_algorithm` read. A fresh dict
    every call (the runner mutates it)."""
    if cfg.actor.distribution == "beta":
        distribution: dict[str, Any] = {"class_name": "BetaDistribution"}  # action_range from the env
    else:
        distribution = {"class_name": "GaussianDistribution", "init_std": cfg.actor.gaussian_init_std}
    ppo = dataclasses.asdict(cfg.ppo)
    return {
        "num_steps_per_env": cfg.num_steps_per_env,
        "save_interval": cfg.save_interval,
        "run_name": run_name,
        "logger": "tensorboard",
        "check_for_nan": True,
        "obs_groups": {"actor": ["history"], "critic": ["privileged"]},
        "algorithm": {"class_name": ALGORITHM_CLASS, "critic_mode": cfg.critic.mode, **ppo},
        "actor": {
            "class_name": ACTOR_CLASS,
            "hidden_dims": list(cfg.actor.hidden_dims),
            "activation": cfg.actor.activation,
            "distribution_cfg": distribution,
            "mode_sampling": cfg.actor.mode_sampling,
            "modes": {name: _plain(getattr(cfg.modes, name)) for name in LEARNING_MODES_FIELDS},
        },
        "critic": {
            "class_name": CRITIC_CLASS,
            "hidden_dims": list(cfg.critic.hidden_dims),
            "activation": cfg.critic.activation,
            "obs_normalization": cfg.critic.obs_normalization,
        },
    }


# ---- dict <-> dataclass (for config.json and checkpoints) --------------------------------------

def to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready dict of a (nested) dataclass; tuples become lists."""
    return _plain(dataclasses.asdict(cfg))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def from_dict(cls: type, data: Mapping[str, Any], path: str = "") -> Any:
    """Rebuild dataclass `cls` from `to_dict` output; unknown keys are an error naming the key.
    Missing keys keep the class default."""
    if not isinstance(data, Mapping):
        raise ValueError(f"config {path or cls.__name__!r}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"config {path or cls.__name__!r} has unknown keys {unknown} (fields: {sorted(names)})")
    kwargs = {name: _from_value(hints[name], value, f"{path}{name}") for name, value in data.items()}
    return cls(**kwargs)


def _from_value(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, value, path + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _from_value(options[0], value, path) if len(options) == 1 else value
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        return tuple(_from_value(inner, v, path) for v in value)
    if origin is dict and isinstance(value, Mapping):
        return dict(value)
    return value
