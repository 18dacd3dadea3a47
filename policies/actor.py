"""DHAL's actor: [newest proprio frame, latent of the selected mode] -> MLP -> Beta (or Gaussian).

The actor owns the `HybridModes` (classifier + K beta-VAEs), so PPO's one Adam optimises them,
their weights travel in `actor_state_dict`, and the export graph contains the acting path.

Observation: one group, the flattened history [N, H*F] (oldest frame first). The proprio frame is
its newest F values (the env's "proprio" group is the same tensor, DHAL.md §2.1).

What `forward(obs, stochastic_output)` does with the mode and latent (see `presets.py` for the
choice and DHAL.md §6.6 for why):
* `stochastic_output=False` (inference, `get_inference_policy`, export): argmax mode, mu.
* `stochastic_output=True` with `mode_sampling`:
  - "replay": if `obs` carries the stored sample (`REPLAY_MODE_KEY`, `REPLAY_NOISE_KEY`, written
    by DHALPPO at rollout time) it is re-used; otherwise mode ~ Categorical(p) and eps ~ N(0, I)
    are drawn and kept in `last_sample` for the algorithm to store.
  - "resample": DHAL's code: always a fresh draw (the update's ratio is noisy).
  - "deterministic": argmax and mu.
In every case the mode probabilities are detached (the classifier is trained only by the dynamics
loss) while z = mu_k + sigma_k * eps keeps the selected encoder's gradient, as in DHAL.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, cast

import torch
from rsl_rl.models import MLPModel
from rsl_rl.modules import HiddenState
from tensordict import TensorDict
from torch import Tensor, nn

from dhal.policies.modes import HistoryVAE, HybridModes, ModesConfig, newest_frame

REPLAY_MODE_KEY = "replay_mode"
REPLAY_NOISE_KEY = "replay_latent_noise"
MODE_SAMPLING_CHOICES = ("replay", "resample", "deterministic")


@dataclass
class ModeSample:
    """What the last stochastic forward drew: mode [N] int64 and latent noise eps [N, L]."""

    mode: Tensor
    noise: Tensor


def _gather_mode(per_mode: Tensor, mode: Tensor) -> Tensor:
    """per_mode [B, K, D], mode [B] -> [B, D]."""
    index = mode.reshape(-1, 1, 1).expand(-1, 1, per_mode.shape[-1])
    return per_mode.gather(1, index).squeeze(1)


class DHALActor(MLPModel):
    def __init__(
        self,
        obs: TensorDict,
        obs_groups: dict[str, list[str]],
        obs_set: str,
        output_dim: int,
        hidden_dims: tuple[int, ...] | list[int] = (512, 256, 128),
        activation: str = "elu",
        obs_normalization: bool = False,
        distribution_cfg: dict | None = None,
        modes: dict[str, Any] | ModesConfig | None = None,
        mode_sampling: str = "replay",
    ) -> None:
        if obs_normalization:
            raise ValueError("DHALActor has no observation normaliser (DHAL scales observations by hand)")
        if distribution_cfg is None:
            raise ValueError("DHALActor needs a distribution_cfg (BetaDistribution or GaussianDistribution)")
        if mode_sampling not in MODE_SAMPLING_CHOICES:
            raise ValueError(f"mode_sampling must be one of {MODE_SAMPLING_CHOICES}, got {mode_sampling!r}")
        if isinstance(modes, ModesConfig):
            modes_cfg = modes
        else:
            kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in (modes or {}).items()}
            modes_cfg = ModesConfig(**kwargs)
        # _get_latent_dim() runs inside MLPModel.__init__, so these must exist first.
        self.modes_cfg = modes_cfg
        self.mode_sampling = mode_sampling
        super().__init__(obs, obs_groups, obs_set, output_dim, hidden_dims, activation, False, distribution_cfg)
        self.modes = HybridModes(modes_cfg)
        self.last_sample: ModeSample | None = None
        self.last_mode: Tensor | None = None  # [N] mode index of the last forward
        self.last_mode_probs: Tensor | None = None  # [N, K]

    # ---- MLPModel hooks ----------------------------------------------------------------------------
    def _get_obs_dim(self, obs: TensorDict, obs_groups: dict[str, list[str]], obs_set: str) -> tuple[list[str], int]:
        groups, dim = super()._get_obs_dim(obs, obs_groups, obs_set)
        cfg = self.modes_cfg
        if len(groups) != 1 or dim != cfg.history_size:
            raise ValueError(
                f"DHALActor reads one observation group, the flattened history of {cfg.history_length} x "
                f"{cfg.frame_size} = {cfg.history_size} values; obs set {obs_set!r} is {groups} with {dim} values"
            )
        return groups, dim

    def _get_latent_dim(self) -> int:
        return self.modes_cfg.frame_size + self.modes_cfg.latent_dim

    # ---- forward -----------------------------------------------------------------------------------
    def forward(
        self,
        obs: TensorDict,
        masks: Tensor | None = None,
        hidden_state: HiddenState = None,
        stochastic_output: bool = False,
    ) -> Tensor:
        history = obs[self.obs_groups[0]]
        latent = self._mode_latent(history, obs, stochastic_output)
        mlp_output = self.mlp(torch.cat([newest_frame(history, self.modes_cfg.frame_size), latent], dim=-1))
        if stochastic_output:
            self.distribution.update(mlp_output)
            return self.distribution.sample()
        return self.distribution.deterministic_output(mlp_output)

    def get_latent(self, obs: TensorDict, masks: Tensor | None = None, hidden_state: HiddenState = None) -> Tensor:
        """The MLP input on the deterministic path: [newest frame, mu of the argmax mode]."""
        history = obs[self.obs_groups[0]]
        return torch.cat([newest_frame(history, self.modes_cfg.frame_size), self._mode_latent(history, obs, False)], dim=-1)

    def _mode_latent(self, history: Tensor, obs: TensorDict, stochastic: bool) -> Tensor:
        if not stochastic or self.mode_sampling == "deterministic":
            out = self.modes.act_latent(history, deterministic=True)
            self._remember(out.mode, out.mode_probs)
            return out.latent
        if self.mode_sampling == "resample":
            out = self.modes.act_latent(history, deterministic=False)
            self._remember(out.mode, out.mode_probs)
            return out.latent
        # replay
        if REPLAY_MODE_KEY in obs.keys():
            mode, noise, probs = obs[REPLAY_MODE_KEY].long(), obs[REPLAY_NOISE_KEY], None
        else:
            probs = torch.softmax(self.modes.mode_logits(history), dim=-1).detach()
            mode = torch.multinomial(probs, 1).squeeze(-1)
            mu_shape = (history.shape[0], self.modes_cfg.latent_dim)
            noise = torch.randn(mu_shape, device=history.device, dtype=history.dtype)
            self.last_sample = ModeSample(mode=mode, noise=noise)
        mu, logvar = self.modes.encode(history)
        latent = _gather_mode(mu, mode) + torch.exp(0.5 * _gather_mode(logvar, mode)) * noise
        self._remember(mode, probs)
        return latent

    def _remember(self, mode: Tensor, probs: Tensor | None) -> None:
        self.last_mode = mode.detach()
        if probs is not None:
            self.last_mode_probs = probs.detach()

    # ---- export -------------------------------------------------------------------------------------
    def as_onnx(self, verbose: bool = False) -> nn.Module:
        return _DHALPolicyExport(self)

    def as_jit(self) -> nn.Module:
        return _DHALPolicyExport(self)


class _DHALPolicyExport(nn.Module):
    """history [B, H*F] -> (actions [B, A], mode_probs [B, K], latent [B, L]) on the deterministic
    path (argmax mode, that mode's mean latent, the action distribution's mean).

    Only the classifier, the encoders and the actor MLP are copied; the decoders stay behind."""

    is_recurrent: bool = False

    def __init__(self, actor: DHALActor) -> None:
        super().__init__()
        cfg = actor.modes_cfg
        self.frame_size = cfg.frame_size
        self.history_size = cfg.history_size
        self.classifier = copy.deepcopy(actor.modes.classifier)
        vaes = [cast(HistoryVAE, vae) for vae in actor.modes.vaes]
        self.encoders = nn.ModuleList(copy.deepcopy(vae.encoder) for vae in vaes)
        self.mu_heads = nn.ModuleList(copy.deepcopy(vae.fc_mu) for vae in vaes)
        self.mlp = copy.deepcopy(actor.mlp)
        self.deterministic_output = actor.distribution.as_deterministic_output_module()

    def forward(self, history: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        probs = torch.softmax(self.classifier(history), dim=-1)
        mode = torch.argmax(probs, dim=-1)
        mus = []
        for encoder, head in zip(self.encoders, self.mu_heads):
            mus.append(head(encoder(history)))
        mu = torch.stack(mus, dim=1)  # [B, K, L]
        index = mode.reshape(-1, 1, 1).expand(-1, 1, mu.shape[-1])
        latent = mu.gather(1, index).squeeze(1)
        frame = newest_frame(history, self.frame_size)
        actions = self.deterministic_output(self.mlp(torch.cat([frame, latent], dim=-1)))
        return actions, probs, latent

    @torch.jit.export
    def reset(self) -> None:
        pass

    def get_dummy_inputs(self) -> tuple[Tensor]:
        return (torch.zeros(1, self.history_size),)

    @property
    def input_names(self) -> list[str]:
        return ["history"]

    @property
    def output_names(self) -> list[str]:
        return ["actions", "mode_probs", "latent"]
