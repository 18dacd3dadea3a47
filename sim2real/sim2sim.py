"""`dhal eval --suite sim2sim`: a policy under physics it was not trained with.

Every policy rides the same seeded episodes under each `physics.PhysicsSettings` (smaller
timestep, other solvers, elliptic cone, softer contacts, noslip, the other backend), and the
report gives each setting's success rate and tracking errors and their change against the
trained physics. A setting is flagged when its success interval lies wholly below the trained
one's: a policy that only works with one simulator's quirks shows up as flags here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dhal.policies.plotting import pyplot_agg
from dhal.policies.inference import LoadedPolicy
from dhal.sim2real import paper
from dhal.sim2real.conditions import OK, SuiteSettings, evaluate_condition
from dhal.sim2real.envs import EnvRequest
from dhal.sim2real.physics import PhysicsSettings

SUITE = "sim2sim"
BASELINE = "trained"


def compare_to_baseline(cell: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, Any]:
    """Change of success rate and tracking errors against the trained physics, and whether the
    success interval lies wholly below the baseline's (a significant drop)."""
    if cell["status"] != OK or baseline["status"] != OK:
        return {}
    s, b = cell["success"], baseline["success"]
    return {
        "success_rate_change": s["rate"] - b["rate"],
        "lin_vel_error_change_mps": cell["lin_vel_abs_error_mps"] - baseline["lin_vel_abs_error_mps"],
        "yaw_rate_error_change_radps": cell["yaw_rate_abs_error_radps"] - baseline["yaw_rate_abs_error_radps"],
        "significant_drop": s["ci_high"] < b["ci_low"],
    }


def run_sim2sim(policies: Sequence[LoadedPolicy], settings_list: Sequence[PhysicsSettings], request: EnvRequest,
                settings: SuiteSettings) -> dict[str, Any]:
    if not settings_list or settings_list[0].name != BASELINE:
        raise ValueError(f"the physics settings must start with the {BASELINE!r} baseline")
    methods = []
    bar = tqdm(total=len(policies) * len(settings_list), desc=SUITE, unit="setting", disable=not settings.progress,
               dynamic_ncols=True)
    try:
        for loaded in policies:
            cells: dict[str, Any] = {}
            for physics in settings_list:
                bar.set_postfix_str(f"{paper.method_of(loaded.config)}: {physics.name}", refresh=True)
                cells[physics.name] = evaluate_condition(
                    loaded, request, settings.episodes, settings.num_envs, physics=physics,
                    min_distance_m=settings.min_distance_m, progress=False)
                bar.update(1)
            baseline = cells[BASELINE]
            for name, cell in cells.items():
                if name != BASELINE:
                    cell["change"] = compare_to_baseline(cell, baseline)
            methods.append({"method": paper.method_of(loaded.config), "checkpoint": str(loaded.checkpoint),
                            "iteration": loaded.iteration, "results": cells})
    finally:
        bar.close()
    return {
        "suite": SUITE, "task": request.task, "backend": request.backend, "seed": request.seed,
        "env_overrides": dict(request.overrides or {}),
        "episodes_per_setting": settings.episodes, "num_envs": min(settings.num_envs, settings.episodes),
        "settings": [{"name": p.name, "description": p.description, "changes": p.changes()} for p in settings_list],
        "methods": methods,
    }


def format_table(results: Mapping[str, Any]) -> str:
    lines: list[str] = []
    notes: list[str] = []
    for m in results["methods"]:
        lines.append(f"{m['method']} ({m['checkpoint']}, iteration {m['iteration']})")
        rows = [["physics", "success [95% CI]", "change", "|v err| m/s", "change", "|yaw err| rad/s", "change",
                 "early ends", ""]]
        for setting in results["settings"]:
            cell = m["results"][setting["name"]]
            if cell["status"] != OK:
                rows.append([setting["name"], cell["status"].split(":")[0], "", "", "", "", "", "", ""])
                notes.append(f"{m['method']} / {setting['name']}: {cell['status']}")
                continue
            ends = ", ".join(f"{k} {v}" for k, v in cell["terminations"].items() if k != "time_out" and v)
            s, change = cell["success"], cell.get("change", {})
            rows.append([
                setting["name"],
                f"{100 * s['rate']:3.0f}% [{100 * s['ci_low']:3.0f},{100 * s['ci_high']:4.0f}] {s['successes']}/{s['trials']}",
                f"{100 * change['success_rate_change']:+.0f} pts" if change else "",
                f"{cell['lin_vel_abs_error_mps']:.3f}",
                f"{change['lin_vel_error_change_mps']:+.3f}" if change else "",
                f"{cell['yaw_rate_abs_error_radps']:.3f}",
                f"{change['yaw_rate_error_change_radps']:+.3f}" if change else "",
                ends or "-",
                "SIGNIFICANT DROP" if change.get("significant_drop") else "",
            ])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.append("")
    lines.append("significant drop: the setting's success interval lies wholly below the trained physics' one; "
                 "early ends: episodes per termination reason")
    return "\n".join(lines + notes)


def plot_sim2sim(results: Mapping[str, Any], path: Path) -> None:
    """Success rate (with intervals) and linear tracking error per physics setting and method."""
    import numpy as np

    plt = pyplot_agg()
    names = [s["name"] for s in results["settings"]]
    methods = results["methods"]
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(names))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(max(8.0, 1.1 * len(names)), 6.5), sharex=True)
    for k, m in enumerate(methods):
        offset = x - 0.4 + width * (k + 0.5)
        for i, name in enumerate(names):
            cell = m["results"][name]
            if cell["status"] != OK:
                top.text(offset[i], 0.02, "not run", rotation=90, ha="center", va="bottom", fontsize=7, color="0.4")
                continue
            s = cell["success"]
            label = m["method"] if i == 0 else None
            top.bar(offset[i], s["rate"], width * 0.9, color=f"C{k}", alpha=0.75, label=label)
            top.errorbar(offset[i], s["rate"], yerr=[[s["rate"] - s["ci_low"]], [s["ci_high"] - s["rate"]]],
                         color="k", capsize=3, linewidth=1)
            bottom.bar(offset[i], cell["lin_vel_abs_error_mps"], width * 0.9, color=f"C{k}", alpha=0.75)
    top.set_ylim(0.0, 1.05)
    top.set_ylabel("success rate")
    top.legend(fontsize=7)
    top.set_title(f"sim-to-sim: {results['episodes_per_setting']} episodes per setting, seed {results['seed']}",
                  fontsize=10)
    bottom.set_ylabel("|v_cmd - v_board| (m/s)")
    bottom.set_xticks(x, names, rotation=30, ha="right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
