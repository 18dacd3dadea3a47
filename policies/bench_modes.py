"""`dhal bench modes`: mode identification with ground truth.

`HybridModes` (the classifier and K beta-VAEs of `dhal.policies.modes`) learns, without labels, the
seeded switching linear system of `dhal.policies.slds`. `run_modes_benchmark` trains K=num_modes and
K=1 with the same class, loss, optimiser (Adam, DHAL's grad clip 1.0), steps and data, and reports
on held-out sequences:

* `accuracy`: argmax(mode_logits) vs the true mode after the best relabelling (goal >= 0.95);
* `error_ratio`: next-state error (sum of squares over dims, mean over samples) of K=1 over
  K=num_modes on the deterministic path: mu of the argmax mode, decoded by that mode (goal >= 2;
  DHAL reports about 2.8 on robot data);
* diagnostics: the noise floor (SLDSConfig.noise_floor, the true model's expected error given the
  true mode); the error of the best predictor from the history (the noise plus the Markov jumps
  that no history foretells, a floor every K shares) and the ratio of the errors above it; the
  accuracy on switch steps (the first transition of a new mode) and each model's error at the switch
  step, one step from it, and elsewhere; with `eval_every`, held-out accuracy and error during training;
* with `supervised_reference`, a third model trained on the true modes, evaluated with the true
  mode and with its own classifier: how good the experts are, and what choosing among them costs.

The defaults are the headline protocol, which meets both goals on 55 of 56 random systems (28 of
the 28 it was chosen on, 27 of 28 new ones; BENCHMARKS.md, "Where it stands"): the system of SLDSConfig with a 12-D state, jumps at 0.002 and
a noise-free clocked guard; beyond the paper, the posterior assignment with learned noise, decoders
that read the newest frame, and a restart where an expert dies early (dhal.policies.dead_modes);
DHAL's KL convention (0.9 averaged over batch*K, ModesConfig's default), which regularises K=1 three
times as strongly as each of the K=3 experts; and `load_balance_weight=1.0`. Most earlier runs used
other defaults; EARLIER_DEFAULTS_FLAGS reruns them. What was measured, what limits the ratio and
every variant tried: docs/results/bench_modes.md.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from dhal.policies.bench_modes_results import (GOAL_ACCURACY, GOAL_ERROR_RATIO, BenchModesResult, ModeRunResult,
                                               SupervisedReference)
from dhal.policies.dead_modes import DeadMode, DeadModeConfig, DeadModeWatch
from dhal.policies.modes import HybridModes, ModesConfig
from dhal.policies.slds import (NUM_MODES, SLDSConfig, SLDSData, bayes_error, make_dataset, make_system,
                                switch_offsets)

# The defaults before 2026-11-28 (the SLDSConfig system, DHAL's straight-through assignment, a KL of
# 1e-2 per sample), under which most runs in docs/results/bench_modes.md were recorded; the flags
# below, put first, rerun them (later flags win).
EARLIER_DEFAULTS: dict[str, object] = dict(
    state_dim=6, test_sequences=32, jump_prob=0.01, clocked_guard=False, kl_weight=0.01, kl_mean_over_modes=False,
    assignment="straight_through", learned_noise=False, decoder_sees_frame=False, restart_dead_modes=False)


def as_flags(values: dict[str, object]) -> str:
    """The `dhal bench modes` flags that set these options (booleans as --name / --no-name)."""
    def flag(name: str, value: object) -> str:
        option = name.replace("_", "-")
        if isinstance(value, bool):
            return f"--{option}" if value else f"--no-{option}"
        return f"--{option} {value}"
    return " ".join(flag(name, value) for name, value in values.items())


EARLIER_DEFAULTS_FLAGS = as_flags(EARLIER_DEFAULTS)


@dataclass
class BenchModesConfig(SLDSConfig):
    """Train HybridModes (K modes and K=1) on a seeded switching linear system; report mode accuracy and error ratio.

    The benchmark's system is SLDSConfig's with four changes (the headline protocol of BENCHMARKS.md):
    a 12-D state, jumps at 0.002, a clocked guard, and 256 held-out sequences."""

    state_dim: int = 12
    """SLDSConfig's 6 leaves one network almost as good as three experts once the decoder reads the frame."""
    test_sequences: int = 256
    """Enough held-out Markov jumps for a stable ratio (SLDSConfig.test_sequences)."""
    jump_prob: float = 0.002
    """Rarer unforeseeable jumps: at 0.01 they make most of every K's error (SLDSConfig.jump_prob)."""
    clocked_guard: bool = True
    """The guard on a noise-free clock, as DHAL's phase input (SLDSConfig.clocked_guard)."""
    seed: int = 0
    """Seeds the system, the data, the initialisation and the sampling."""
    init_seed: int | None = None
    """Seeds the models' initialisation and sampling instead of `seed`, on the same system and data:
    how much of the spread over seeds is the training run rather than the system."""
    steps: int = 3000
    """Adam steps per model."""
    batch_size: int = 256
    learning_rate: float = 1e-3
    cosine_decay: bool = False
    """Decay the learning rate to 0 over `steps` (cosine) instead of keeping it constant."""
    num_modes: int = 3
    """Modes of the model under test (compared with K=1)."""
    kl_weight: float = 0.9
    kl_mean_over_modes: bool = True
    """True with kl_weight 0.9: DHAL's code convention (ModesConfig's default); False: the same per-sample
    KL weight for every K (see the module docstring)."""
    contact_weight: float = 0.8
    mode_entropy_weight: float = 0.01
    load_balance_weight: float = 1.0
    """Beyond the paper; 0 is DHAL. Without it DHAL's winner-take-all assignment sometimes merges two true
    modes into one expert; a tenfold weight prevents merges but costs the ratio (docs/results/bench_modes.md,
    "Sixteen new systems"), which is why a dead expert is caught by `restart_dead_modes` instead."""
    assignment: str = "posterior"
    """How the dynamics loss shares samples among experts (ModesConfig.assignment): "straight_through" is DHAL;
    "posterior" (beyond the paper) identifies the modes better; with clocked_guard and learned_noise it finds
    the switch steps to within a few points of what the history allows (docs/results/bench_modes.md)."""
    learned_noise: bool = True
    """With assignment "posterior": learn each expert's noise variance (ModesConfig.learned_noise), so the
    responsibilities sharpen as the experts improve."""
    decoder_sees_frame: bool = True
    """Beyond the paper: every decoder also reads the newest frame [x_t, u_t] (ModesConfig.decoder_sees_frame)."""
    restart_dead_modes: bool = True
    """Beyond the paper: where the classifier stops picking an expert early in training (dhal.policies.dead_modes,
    DeadModeConfig defaults), start the K-mode model again from a fresh initialisation on the same data
    (up to MAX_RESTARTS times). K=1 cannot lose an expert; a run without a dead expert is unchanged."""
    baseline: bool = True
    """Also train K=1 for the error ratio (False: error_ratio is nan)."""
    eval_every: int = 0
    """Evaluate on held-out data every this many steps (0: only at the end)."""
    supervised_reference: bool = False
    """Also train K=num_modes with the true modes (each expert on its mode's samples, the classifier by
    cross-entropy on the labels) and report its error with the true mode selected and with its own
    classifier: what the experts can reach, and what identifying the mode costs even with labels."""
    fresh_data_every: int = 0
    """Draw a new training set of train_sequences every this many steps, as DHAL's on-policy loop
    collects new data every iteration (0: one fixed training set). K=1 and K=K see the same sets."""
    num_seeds: int = 1
    """Run seeds seed .. seed+num_seeds-1 (each its own system, data and initialisation) and report every
    one and the spread: the error ratio varies a lot between systems and training runs
    (docs/results/bench_modes.md)."""
    jobs: int = 1
    """With num_seeds > 1: run this many seeds at once, each in its own process with `threads` threads
    (a machine with 16 cores runs 16 seeds in the time of one; the results equal a run one seed at a time)."""
    threads: int = 1
    device: str = "cpu"
    out_dir: Path | None = None
    """Write results.json and modes.png here."""
    progress: bool = True

    def validate(self) -> None:
        """ValueError naming the first option that cannot work (before any data or training)."""
        if self.num_modes < 2:
            raise ValueError(f"num_modes must be >= 2 (it is compared with K=1), got {self.num_modes}")
        for name in ("steps", "batch_size", "train_sequences", "test_sequences", "state_dim", "input_dim",
                     "contact_dim", "threads", "num_seeds", "jobs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_every", "fresh_data_every", "burn_in"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: off), got {getattr(self, name)}")
        if self.sequence_length <= self.history_length:
            raise ValueError(f"sequence_length ({self.sequence_length}) must exceed history_length "
                             f"({self.history_length})")
        if self.contact_dim > self.state_dim - 1:
            raise ValueError(f"contact_dim ({self.contact_dim}) must be <= state_dim - 1 ({self.state_dim - 1})")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.jump_prob <= 1.0:
            raise ValueError(f"jump_prob is a probability per step, in [0, 1], got {self.jump_prob}")
        if not self.process_noise >= 0.0:
            raise ValueError(f"process_noise must be >= 0, got {self.process_noise}")
        if self.supervised_reference and self.num_modes != NUM_MODES:
            raise ValueError(f"supervised_reference needs num_modes = the system's {NUM_MODES} modes, got {self.num_modes}")
        if self.clocked_guard:
            self.clock_ticks()
        self.modes_config(self.num_modes)  # the model's own checks: assignment, history length, sizes

    def modes_config(self, num_modes: int) -> ModesConfig:
        """The model under test (num_modes) or the baseline (1), with this run's loss settings."""
        return ModesConfig(
            frame_size=self.state_dim + self.input_dim, history_length=self.history_length,
            state_dim=self.state_dim, contact_dim=self.contact_dim, num_modes=num_modes,
            contact_weight=self.contact_weight, kl_weight=self.kl_weight, kl_mean_over_modes=self.kl_mean_over_modes,
            mode_entropy_weight=self.mode_entropy_weight, load_balance_weight=self.load_balance_weight,
            assignment=self.assignment, learned_noise=self.learned_noise, decoder_sees_frame=self.decoder_sees_frame,
        )

    @classmethod
    def smoke(cls, **overrides: object) -> BenchModesConfig:
        """Seconds-sized run for tests."""
        values: dict[str, object] = dict(steps=150, batch_size=128, train_sequences=16, test_sequences=4,
                                         sequence_length=120, progress=False)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


# ---- metrics --------------------------------------------------------------------------------------
def best_mapping(pred: Tensor, true: Tensor, num_pred: int, num_true: int) -> tuple[list[int], float]:
    """Learned-mode -> true-mode map maximising accuracy: a permutation search when num_pred <= num_true
    (injective), else each learned mode goes to its majority true mode."""
    confusion = torch.zeros(num_true, num_pred, dtype=torch.long)
    confusion.index_put_((true, pred), torch.ones_like(true), accumulate=True)
    if num_pred > num_true:
        mapping = confusion.argmax(0).tolist()
    else:
        best, mapping = -1, list(range(num_pred))
        for perm in itertools.permutations(range(num_true), num_pred):
            hits = sum(int(confusion[perm[j], j]) for j in range(num_pred))
            if hits > best:
                best, mapping = hits, list(perm)
    hits = sum(int(confusion[mapping[j], j]) for j in range(num_pred))
    return mapping, hits / max(1, true.numel())


@torch.no_grad()
def evaluate(model: HybridModes, data: SLDSData, mean: Tensor, std: Tensor, batch: int = 4096
             ) -> tuple[Tensor, Tensor, float]:
    """Argmax modes [N], per-sample state error [N] (sum of squares over dims), contact accuracy."""
    modes, errors, hits = [], [], 0.0
    for i in range(0, data.histories.shape[0], batch):
        hist = (data.histories[i:i + batch] - mean) / std
        state, contact_logits, mode = model.predict(hist)
        modes.append(mode)
        errors.append((state - data.next_state[i:i + batch]).square().sum(-1))
        hits += float(((contact_logits > 0).float() == data.next_contacts[i:i + batch]).float().sum())
    n = data.histories.shape[0]
    return torch.cat(modes), torch.cat(errors), hits / max(1, n * data.next_contacts.shape[1])


@torch.no_grad()
def prediction_errors(model: HybridModes, data: SLDSData, mean: Tensor, std: Tensor, hedged: bool = False) -> Tensor:
    """Per-sample state error [N] with each sample decoded by its true mode's expert, or, with
    `hedged`, by the classifier-weighted mean of the experts (`predict_hedged`)."""
    device = next(model.parameters()).device
    hist = ((data.histories - mean) / std).to(device)
    state = model.predict_hedged(hist) if hedged else model.predict_in_mode(hist, data.modes.to(device))
    return (state.cpu() - data.next_state).square().sum(-1)


def mean_where(values: Tensor, mask: Tensor) -> float:
    """The mean of `values` over `mask`; nan where the mask is empty."""
    return float(values[mask].mean()) if bool(mask.any()) else math.nan


def error_by_true_mode(errors: Tensor, offsets: Tensor, modes: Tensor) -> list[float]:
    away = offsets.abs() > 1
    return [mean_where(errors, away & (modes == m)) for m in range(NUM_MODES)]


def error_by_switch_distance(errors: Tensor, offsets: Tensor) -> dict[str, float]:
    parts = {"switch": offsets == 0, "adjacent": offsets.abs() == 1, "elsewhere": offsets.abs() > 1}
    return {name: mean_where(errors, mask) for name, mask in parts.items()}


# ---- training ---------------------------------------------------------------------------------------
MAX_RESTARTS = 3  # restart_dead_modes: fresh initialisations tried after the first before giving up
RESTART_SEED_STRIDE = 1_000_003  # attempt a of a model seeded s is seeded s + a * stride


@dataclass
class Fit:
    model: HybridModes
    loss_curve: list[float]
    state_mse_curve: list[float]
    eval_curve: list[tuple[int, float, float]]
    dead: DeadMode | None  # the dead expert that stopped this attempt early, if any


def fit(cfg: BenchModesConfig, num_modes: int, train: SLDSData, test: SLDSData, mean: Tensor, std: Tensor,
        seed: int, fresh_data: Callable[[int], SLDSData] | None, supervised: bool, watch: DeadModeWatch | None,
        label: str) -> Fit:
    """One training run from the initialisation `seed`; stops early where `watch` notices a dead expert."""
    device = torch.device(cfg.device)
    torch.manual_seed(seed)
    model = HybridModes(cfg.modes_config(num_modes)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.steps) if cfg.cosine_decay else None
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    index_generator = torch.Generator().manual_seed(seed + 2)

    def upload(data: SLDSData) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return (((data.histories - mean) / std).to(device), data.next_state.to(device), data.next_contacts.to(device),
                data.modes.to(device))

    hist_all, state_all, contact_all, modes_all = upload(train)
    n = hist_all.shape[0]
    log_every = max(1, cfg.steps // 200)
    result = Fit(model=model, loss_curve=[], state_mse_curve=[], eval_curve=[], dead=None)
    acc_loss = acc_mse = 0.0
    bar = tqdm(range(cfg.steps), desc=label, disable=not cfg.progress, dynamic_ncols=True, mininterval=0.5)
    for step in bar:
        if fresh_data is not None and cfg.fresh_data_every > 0 and step > 0 and step % cfg.fresh_data_every == 0:
            hist_all, state_all, contact_all, modes_all = upload(fresh_data(step // cfg.fresh_data_every))
            n = hist_all.shape[0]
        idx = torch.randint(0, n, (cfg.batch_size,), generator=index_generator).to(device)
        loss, stats = model.dynamics_loss(hist_all[idx], state_all[idx], contact_all[idx], generator=generator,
                                          true_modes=modes_all[idx] if supervised else None)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if schedule is not None:
            schedule.step()
        if watch is not None and (dead := watch.after_step(step, stats)) is not None:
            result.dead = dead
            bar.write(f"{label} step {dead.step}: expert {dead.mode} is the classifier's pick for {dead.share:.3f} "
                      f"of the samples (the busiest for {dead.busiest_share:.3f}); starting again from a fresh "
                      "initialisation")
            break
        acc_loss += float(stats["loss"])
        acc_mse += float(stats["selected_state_mse"])
        if (step + 1) % log_every == 0:
            result.loss_curve.append(acc_loss / log_every)
            result.state_mse_curve.append(acc_mse / log_every)
            acc_loss = acc_mse = 0.0
            bar.set_postfix(loss=f"{result.loss_curve[-1]:.3f}", mse=f"{result.state_mse_curve[-1]:.3f}", refresh=False)
        if cfg.eval_every > 0 and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            model.eval()
            pred, errors, _ = evaluate(model, test, mean.to(device), std.to(device))
            _, acc = best_mapping(pred.cpu(), test.modes.cpu(), num_modes, 3)
            result.eval_curve.append((step + 1, acc, float(errors.mean())))
            model.train()
    bar.close()
    return result


def train_one(cfg: BenchModesConfig, num_modes: int, train: SLDSData, test: SLDSData, mean: Tensor, std: Tensor,
              seed: int, fresh_data: Callable[[int], SLDSData] | None = None, supervised: bool = False
              ) -> tuple[HybridModes, ModeRunResult, Tensor, Tensor]:
    """Train one model; `fresh_data(i)` gives the i-th replacement training set (cfg.fresh_data_every);
    `supervised` trains on the true modes (the supervised reference). With `restart_dead_modes`, a
    K-mode run whose expert dies starts again from a fresh initialisation, up to MAX_RESTARTS times
    (the last attempt runs to the end whatever happens); every attempt sees the same data."""
    device = torch.device(cfg.device)
    test_dev = replace(test, histories=test.histories.to(device), next_state=test.next_state.to(device),
                       next_contacts=test.next_contacts.to(device))
    restarts = cfg.restart_dead_modes and num_modes > 1 and not supervised
    dead_modes: list[DeadMode] = []
    start = time.perf_counter()
    for attempt in range(MAX_RESTARTS + 1 if restarts else 1):
        watch = DeadModeWatch(num_modes, DeadModeConfig(), cfg.steps) if restarts and attempt < MAX_RESTARTS else None
        label = f"K={num_modes}" + (" supervised" if supervised else "") + (f" restart {attempt}" if attempt else "")
        run = fit(cfg, num_modes, train, test_dev, mean, std, seed + attempt * RESTART_SEED_STRIDE, fresh_data,
                  supervised, watch, label)
        if run.dead is None:
            break
        dead_modes.append(run.dead)
    train_seconds = time.perf_counter() - start  # every attempt's
    model = run.model
    model.eval()
    pred, errors, contact_acc = evaluate(model, test_dev, mean.to(device), std.to(device))
    pred, errors = pred.cpu(), errors.cpu()
    err = float(errors.mean())
    mapping, acc = best_mapping(pred, test.modes, num_modes, 3)
    run.eval_curve.append((cfg.steps, acc, err))
    confusion = torch.zeros(3, num_modes, dtype=torch.long)
    confusion.index_put_((test.modes, pred), torch.ones_like(pred), accumulate=True)
    occupancy = (torch.bincount(pred, minlength=num_modes).float() / pred.numel()).tolist()
    result = ModeRunResult(
        num_modes=num_modes, accuracy=acc, state_error=err, contact_accuracy=contact_acc, occupancy=occupancy,
        mapping=mapping, confusion=confusion.tolist(), train_seconds=train_seconds, loss_curve=run.loss_curve,
        state_mse_curve=run.state_mse_curve, eval_curve=run.eval_curve, restarts=dead_modes,
    )
    return model, result, pred, errors


def run_modes_benchmark(cfg: BenchModesConfig) -> BenchModesResult:
    """Deterministic given cfg.seed (on CPU). Restores the global RNG and the thread count afterwards."""
    cfg.validate()
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            data_gen = torch.Generator().manual_seed(cfg.seed)
            system = make_system(cfg, data_gen)
            train = make_dataset(cfg, system, cfg.train_sequences, data_gen)
            test = make_dataset(cfg, system, cfg.test_sequences, data_gen)
            mean = train.histories.mean(0)
            std = train.histories.std(0).clamp_min(1e-3)
            runs: dict[int, ModeRunResult] = {}
            models: dict[int, HybridModes] = {}
            preds: dict[int, Tensor] = {}
            errors: dict[int, Tensor] = {}

            def fresh_data(i: int) -> SLDSData:
                return make_dataset(cfg, system, cfg.train_sequences, torch.Generator().manual_seed(cfg.seed * 7919 + i))

            def model_seed(num_modes: int) -> int:
                return (cfg.seed if cfg.init_seed is None else cfg.init_seed) * 1000 + 17 * num_modes

            for k in (cfg.num_modes, 1) if cfg.baseline else (cfg.num_modes,):
                models[k], runs[k], preds[k], errors[k] = train_one(cfg, k, train, test, mean, std,
                                                                    seed=model_seed(k), fresh_data=fresh_data)
            hedged = prediction_errors(models[cfg.num_modes], test, mean, std, hedged=True)
            if cfg.supervised_reference:
                # The unsupervised K-mode model's seed: the same initialisation, data and draws,
                # so the two differ only in being told the modes.
                supervised, _, supervised_pred, supervised_errors = train_one(
                    cfg, cfg.num_modes, train, test, mean, std, seed=model_seed(cfg.num_modes),
                    fresh_data=fresh_data, supervised=True)
                supervised_true_errors = prediction_errors(supervised, test, mean, std)
    finally:
        torch.set_num_threads(threads)
    k = cfg.num_modes
    counts = torch.bincount(test.modes, minlength=3).float()
    mapping = torch.tensor(runs[k].mapping)
    windows = test.sequence_shape[1]
    right = mapping[preds[k]] == test.modes  # samples whose mode the K-mode model identifies
    offsets = switch_offsets(test)
    at_switch = offsets == 0
    floor = bayes_error(test)
    result = BenchModesResult(
        accuracy=runs[k].accuracy,
        error_ratio=runs[1].state_error / max(runs[k].state_error, 1e-12) if 1 in runs else math.nan,
        error_ratio_mode_right=(float(errors[1][right].mean() / errors[k][right].mean().clamp_min(1e-12))
                                if 1 in runs and bool(right.any()) else math.nan),
        error_mode_right=mean_where(errors[k], right),
        error_mode_wrong=mean_where(errors[k], ~right),
        error_hedged=float(hedged.mean()),
        error_ratio_hedged=runs[1].state_error / max(float(hedged.mean()), 1e-12) if 1 in runs else math.nan,
        noise_floor=cfg.noise_floor(),
        bayes_error=floor,
        error_ratio_above_bayes=((runs[1].state_error - floor) / max(runs[k].state_error - floor, 1e-12)
                                 if 1 in runs else math.nan),
        switch_step_fraction=float(at_switch.float().mean()),
        switch_step_accuracy=mean_where(right.float(), at_switch),
        error_by_switch_distance={kk: error_by_switch_distance(errors[kk], offsets) for kk in runs},
        error_by_true_mode={kk: error_by_true_mode(errors[kk], offsets, test.modes) for kk in runs},
        chance_accuracy=float(counts.max() / counts.sum()),
        oracle_accuracy=float(test.identifiable.float().mean()),
        runtime_s=time.perf_counter() - start,
        accuracy_goal_met=False,
        error_ratio_goal_met=False,
        runs=runs,
        config={name: (str(value) if isinstance(value, Path) else value) for name, value in asdict(cfg).items()},
        timeline_true=test.modes[:windows].tolist(),
        timeline_pred=mapping[preds[k][:windows]].tolist(),
    )
    if cfg.supervised_reference:
        result.supervised_reference = supervised_reference(
            supervised_pred, supervised_errors, supervised_true_errors, test.modes, offsets,
            runs[1].state_error if 1 in runs else math.nan)
    result.accuracy_goal_met = result.accuracy >= GOAL_ACCURACY
    result.error_ratio_goal_met = result.error_ratio >= GOAL_ERROR_RATIO
    if cfg.out_dir is not None:
        from dhal.policies.bench_modes_outputs import write_outputs

        write_outputs(result, Path(cfg.out_dir))
    return result


def supervised_reference(pred: Tensor, errors: Tensor, true_mode_errors: Tensor, modes: Tensor, offsets: Tensor,
                         baseline_error: float) -> SupervisedReference:
    right = pred == modes
    at_switch = offsets == 0
    error_true, error_classifier = float(true_mode_errors.mean()), float(errors.mean())
    return SupervisedReference(
        accuracy=float(right.float().mean()),
        switch_step_accuracy=mean_where(right.float(), at_switch),
        error_true_modes=error_true, error_classifier=error_classifier,
        ratio_true_modes=baseline_error / max(error_true, 1e-12),
        ratio_classifier=baseline_error / max(error_classifier, 1e-12),
        error_by_switch_distance={"true_modes": error_by_switch_distance(true_mode_errors, offsets),
                                  "classifier": error_by_switch_distance(errors, offsets)},
    )


def main() -> None:
    result = run_modes_benchmark(BenchModesConfig(out_dir=Path("outputs/bench_modes")))
    print(result.summary())


if __name__ == "__main__":
    main()
