"""`dhal bench modes` outputs: results.json and a plot of the training curves and a mode timeline."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from dhal.policies.bench_modes_results import BenchModesResult
from dhal.policies.plotting import pyplot_agg


def write_outputs(result: BenchModesResult, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    payload = asdict(result)
    payload["runs"] = {str(k): v for k, v in payload["runs"].items()}
    json_path.write_text(json.dumps(payload, indent=1))
    png_path = out_dir / "modes.png"
    plot(result, png_path)
    return json_path, png_path


def plot(result: BenchModesResult, path: Path) -> None:
    plt = pyplot_agg()
    steps = int(result.config["steps"])
    fig, (ax_mse, ax_loss, ax_time) = plt.subplots(3, 1, figsize=(10, 10))
    for k, run in sorted(result.runs.items()):
        x = torch.linspace(steps / len(run.state_mse_curve), steps, len(run.state_mse_curve)).tolist()
        (line,) = ax_mse.plot(x, run.state_mse_curve, label=f"K={k} train selected-state MSE (sampled z)")
        if len(run.eval_curve) > 1:  # held-out error during training (eval_every)
            ax_mse.plot([e[0] for e in run.eval_curve], [e[2] for e in run.eval_curve], "o-", color=line.get_color(),
                        markersize=4, linewidth=1.5, label=f"K={k} held-out error, deterministic path")
        ax_mse.axhline(run.state_error, color=line.get_color(), linestyle=":", linewidth=1.5,
                       label=f"K={k} final held-out error: {run.state_error:.3f}")
        ax_loss.plot(x, run.loss_curve, color=line.get_color(), label=f"K={k} total dynamics loss")
    ax_mse.set_yscale("log")
    ax_mse.set_ylabel("sum of squares over state dims")
    title = f"next-state error (DHAL Fig. 7 metric); held-out ratio K=1/K={max(result.runs)}: {result.error_ratio:.2f}"
    ax_mse.set_title(title)
    ax_mse.legend(fontsize=7)
    ax_loss.set_xlabel("Adam step")
    ax_loss.set_title("total loss (includes -load_balance_weight * batch mode entropy, so it can be negative)")
    ax_loss.legend(fontsize=7)
    t = range(len(result.timeline_true))
    ax_time.step(t, result.timeline_true, where="post", label="true mode", linewidth=2)
    ax_time.step(t, [m + 0.08 for m in result.timeline_pred], where="post",
                 label=f"argmax K={max(result.runs)} (relabelled)")
    ax_time.set_yticks([0, 1, 2])
    ax_time.set_xlabel("step in a held-out sequence")
    ax_time.set_title(f"mode accuracy {result.accuracy:.3f} (chance {result.chance_accuracy:.3f}, "
                      f"identifiable {result.oracle_accuracy:.3f})")
    ax_time.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
