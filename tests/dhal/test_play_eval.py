"""`dhal play` and `dhal eval` end to end on a smoke checkpoint: outputs, JSON fields, determinism,
a tiny real video, and the error (exit code 2) for a corrupt checkpoint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.cli import SHORT_EPISODES, run_dhal

torch.set_num_threads(1)

DHAL = Path(sys.executable).with_name("dhal")



def evaluate(run: Path, out: Path, *extra: str) -> dict:
    code, stdout, err = run_dhal("eval", str(run), "--episodes", "3", "--num-envs", "2", "--out", str(out),
                                 *SHORT_EPISODES, *extra)
    assert code == 0, err
    assert "success rate:" in stdout and "mode/contact NMI" in stdout
    return json.loads((out / "eval.json").read_text())


def test_eval_writes_the_json_and_plots(smoke_run, tmp_path):
    results = evaluate(smoke_run, tmp_path / "eval")
    assert results["checkpoint"].endswith("model_1.pt") and results["iteration"] == 1
    assert results["episodes"] == 3 and results["num_envs"] == 2 and len(results["per_episode"]) == 3
    assert 0.0 <= results["success_rate"] <= 1.0
    # 0.3 s episodes are shorter than one push/glide cycle: none can succeed
    assert results["successes"] == 0 and results["failures"]["no_full_cycle"] == 3
    assert "push/glide cycle" in results["success_criterion"]["definition"]
    assert results["success_criterion"]["min_distance_m"] == 5.0
    for key in ("mean", "std", "min", "max"):
        assert key in results["distance_m"] and key in results["episode_length_s"]
    assert results["episode_length_s"]["mean"] == pytest.approx(0.3)
    assert set(results["tracking"]) == {"lin_vel_abs_error_mps", "yaw_rate_abs_error_radps", "definition"}
    assert results["env_overrides"] == {"sim.episode_length_s": 0.3}
    assert results["terminations"]["time_out"] + results["falls"] == 3
    modes = results["modes"]
    assert modes["num_modes"] == 3 and sum(modes["occupancy"]) == pytest.approx(1.0)
    assert modes["switch_rate_per_s"] >= 0 and modes["mean_dwell_s"] > 0 and 0.0 <= modes["contact_nmi"] <= 1.0
    episode = results["per_episode"][0]
    for key in ("env", "index", "length_s", "distance_m", "push_s", "glide_s", "termination_reasons",
                "max_attachment_error_m", "lin_vel_abs_error_mps", "yaw_rate_abs_error_radps", "success", "failures"):
        assert key in episode
    assert (tmp_path / "eval" / "eval_timeline.png").stat().st_size > 0
    assert (tmp_path / "eval" / "eval_distances.png").stat().st_size > 0


def test_eval_is_deterministic_for_a_seed(smoke_run, tmp_path):
    first = evaluate(smoke_run, tmp_path / "a", "--seed", "3", "--no-plots")
    second = evaluate(smoke_run, tmp_path / "b", "--seed", "3", "--no-plots")
    assert first == second
    other = evaluate(smoke_run, tmp_path / "c", "--seed", "4", "--no-plots")
    assert other["per_episode"] != first["per_episode"]


def test_eval_with_a_fixed_command(smoke_run, tmp_path):
    results = evaluate(smoke_run, tmp_path / "cmd", "--command-vx", "1.0", "--no-plots")
    assert results["commands"] == "command vx +1.00 m/s, yaw +0.00 rad/s"
    assert results["tracking"]["lin_vel_abs_error_mps"] > 0.5  # a smoke policy does not ride at 1 m/s


def test_play_without_video_writes_the_plot_and_data(smoke_run, tmp_path):
    out = tmp_path / "play"
    code, stdout, err = run_dhal("play", str(smoke_run), "--seconds", "0.5", "--no-video", "--out", str(out),
                             "--command-vx", "0.8", "--command-yaw", "0.2", *SHORT_EPISODES)
    assert code == 0, err
    assert "mode occupancy" in stdout and not (out / "play.mp4").exists()
    assert (out / "play.png").stat().st_size > 0
    data = np.load(out / "play.npz")
    assert data["mode"].shape == (25,) and data["mode_probs"].shape == (25, 3)
    assert data["free_contacts"].shape == (25, 3)
    assert np.allclose(data["command_vx"], 0.8) and np.allclose(data["command_yaw"], 0.2)
    assert data["resets"].tolist() == pytest.approx([0.3])  # the 0.3 s episode ended once


def test_play_renders_a_mode_coloured_video(smoke_run, tmp_path):
    import imageio.v2 as imageio

    out = tmp_path / "video"
    code, _, err = run_dhal("play", str(smoke_run / "model_1.pt"), "--seconds", "0.2", "--width", "64",
                            "--height", "48", "--out", str(out), *SHORT_EPISODES)
    if code == 2 and "rendering failed" in err and "HeadlessGLUnavailable" in err:
        pytest.skip(f"no OpenGL platform for headless rendering here: {err.strip()}")
    assert code == 0, err
    reader = imageio.get_reader(out / "play.mp4")
    frames = [frame for frame in reader]
    reader.close()
    assert len(frames) == 10 and frames[0].shape == (48, 64, 3)
    mode = int(np.load(out / "play.npz")["mode"][0])
    from dhal.policies.plotting import mode_colours

    banner = frames[0][2:4, 40:60].reshape(-1, 3).mean(0)  # right of the text, inside the banner
    assert np.abs(banner - np.asarray(mode_colours(3)[mode]) * 255).max() < 40  # video compression


@pytest.mark.parametrize("command", ["play", "eval"])
def test_a_corrupt_checkpoint_exits_with_2_and_a_clear_message(smoke_run, tmp_path, command):
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    data = (run / "model_1.pt").read_bytes()
    (run / "model_5.pt").write_bytes(data[: len(data) // 2])  # the newest: picked for the run folder
    extra = ("--no-video",) if command == "play" else ("--episodes", "1")
    code, _, err = run_dhal(command, str(run), "--out", str(tmp_path / "out"), *extra, *SHORT_EPISODES)
    assert code == 2
    assert "model_5.pt is not a readable torch checkpoint" in err and "Traceback" not in err


def test_help_lists_the_play_and_eval_options():
    for command, options in (("play", ("CHECKPOINT", "--seconds", "--command-vx", "--command-yaw", "--no-video",
                                       "--task", "--out")),
                             ("eval", ("CHECKPOINT", "--episodes", "--num-envs", "--seed", "--out", "--min-distance"))):
        result = subprocess.run([str(DHAL), command, "--help"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        for option in options:
            assert option in result.stdout, (command, option)
