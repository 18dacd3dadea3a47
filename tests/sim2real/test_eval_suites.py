"""`dhal eval --suite ...` end to end on smoke checkpoints (DHAL and a single-critic ablation):
JSON, plots, the paper's numbers beside ours, seeded reproducibility, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.cli import SHORT_EPISODES, run_dhal

torch.set_num_threads(1)




@pytest.fixture(scope="module")
def runs(smoke_run, tmp_path_factory) -> dict[str, Path]:
    single = tmp_path_factory.mktemp("runs") / "single"
    code, _, err = run_dhal("train", "--preset", "smoke", "--no-progress", "--iterations", "1", "--num-envs", "2",
                        "--run-dir", str(single), "--train-override", "critic.mode='single'")
    assert code == 0, err
    return {"dhal": smoke_run, "single": single}


def suite(runs: dict[str, Path], out: Path, *args: str) -> tuple[dict, str]:
    code, stdout, err = run_dhal("eval", str(runs["dhal"]), "--out", str(out), "--episodes", "2", "--num-envs", "2",
                             *SHORT_EPISODES, *args)
    assert code == 0, err
    name = args[args.index("--suite") + 1]
    return json.loads((out / f"{name}.json").read_text()), stdout


def test_hardware_table_with_an_ablation_next_to_the_paper(runs, tmp_path):
    results, stdout = suite(runs, tmp_path, "--suite", "hardware-table", "--scenarios", "ceramic", "slope",
                            "--compare", str(runs["single"]))
    assert [m["method"] for m in results["methods"]] == ["DHAL", "wo-MC"]
    dhal_cells = results["methods"][0]["results"]
    ceramic = dhal_cells["ceramic"]
    assert ceramic["status"] == "ok" and ceramic["success"]["trials"] == 2
    assert ceramic["success"]["ci_low"] <= ceramic["success"]["rate"] <= ceramic["success"]["ci_high"]
    # 0.3 s rides cannot complete a push/glide cycle
    assert ceramic["success"]["successes"] == 0 and ceramic["failures"]["no_full_cycle"] == 2
    assert dhal_cells["slope"]["status"] == "ok"  # on the hill terrain
    assert results["paper"]["DHAL"]["slope"]["rate"] == 0.8 and results["paper"]["wo-MC"]["ceramic"]["rate"] == 0.6
    assert results["env_overrides"]["commands.lin_vel_x"] == [1.0, 1.0]  # the suite's forward command
    assert "DHAL (paper, n=5)" in stdout and "wo-MC (sim)" in stdout
    assert (tmp_path / "hardware-table.png").stat().st_size > 0


def test_a_seed_reproduces_a_suite(runs, tmp_path):
    args = ("--suite", "hardware-table", "--scenarios", "disturbance", "--no-plots", "--seed", "5")
    first, _ = suite(runs, tmp_path / "a", *args)
    again, _ = suite(runs, tmp_path / "b", *args)
    assert first == again


def test_sim2sim_reports_the_change_against_the_trained_physics(runs, tmp_path):
    results, stdout = suite(runs, tmp_path, "--suite", "sim2sim", "--physics", "elliptic_cone", "timestep_2.5ms")
    assert [s["name"] for s in results["settings"]] == ["trained", "timestep_2.5ms", "elliptic_cone"]  # listed order
    cells = results["methods"][0]["results"]
    assert "change" not in cells["trained"]
    change = cells["elliptic_cone"]["change"]
    assert change["lin_vel_error_change_mps"] == pytest.approx(
        cells["elliptic_cone"]["lin_vel_abs_error_mps"] - cells["trained"]["lin_vel_abs_error_mps"])
    assert cells["elliptic_cone"]["lin_vel_abs_error_mps"] != cells["trained"]["lin_vel_abs_error_mps"]
    assert results["settings"][1]["changes"] == {"physics_dt": 0.0025}
    assert "elliptic_cone" in stdout and (tmp_path / "sim2sim.png").stat().st_size > 0


def test_command_sweep_writes_a_grid_per_method(runs, tmp_path):
    results, _ = suite(runs, tmp_path, "--suite", "command-sweep", "--sweep-vx", "0.5", "1.5", "--sweep-yaw", "0.0",
                       "--episodes", "1")
    grid = results["methods"][0]["lin_vel_abs_error_mps"]
    assert results["vx"] == [0.5, 1.5] and results["yaw_rate"] == [0.0]
    assert len(grid) == 2 and len(grid[0]) == 1
    assert grid[1][0] > grid[0][0]  # a smoke policy barely moves: the faster command is tracked worse
    assert (tmp_path / "command-sweep.png").stat().st_size > 0


@pytest.mark.parametrize(("args", "message"), [
    (("--compare", "x"), "--compare needs a --suite"),
    (("--suite", "hardware-table", "--scenarios", "ice"), "unknown scenarios ['ice']"),
    (("--suite", "sim2sim", "--physics", "bullet"), "unknown physics settings ['bullet']"),
    (("--suite", "command-sweep", "--command-vx", "1.0"), "sets the commands itself"),
])
def test_bad_suite_arguments_exit_with_2_and_say_why(runs, tmp_path, args, message):
    code, _, err = run_dhal("eval", str(runs["dhal"]), "--out", str(tmp_path), *SHORT_EPISODES, *args)
    assert code == 2 and message in err and "Traceback" not in err
