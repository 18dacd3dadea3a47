"""The `dhal` console command: help, argument errors, and a tiny real `dhal sim` run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dhal.cli import main

DHAL = Path(sys.executable).with_name("dhal")  # the console script installed beside this Python


def run_dhal(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert DHAL.exists(), f"console script missing at {DHAL}; is the package installed (pip install -e .)?"
    return subprocess.run([str(DHAL), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["sim", "bench"]),
        (("sim",), ["--policy", "--num-envs", "--no-video", "--override"]),
        (("bench", "env"), ["--sizes", "--seconds", "--json"]),
    ],
)
def test_help_lists_the_options(args, expected):
    result = run_dhal(*args, "--help")
    assert result.returncode == 0, result.stderr
    for option in expected:
        assert option in result.stdout


def test_missing_subcommand_is_a_usage_error():
    result = run_dhal("bench")
    assert result.returncode != 0
    assert "env" in result.stdout + result.stderr


def test_bad_override_is_reported_without_a_traceback(capsys):
    assert main(["sim", "--override", "no_equals_sign", "--no-video"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


@pytest.mark.usefixtures("real_env_available")
def test_unknown_task_lists_the_available_ones(capsys):
    assert main(["sim", "--task", "no-such-task", "--no-video"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'no-such-task'" in err and "dhal-skateboard" in err


@pytest.mark.usefixtures("real_env_available")
def test_unknown_backend_lists_the_names_and_short_names(capsys):
    assert main(["sim", "--backend", "physx", "--no-video"]) == 2
    err = capsys.readouterr().err
    assert "unknown simulator backend 'physx'" in err and "mujoco_warp" in err and "mjwarp = mujoco_warp" in err


@pytest.mark.usefixtures("real_env_available")
def test_a_short_backend_name_runs(tmp_path):
    assert main(["sim", "--backend", "mjbatch", "--num-envs", "1", "--seconds", "0.04", "--no-video",
                 "--out", str(tmp_path)]) == 0


@pytest.mark.usefixtures("real_env_available")
def test_unknown_config_key_is_reported(capsys):
    assert main(["sim", "--override", "no.such.key=1", "--no-video"]) == 2
    assert "no.such.key" in capsys.readouterr().err


@pytest.mark.usefixtures("real_env_available")
def test_a_warp_buffer_too_small_is_reported_with_the_override_to_use(capsys, tmp_path):
    pytest.importorskip("mujoco_warp")
    assert main(["sim", "--backend", "mujoco_warp", "--num-envs", "2", "--override", "sim.njmax=8",
                 "--seconds", "0.2", "--no-video", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--override sim.njmax=" in err and "Traceback" not in err


@pytest.mark.usefixtures("real_env_available")
def test_tiny_sim_run_writes_the_plot(tmp_path):
    out = tmp_path / "sim"
    result = run_dhal("sim", "--num-envs", "2", "--seconds", "0.2", "--no-video", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "rollout.png").stat().st_size > 0
    assert str(out / "rollout.png") in result.stdout
    data = np.load(out / "rollout.npz")
    assert data["time"].shape == (10,)
    assert data["reward/groups/mean"].shape[0] == 10


@pytest.mark.usefixtures("real_env_available")
def test_tiny_bench_run_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = run_dhal(
        "bench", "env", "--sizes", "2", "--seconds", "0.2", "--warmup-steps", "2", "--json", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "env/raw" in result.stdout and "0.80" in result.stdout
    assert out.exists()


def test_bench_update_smoke_reports_the_update_time():
    result = run_dhal("bench", "update", "--preset", "smoke")
    assert result.returncode == 0, result.stderr
    assert "update" in result.stdout and "preset smoke" in result.stdout


def test_bench_update_unknown_preset_is_a_named_error():
    result = run_dhal("bench", "update", "--preset", "huge")
    assert result.returncode == 2
    assert "huge" in result.stderr and "paper" in result.stderr


def test_bench_modes_tiny_run_prints_accuracy_and_ratio(tmp_path):
    result = run_dhal("bench", "modes", "--steps", "40", "--train-sequences", "4", "--test-sequences", "2",
                      "--no-progress", "--out-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "mode accuracy" in result.stdout and "K=1 / K=3" in result.stdout
    assert (tmp_path / "results.json").exists()


def test_bench_modes_over_seeds_prints_a_table_with_the_spread(tmp_path):
    result = run_dhal("bench", "modes", "--steps", "20", "--train-sequences", "4", "--test-sequences", "2",
                      "--num-seeds", "2", "--no-progress", "--out-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "ratio min / median / max" in result.stdout and "of 2 seeds" in result.stdout
    assert (tmp_path / "seeds.json").exists() and (tmp_path / "seed_1" / "results.json").exists()


def test_the_command_tree_builds_without_the_deploy_and_gpu_extras():
    """`make demo` installs only the core: `dhal` must not import ROS, ONNX, MCAP or Warp to start."""
    import subprocess
    import sys

    blocker = (
        "import sys, importlib.abc\n"
        "BLOCKED = ('mcap', 'mcap_ros2', 'onnxruntime', 'onnx', 'rclpy', 'std_msgs', 'sensor_msgs', 'warp',"
        " 'mujoco_warp', 'tensorboard')\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from dhal.cli import main\n"
        "for args in (['--help'], ['deploy', '--help'], ['bench', '--help'], ['sim', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, (args, exit.code)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_a_bad_benchmark_option_is_reported_without_a_traceback(capsys):
    assert main(["bench", "modes", "--num-modes", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "dhal: error: num_modes must be >= 2" in err and "Traceback" not in err
