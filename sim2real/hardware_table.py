"""`dhal eval --suite hardware-table`: DHAL's Table III in simulation.

Every checkpoint (DHAL and its ablations) rides every scenario of `scenarios.HARDWARE_SCENARIOS`
for the same seeded episodes at a fixed forward command; each cell is a success rate with its
Wilson 95% interval, printed next to the paper's real-robot number for that method (itself an
interval: 5 trials). A cell that cannot run here (e.g. a backend this machine lacks) says why
instead of giving a number."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dhal.policies.evaluate import SuccessCriterion
from dhal.policies.plotting import pyplot_agg
from dhal.policies.inference import LoadedPolicy
from dhal.sim2real import paper
from dhal.sim2real.conditions import OK, SuiteSettings, evaluate_condition
from dhal.sim2real.envs import EnvRequest
from dhal.sim2real.scenarios import Scenario

SUITE = "hardware-table"


def method_label(loaded: LoadedPolicy) -> str:
    return paper.method_of(loaded.config)


def run_hardware_table(policies: Sequence[LoadedPolicy], scenarios: Sequence[Scenario], request: EnvRequest,
                       settings: SuiteSettings) -> dict[str, Any]:
    """The results of every policy on every scenario, with the paper's numbers beside them."""
    rows = [(p, s) for p in policies for s in scenarios]
    methods: list[dict[str, Any]] = []
    bar = tqdm(total=len(rows), desc=SUITE, unit="scenario", disable=not settings.progress, dynamic_ncols=True)
    try:
        for loaded in policies:
            cells: dict[str, Any] = {}
            for scenario in scenarios:
                bar.set_postfix_str(f"{method_label(loaded)}: {scenario.name}", refresh=True)
                cells[scenario.name] = evaluate_condition(
                    loaded, request, settings.episodes, settings.num_envs, scenario.overrides,
                    min_distance_m=settings.min_distance_m, progress=False)
                bar.update(1)
            methods.append({"method": method_label(loaded), "checkpoint": str(loaded.checkpoint),
                            "iteration": loaded.iteration, "results": cells})
    finally:
        bar.close()
    labels = [m["method"] for m in methods]
    return {
        "suite": SUITE,
        "task": request.task, "backend": request.backend, "seed": request.seed,
        "env_overrides": dict(request.overrides or {}),
        "episodes_per_scenario": settings.episodes, "num_envs": min(settings.num_envs, settings.episodes),
        "success_criterion": criterion_of(methods, settings.min_distance_m),
        "scenarios": [{"name": s.name, "description": s.description, "overrides": dict(s.overrides)}
                      for s in scenarios],
        "methods": methods,
        "paper": {label: {s.name: (r.as_dict() if (r := paper.paper_result(label, s.name)) else None)
                          for s in scenarios} for label in dict.fromkeys(labels)},
        "paper_source": f"DHAL Table III (real Go1), {paper.PAPER_TRIALS} trials per cell per its caption",
    }


def criterion_of(methods: Sequence[Mapping[str, Any]], min_distance_m: float) -> dict[str, Any]:
    """The success criterion the cells were judged by (the first evaluated cell's, which follows
    its env config), or the default one if no cell ran."""
    for m in methods:
        for cell in m["results"].values():
            if cell["status"] == OK:
                return dict(cell["criterion"])
    default = SuccessCriterion(min_distance_m=min_distance_m)
    return {**asdict(default), "definition": default.describe()}


def _cell_text(cell: Mapping[str, Any]) -> str:
    if cell["status"] != OK:
        return cell["status"].split(":")[0]
    s = cell["success"]
    return f"{100 * s['rate']:3.0f}% [{100 * s['ci_low']:3.0f},{100 * s['ci_high']:4.0f}] {s['successes']}/{s['trials']}"


def _paper_text(result: Mapping[str, Any] | None) -> str:
    if result is None:
        return "-"
    mark = " x" if result["note"] else ""
    return f"{100 * result['rate']:3.0f}% [{100 * result['ci_low']:3.0f},{100 * result['ci_high']:4.0f}]{mark}"


def format_table(results: Mapping[str, Any]) -> str:
    """Rows: scenarios; per method a simulated column and the paper's column."""
    header = ["scenario"]
    for m in results["methods"]:
        header += [f"{m['method']} (sim)", f"{m['method']} (paper, n={paper.PAPER_TRIALS})"]
    lines = [header]
    for scenario in results["scenarios"]:
        name = scenario["name"]
        row = [name]
        for m in results["methods"]:
            row += [_cell_text(m["results"][name]), _paper_text(results["paper"][m["method"]][name])]
        lines.append(row)
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"success: board travel > {results['success_criterion']['min_distance_m']:g} m, a full push/glide cycle "
             f"(feet off and back on the board), no fall or detachment; 95% Wilson intervals in brackets"]
    if any(r and r["note"] for per in results["paper"].values() for r in per.values()):
        notes.append(f"x: {paper.COMPLETE_FAILURE_NOTE}")
    for m in results["methods"]:
        for name, cell in m["results"].items():
            if cell["status"] != OK:
                notes.append(f"{m['method']} / {name}: {cell['status']}")
    return "\n".join(text + notes)


def plot_table(results: Mapping[str, Any], path: Path) -> None:
    """Grouped bars of simulated success per scenario and method with their intervals; the paper's
    numbers as open diamonds with theirs; scenarios not run are labelled."""
    import numpy as np

    plt = pyplot_agg()
    names = [s["name"] for s in results["scenarios"]]
    methods = results["methods"]
    width = 0.8 / max(1, len(methods))
    figure, axis = plt.subplots(figsize=(max(7.0, 1.6 * len(names) * max(1, len(methods)) ** 0.5), 4.5))
    x = np.arange(len(names))
    for k, m in enumerate(methods):
        offset = x - 0.4 + width * (k + 0.5)
        colour = f"C{k}"
        for i, name in enumerate(names):
            cell = m["results"][name]
            if cell["status"] != OK:
                axis.text(offset[i], 0.02, cell["status"].split(":")[0], rotation=90, ha="center", va="bottom",
                          fontsize=7, color="0.4")
                continue
            s = cell["success"]
            axis.bar(offset[i], s["rate"], width * 0.9, color=colour, alpha=0.75,
                     label=f"{m['method']} (sim)" if i == 0 else None)
            axis.errorbar(offset[i], s["rate"], yerr=[[s["rate"] - s["ci_low"]], [s["ci_high"] - s["rate"]]],
                          color="k", capsize=3, linewidth=1)
        for i, name in enumerate(names):
            ref = results["paper"][m["method"]][name]
            if ref is None:
                continue
            axis.errorbar(offset[i] + width * 0.3, ref["rate"],
                          yerr=[[ref["rate"] - ref["ci_low"]], [ref["ci_high"] - ref["rate"]]], fmt="D",
                          mfc="white", color=colour, markersize=5, capsize=2, linewidth=0.8,
                          label=f"{m['method']} (paper, real robot)" if i == 0 else None)
    axis.set_xticks(x, names)
    axis.set_ylim(0.0, 1.05)
    axis.set_ylabel("success rate (95% Wilson interval)")
    axis.set_title(f"hardware scenarios in simulation: {results['episodes_per_scenario']} episodes each, "
                   f"seed {results['seed']}", fontsize=10)
    axis.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
