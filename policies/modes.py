"""DHAL's discrete hybrid automaton: a mode classifier over K per-mode beta-VAEs (DHAL.md §6).

Shapes: B = batch, K = num_modes, L = latent_dim, H = history_length, F = frame_size.

* `mode_logits(history)`: an MLP (ELU) over the flattened history [B, H*F] -> [B, K].
* `encode(history)`: every one of the K fully separate VAEs encodes the same history with a 1-D CNN
  (per-step Linear F->30, Conv1d(30->20, k6, s2), Conv1d(20->10, k4, s2), flatten, Linear->64, ReLU)
  and two heads -> mu, logvar [B, K, L].
* `act_latent(history, deterministic)`: the latent the actor consumes. Stochastic (training, as in
  DHAL): mode ~ Categorical(softmax), z = mu + sigma * eps of that mode; the one-hot and the
  probabilities are detached, so PPO never trains the classifier, while z keeps the selected
  encoder's gradient (and only that encoder's). Deterministic (inference/export): argmax mode and mu.
* `dynamics_loss(history, next_state, next_contacts)`: DHAL's auxiliary loss (§6.5). A
  straight-through one-hot (forward: a one-hot drawn from multinomial(softmax); backward: identity
  w.r.t. p) weights every expert's per-sample loss, so only the selected expert gets gradient while
  the classifier gets the whole vector of per-expert losses (winner-take-all assignment).

`ModesConfig.assignment` chooses how `dynamics_loss` shares a sample among the experts; the acting
path (`act_latent`, `predict`, export) is the same under all of them. With K=1 they coincide.
* "straight_through" (default, DHAL): as above; loss_k is expert k's reconstruction + contact BCE +
  KL on the sample. One draw per sample, so only the drawn expert moves.
* "posterior" (beyond the paper): the negative log-likelihood of a mixture of the K VAEs, with the
  classifier as the mixing prior and each expert's loss_k read as its negative ELBO:
  -log sum_k p_k exp(-loss_k). Expert k gets gradient weighted by its posterior responsibility
  r_k ∝ p_k exp(-loss_k) (an EM step), and the classifier gets the cross-entropy towards r, i.e. it
  learns which expert explains the sample best even where its own p for that expert is small.
  The scale of loss_k matters here (rec is a sum of squares, a Gaussian with variance 1/2 per dim).
  With `learned_noise` each expert's Gaussian has its own learned variance sigma_k^2 (one for all
  dims, floored at NOISE_VARIANCE_FLOOR): the negative log-likelihood rec / (2 sigma_k^2) + S log sigma_k,
  equal to rec at the initial 1/2. As the experts become accurate the variances shrink and the
  responsibilities sharpen, so a sample goes to the expert that explains it instead of the one the
  classifier already prefers (on the clocked SLDS it lifted the error ratio; docs/results/bench_modes.md).
  Not offered: the "expected" loss sum_k p_k * loss_k. It is the exact expectation of the
  straight-through loss over the draw, so it has the same expected gradient and only removes the
  sampling noise; on the SLDS benchmark it changed neither accuracy nor error ratio beyond the
  seed-to-seed spread (docs/results/bench_modes.md).

`ModesConfig.decoder_sees_frame` (beyond the paper, off by default): each expert's two decoders read
[z, newest frame] instead of z alone, a conditional VAE of the next state given the current one. The
latent then only has to carry what the newest frame does not show, and the experts fit faster. On
the SLDS benchmark both K=3 and K=1 then come within a few hundredths of the best predictor from the
history, which shrinks their error ratio (docs/results/bench_modes.md, "What the ratio
measures"). The acting path is unchanged: the actor consumes the latent only.

Loss weights and their provenance (DHAL.md §6.5, §11.2):
* `contact_weight=0.8`: the released code; the paper's Eq. 8 has no weight on the contact BCE.
* `kl_weight=0.9` with `kl_mean_over_modes=True`: the released code averages the one-hot-weighted
  KL over batch*K, an effective per-sample weight of 0.9/K (0.3 at K=3). The paper's Table V says
  beta = 1e-2. Note the DHAL convention makes the effective KL weight depend on K, which biases a
  comparison across K (K=1 gets 0.9, K=3 gets 0.3); set `kl_mean_over_modes=False` and pick
  `kl_weight` for a K-independent weight.
* `mode_entropy_weight=0.01`: DHAL *minimises* each sample's mode entropy (sharpening).
* `load_balance_weight=0.0`: beyond the paper. A positive weight maximises the entropy of the
  batch-mean mode distribution, which counters the silent collapse onto one expert that DHAL's
  winner-take-all assignment allows (DHAL.md §11.2 item 20).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The CNN's fixed layout (DHAL Table V). Only the per-step width and the output width are options.
CONV1_CHANNELS, CONV1_KERNEL, CONV1_STRIDE = 20, 6, 2
CONV2_CHANNELS, CONV2_KERNEL, CONV2_STRIDE = 10, 4, 2

# How `dynamics_loss` assigns a sample to the experts (see the module docstring).
ASSIGNMENTS = ("straight_through", "posterior")
INITIAL_NOISE_VARIANCE = 0.5  # rec as a negative log-likelihood: a Gaussian with variance 1/2 per dim
NOISE_VARIANCE_FLOOR = 1e-4  # learned_noise: keeps the likelihood bounded on noise-free dims


def conv_output_length(history_length: int) -> int:
    """Length after both convolutions; <= 0 means the history is too short."""
    first = (history_length - CONV1_KERNEL) // CONV1_STRIDE + 1
    if first < CONV2_KERNEL:
        return 0
    return (first - CONV2_KERNEL) // CONV2_STRIDE + 1


def min_history_length() -> int:
    length = 1
    while conv_output_length(length) <= 0:
        length += 1
    return length


@dataclass(frozen=True)
class ModesConfig:
    frame_size: int = 48
    history_length: int = 20
    state_dim: int = 33
    contact_dim: int = 3
    num_modes: int = 3
    latent_dim: int = 20
    classifier_hidden: tuple[int, ...] = (256, 64, 32)
    encoder_step_dim: int = 30
    encoder_out_dim: int = 64
    decoder_hidden: tuple[int, ...] = (64, 128, 256)
    contact_weight: float = 0.8
    kl_weight: float = 0.9
    kl_mean_over_modes: bool = True  # DHAL code: KL averaged over batch*K (effective 0.9/K); paper: beta=1e-2
    mode_entropy_weight: float = 0.01  # DHAL minimises each sample's mode entropy (sharpening)
    load_balance_weight: float = 0.0  # beyond the paper: maximise the entropy of the batch-mean p
    assignment: str = "straight_through"  # how dynamics_loss shares samples among experts; see ASSIGNMENTS
    learned_noise: bool = False  # posterior only, beyond the paper: learn each expert's noise variance (docstring)
    decoder_sees_frame: bool = False  # beyond the paper: the decoders also read the newest frame (docstring)

    def __post_init__(self) -> None:
        if self.assignment not in ASSIGNMENTS:
            raise ValueError(f"ModesConfig.assignment must be one of {ASSIGNMENTS}, got {self.assignment!r}")
        if self.learned_noise and self.assignment != "posterior":
            raise ValueError("ModesConfig.learned_noise needs assignment='posterior' (it scales the mixture's "
                             f"likelihood), got assignment={self.assignment!r}")
        for name in ("frame_size", "history_length", "state_dim", "contact_dim", "num_modes", "latent_dim",
                     "encoder_step_dim", "encoder_out_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModesConfig.{name} must be >= 1, got {getattr(self, name)}")
        if conv_output_length(self.history_length) <= 0:
            raise ValueError(
                f"ModesConfig.history_length={self.history_length} is too short for the 1-D CNN history encoder "
                f"(Conv1d k={CONV1_KERNEL} s={CONV1_STRIDE}, then Conv1d k={CONV2_KERNEL} s={CONV2_STRIDE}): "
                f"it needs at least {min_history_length()} frames"
            )

    @property
    def history_size(self) -> int:
        return self.history_length * self.frame_size


@dataclass
class ModeOutput:
    latent: Tensor  # [B, L]
    mode_probs: Tensor  # [B, K], detached
    mode: Tensor  # [B], int64
    one_hot: Tensor  # [B, K], detached


def mlp(in_dim: int, out_dim: int, hidden: tuple[int, ...], activation: type[nn.Module]) -> nn.Sequential:
    """Linear layers of the `hidden` widths, each followed by `activation`, then a linear output."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), activation()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class HistoryEncoder1d(nn.Module):
    """[B, H*F] (oldest frame first) -> [B, out_dim]; DHAL's 1-D CNN with ReLU."""

    def __init__(self, history_length: int, frame_size: int, step_dim: int = 30, out_dim: int = 64) -> None:
        super().__init__()
        length = conv_output_length(history_length)
        if length <= 0:
            raise ValueError(f"history_length={history_length} is too short for the CNN encoder; "
                             f"need >= {min_history_length()}")
        self.history_length = history_length
        self.frame_size = frame_size
        self.step = nn.Linear(frame_size, step_dim)
        self.conv1 = nn.Conv1d(step_dim, CONV1_CHANNELS, CONV1_KERNEL, CONV1_STRIDE)
        self.conv2 = nn.Conv1d(CONV1_CHANNELS, CONV2_CHANNELS, CONV2_KERNEL, CONV2_STRIDE)
        self.out = nn.Linear(CONV2_CHANNELS * length, out_dim)

    def forward(self, history: Tensor) -> Tensor:
        steps = history.reshape(history.shape[0], self.history_length, self.frame_size)
        h = torch.relu(self.step(steps)).transpose(1, 2)  # [B, step_dim, H]
        h = torch.relu(self.conv1(h))
        h = torch.relu(self.conv2(h))
        return torch.relu(self.out(h.flatten(1)))


class HistoryVAE(nn.Module):
    """One expert: CNN encoder, mu/logvar heads, next-state decoder and contact-logit decoder."""

    def __init__(self, cfg: ModesConfig) -> None:
        super().__init__()
        self.encoder = HistoryEncoder1d(cfg.history_length, cfg.frame_size, cfg.encoder_step_dim, cfg.encoder_out_dim)
        self.fc_mu = nn.Linear(cfg.encoder_out_dim, cfg.latent_dim)
        self.fc_logvar = nn.Linear(cfg.encoder_out_dim, cfg.latent_dim)
        self.sees_frame = cfg.decoder_sees_frame
        decoder_in = cfg.latent_dim + (cfg.frame_size if cfg.decoder_sees_frame else 0)
        self.state_decoder = mlp(decoder_in, cfg.state_dim, cfg.decoder_hidden, nn.ReLU)
        self.contact_decoder = mlp(decoder_in, cfg.contact_dim, cfg.decoder_hidden, nn.ReLU)

    def encode(self, history: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(history)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: Tensor, frame: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Next state [.., state_dim] and contact logits [.., contact_dim]; `frame` [.., frame_size] is the
        history's newest frame, needed exactly when the config has `decoder_sees_frame`."""
        if (frame is not None) != self.sees_frame:
            raise ValueError("decode needs the newest frame exactly when ModesConfig.decoder_sees_frame is set")
        inputs = z if frame is None else torch.cat([z, frame], -1)
        return self.state_decoder(inputs), self.contact_decoder(inputs)


def newest_frame(history: Tensor, frame_size: int) -> Tensor:
    """[B, frame_size]: the last frame of a [B, H*F] history (oldest frame first)."""
    return history[:, -frame_size:]


def _select(per_mode: Tensor, mode: Tensor) -> Tensor:
    """per_mode [B, K, D], mode [B] -> [B, D]; gradient reaches only the selected mode's slice."""
    index = mode.reshape(-1, 1, 1).expand(-1, 1, per_mode.shape[-1])
    return per_mode.gather(1, index)[:, 0]  # not squeeze: the legacy ONNX exporter turns that into an If


def _entropy(probs: Tensor, log_probs: Tensor) -> Tensor:
    return -(probs * log_probs).sum(-1)


class HybridModes(nn.Module):
    def __init__(self, cfg: ModesConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.classifier = mlp(cfg.history_size, cfg.num_modes, cfg.classifier_hidden, nn.ELU)
        self.vaes = nn.ModuleList(HistoryVAE(cfg) for _ in range(cfg.num_modes))
        if cfg.learned_noise:
            self.log_noise_var = nn.Parameter(torch.full((cfg.num_modes,), math.log(INITIAL_NOISE_VARIANCE)))

    # ---- helpers ----------------------------------------------------------------------------------
    @property
    def experts(self) -> list[HistoryVAE]:
        return [cast(HistoryVAE, vae) for vae in self.vaes]

    def _check_history(self, history: Tensor) -> None:
        if history.dim() != 2 or history.shape[1] != self.cfg.history_size:
            raise ValueError(
                f"history must be [B, history_length*frame_size] = [B, {self.cfg.history_length}*{self.cfg.frame_size}"
                f"={self.cfg.history_size}], got {tuple(history.shape)}"
            )

    def decode_all(self, z: Tensor, history: Tensor) -> tuple[Tensor, Tensor]:
        """z [B, K, L] -> next-state [B, K, state_dim] and contact logits [B, K, contact_dim]."""
        frame = newest_frame(history, self.cfg.frame_size) if self.cfg.decoder_sees_frame else None
        states, contacts = [], []
        for k, vae in enumerate(self.experts):
            s, c = vae.decode(z[:, k], frame)
            states.append(s)
            contacts.append(c)
        return torch.stack(states, 1), torch.stack(contacts, 1)

    # ---- public API --------------------------------------------------------------------------------
    def mode_logits(self, history: Tensor) -> Tensor:
        self._check_history(history)
        return self.classifier(history)

    def encode(self, history: Tensor) -> tuple[Tensor, Tensor]:
        """mu, logvar [B, K, L] from all K encoders."""
        self._check_history(history)
        mus, logvars = [], []
        for vae in self.experts:
            mu, logvar = vae.encode(history)
            mus.append(mu)
            logvars.append(logvar)
        return torch.stack(mus, 1), torch.stack(logvars, 1)

    def act_latent(self, history: Tensor, deterministic: bool, generator: torch.Generator | None = None) -> ModeOutput:
        """The actor's latent. The classifier never receives gradient from this path."""
        probs = torch.softmax(self.mode_logits(history), dim=-1).detach()
        mu, logvar = self.encode(history)
        if deterministic:
            mode = probs.argmax(dim=-1)
            latent = _select(mu, mode)
        else:
            mode = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            mu_sel, logvar_sel = _select(mu, mode), _select(logvar, mode)
            eps = torch.randn(mu_sel.shape, generator=generator, device=mu_sel.device, dtype=mu_sel.dtype)
            latent = mu_sel + torch.exp(0.5 * logvar_sel) * eps
        one_hot = F.one_hot(mode, self.cfg.num_modes).to(probs.dtype)
        return ModeOutput(latent=latent, mode_probs=probs, mode=mode, one_hot=one_hot)

    @torch.no_grad()
    def predict(self, history: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Deterministic one-step prediction: (next_state [B, S], contact_logits [B, C], mode [B]).

        Decodes mu of the argmax mode with that mode's decoders (the evaluation path).
        """
        out = self.act_latent(history, deterministic=True)
        # every decoder on the selected latent, then the selected mode's output
        states, contacts = self.decode_all(out.latent.unsqueeze(1).expand(-1, self.cfg.num_modes, -1), history)
        return _select(states, out.mode), _select(contacts, out.mode), out.mode

    @torch.no_grad()
    def predict_hedged(self, history: Tensor) -> Tensor:
        """Next state [B, S] as every expert's prediction (each from its own mean latent)
        weighted by the classifier's probabilities: it hedges where the classifier is unsure. A
        diagnostic beyond DHAL, whose evaluation decodes the argmax mode (`predict`)."""
        probs = torch.softmax(self.mode_logits(history), dim=-1)
        mu, _ = self.encode(history)
        states, _ = self.decode_all(mu, history)
        return (probs.unsqueeze(-1) * states).sum(1)

    @torch.no_grad()
    def predict_in_mode(self, history: Tensor, mode: Tensor) -> Tensor:
        """Next state [B, S] decoded by the given modes' experts (mu of each) instead of the argmax."""
        mu, _ = self.encode(history)
        states, _ = self.decode_all(mu, history)
        return _select(states, mode)

    def _floored_log_noise_var(self) -> Tensor:
        """[K] each expert's log noise variance as the likelihood uses it (learned_noise only)."""
        return self.log_noise_var.clamp_min(math.log(NOISE_VARIANCE_FLOOR))

    def _state_nll(self, rec: Tensor) -> Tensor:
        """Per-expert next-state negative log-likelihood [B, K] from sums of squares rec [B, K], up to a
        constant: rec itself, or with `learned_noise` the Gaussian NLL under each expert's variance."""
        if not self.cfg.learned_noise:
            return rec
        log_var = self._floored_log_noise_var()
        log_var_change = log_var - math.log(INITIAL_NOISE_VARIANCE)
        return 0.5 * rec * torch.exp(-log_var) + 0.5 * self.cfg.state_dim * log_var_change

    def dynamics_loss(
        self,
        history: Tensor,
        next_state: Tensor,
        next_contacts: Tensor,
        generator: torch.Generator | None = None,
        true_modes: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """DHAL's auxiliary loss (DHAL.md §6.5) and detached statistics.

        `true_modes` [B] (a diagnostic where labels exist, as on the SLDS benchmark; never in
        training on the robot): every sample goes to its true mode's expert and the classifier
        learns the labels by cross-entropy. It separates what the experts can do from what
        unsupervised mode discovery achieves.
        """
        cfg = self.cfg
        if next_state.shape != (history.shape[0], cfg.state_dim):
            raise ValueError(f"next_state must be [B, {cfg.state_dim}], got {tuple(next_state.shape)}")
        if next_contacts.shape != (history.shape[0], cfg.contact_dim):
            raise ValueError(f"next_contacts must be [B, {cfg.contact_dim}], got {tuple(next_contacts.shape)}")
        if true_modes is not None and (true_modes.shape != (history.shape[0],) or bool(
                ((true_modes < 0) | (true_modes >= cfg.num_modes)).any())):
            raise ValueError(f"true_modes must be [B] mode indices in [0, {cfg.num_modes}), "
                             f"got shape {tuple(true_modes.shape)}")
        logits = self.mode_logits(history)
        log_p = torch.log_softmax(logits, dim=-1)
        p = log_p.exp()
        # Drawn under every assignment: it feeds the occupancy statistics, and the generator then
        # yields the same eps whatever the assignment (so with K=1 both train alike).
        mode = torch.multinomial(p.detach(), 1, generator=generator).squeeze(-1)
        if true_modes is not None:
            mode = true_modes
        hard = F.one_hot(mode, cfg.num_modes).to(p.dtype)

        mu, logvar = self.encode(history)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps
        state_hat, contact_logits = self.decode_all(z, history)

        rec = (state_hat - next_state.unsqueeze(1)).square().sum(-1)  # [B, K]
        targets = next_contacts.to(contact_logits.dtype).unsqueeze(1).expand_as(contact_logits)
        bce = F.binary_cross_entropy_with_logits(contact_logits, targets, reduction="none").sum(-1)  # [B, K]
        kl = -0.5 * (1.0 + logvar - mu.square() - logvar.exp()).sum(-1)  # [B, K]

        mixture_nll: Tensor | None = None
        if true_modes is not None:
            weights = hard
        elif cfg.assignment == "straight_through":
            weights = hard - p.detach() + p  # forward: one-hot (exactly 0 off the selected mode); backward: identity
        else:  # posterior
            # kl_mean_over_modes averages over batch*K, a per-expert KL weight of kl_weight/K
            kl_scale = 1.0 / cfg.num_modes if cfg.kl_mean_over_modes else 1.0
            per_expert = self._state_nll(rec) + cfg.contact_weight * bce + cfg.kl_weight * kl_scale * kl  # [B, K]
            joint = log_p - per_expert
            mixture_nll = -torch.logsumexp(joint, dim=-1).mean()
            weights = torch.softmax(joint, dim=-1).detach()  # responsibilities, for the statistics only

        rec_loss = (weights * rec).sum(-1).mean()
        contact_loss = (weights * bce).sum(-1).mean()
        kl_loss = (weights * kl).mean() if cfg.kl_mean_over_modes else (weights * kl).sum(-1).mean()
        mode_entropy = _entropy(p, log_p).mean()
        p_mean = p.mean(0)
        batch_mode_entropy = _entropy(p_mean, torch.log(p_mean.clamp_min(1e-12)))

        data_loss = (rec_loss + cfg.contact_weight * contact_loss + cfg.kl_weight * kl_loss
                     if mixture_nll is None else mixture_nll)
        if true_modes is not None:
            data_loss = data_loss + F.nll_loss(log_p, true_modes)
        loss = (
            data_loss
            + cfg.mode_entropy_weight * mode_entropy
            - cfg.load_balance_weight * batch_mode_entropy
        )

        with torch.no_grad():
            counts = hard.sum(0)
            stats: dict[str, Tensor] = {
                "loss": loss.detach(),
                "rec_loss": rec_loss.detach(),
                "contact_loss": contact_loss.detach(),
                "kl": kl_loss.detach(),
                "mode_entropy": mode_entropy.detach(),
                "batch_mode_entropy": batch_mode_entropy.detach(),
                "selected_state_mse": (hard * rec).sum(-1).mean(),
            }
            argmax_counts = torch.bincount(p.argmax(-1), minlength=cfg.num_modes).to(p.dtype)
            rec_per_mode = (hard * rec).sum(0) / counts.clamp_min(1.0)
            noise_std = (0.5 * self._floored_log_noise_var()).exp() if cfg.learned_noise else None
            for k in range(cfg.num_modes):
                stats[f"rec_loss_mode_{k}"] = rec_per_mode[k]
                if noise_std is not None:
                    stats[f"noise_std_mode_{k}"] = noise_std[k]
                stats[f"occupancy_mode_{k}"] = counts[k] / hard.shape[0]
                # how often the deterministic path would pick the mode (dead_modes.DeadModeWatch reads it)
                stats[f"argmax_share_mode_{k}"] = argmax_counts[k] / hard.shape[0]
        return loss, stats
