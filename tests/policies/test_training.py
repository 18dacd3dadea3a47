"""`dhal train` end to end on the real env (smoke preset, 4 envs): checkpoints, TensorBoard,
resume, and the errors for corrupt or mismatched checkpoints; inference policy and export."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dhal.policies.run_scalars import read_scalars
from dhal.policies.training import CheckpointError, export_onnx, read_checkpoint
from tests.cli import CliResult, run_dhal

torch.set_num_threads(1)

DHAL = Path(sys.executable).with_name("dhal")


def train(*args: str) -> CliResult:
    return run_dhal("train", "--preset", "smoke", "--no-progress", *args)


def scalar_tags(run_dir: Path) -> set[str]:
    return set(read_scalars(run_dir))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "smoke"
    code, out, err = train("--iterations", "2", "--run-dir", str(run))
    assert code == 0, err
    assert "model_2.pt" in out
    return run


def copy_run(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


def test_smoke_run_writes_checkpoints_config_and_tensorboard(trained):
    assert (trained / "model_1.pt").exists() and (trained / "model_2.pt").exists()  # save_interval 1
    assert not [p for p in trained.iterdir() if p.name.startswith(".")], "temp files left behind"
    ckpt = read_checkpoint(trained / "model_2.pt")
    assert ckpt["iter"] == 2
    config = json.loads((trained / "config.json").read_text())
    assert config["preset"] == "smoke" and config["train"]["num_envs"] == 4
    assert config["env"]["reward_group_names"] == ["glide", "push", "sim2real"]
    assert config["env"]["config"]["observations"]["critic"] == "full"
    assert ckpt["infos"]["config"]["train"] == config["train"]
    tags = scalar_tags(trained)
    for tag in ("Loss/surrogate", "Loss/value_glide", "Loss/value_sim2real", "Loss/kl", "Loss/learning_rate",
                "Dynamics/rec_loss_mode_0", "Dynamics/occupancy_mode_1", "Modes/switch_rate", "Modes/contact_nmi",
                "Policy/beta_alpha_mean", "Policy/beta_beta_mean", "Reward/push_per_step", "Perf/total_fps"):
        assert tag in tags, tag


def test_resume_continues_the_iteration_count_and_the_optimizer(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    before = torch.load(run / "model_2.pt", weights_only=True)
    steps_before = {int(s["step"]) for s in before["optimizer_state_dict"]["state"].values()}
    assert steps_before == {2}  # 2 iterations x 1 epoch x 1 minibatch
    code, out, err = train("--resume", str(run), "--iterations", "2")
    assert code == 0, err
    assert "iterations 2..4" in out
    after = read_checkpoint(run / "model_4.pt")
    assert after["iter"] == 4
    assert {int(s["step"]) for s in after["optimizer_state_dict"]["state"].values()} == {4}
    assert json.loads((run / "config.json").read_text())["resumed_from"]["iteration"] == 2
    assert set(read_scalars(run, {"Loss/surrogate"})["Loss/surrogate"]) == {0, 1, 2, 3}


def test_a_time_limit_stops_after_the_iteration_that_passes_it(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    code, out, err = train("--resume", str(run), "--iterations", "50", "--time-limit", "0")
    assert code == 0, err
    assert "iterations 2..3" in out
    assert read_checkpoint(run / "model_3.pt")["iter"] == 3
    code, _, err = train("--resume", str(run), "--iterations", "1", "--time-limit", "-1")
    assert code != 0 and "--time-limit must be >= 0" in err


def test_a_buffer_overflow_mid_run_keeps_the_checkpoint_and_says_how_to_go_on(trained, tmp_path, monkeypatch):
    """A simulator buffer that overflows hours into a GPU run: the completed iterations are
    saved and the error gives the resume command with the override that fits."""
    from dhal.envs.backends import SimulatorCapacityError
    from dhal.envs.skateboard.task import SkateboardEnv

    run = copy_run(trained, tmp_path)
    real_step, calls = SkateboardEnv.step, []

    def overflowing_step(self, actions):
        calls.append(1)
        if len(calls) > 8:  # the smoke preset collects 8 steps per iteration
            raise SimulatorCapacityError("constraint rows: pass njmax=288", {"sim.njmax": 288})
        return real_step(self, actions)

    monkeypatch.setattr(SkateboardEnv, "step", overflowing_step)
    code, _, err = train("--resume", str(run), "--iterations", "3")
    assert code != 0
    assert "stopped after iteration 3 (checkpoint" in err and "model_3.pt" in err
    assert f"continue with: dhal train --resume {run} --override sim.njmax=288" in err
    assert read_checkpoint(run / "model_3.pt")["iter"] == 3
    monkeypatch.setattr(SkateboardEnv, "step", real_step)
    code, out, err = train("--resume", str(run), "--iterations", "1", "--override", "sim.njmax=288")
    assert code == 0, err
    assert "iterations 3..4" in out


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_checkpoint_is_a_clear_error(trained, tmp_path, damage):
    run = copy_run(trained, tmp_path)
    path = run / "model_9.pt"  # the newest, so --resume RUN picks it
    if damage == "garbage":
        path.write_bytes(b"this is not a checkpoint")
    else:
        data = (run / "model_2.pt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    code, _, err = train("--resume", str(run), "--iterations", "1")
    assert code == 2
    assert "model_9.pt is not a readable torch checkpoint" in err
    assert "Traceback" not in err


def test_foreign_torch_file_is_a_clear_error(tmp_path):
    path = tmp_path / "model_1.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a DHAL training checkpoint"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        read_checkpoint(tmp_path / "empty_dir_missing")


def test_checkpoint_of_a_lean_critic_does_not_load_into_a_full_one(tmp_path):
    run = tmp_path / "lean"
    code, _, err = train("--iterations", "1", "--run-dir", str(run), "--override", "observations.critic=lean")
    assert code == 0, err
    code, _, err = train("--resume", str(run), "--iterations", "1", "--override", "observations.critic='full'")
    assert code == 2
    assert "observation group 'privileged' has 122 values in the checkpoint, 1630 here" in err
    assert "observations.critic: 'lean' (checkpoint) vs 'full' (now)" in err
    assert "Traceback" not in err and "size mismatch" not in err


def test_checkpoint_of_another_critic_mode_is_a_clear_error(trained, tmp_path):
    run = copy_run(trained, tmp_path)
    code, _, err = train("--resume", str(run), "--iterations", "1", "--train-override", "critic.mode=single")
    assert code == 2
    assert "critic_names is ['glide', 'push', 'sim2real'] in the checkpoint, ['total'] here" in err
    assert "train.critic.mode: 'multi' (checkpoint) vs 'single' (now)" in err


def test_inference_policy_is_deterministic_and_exports(trained, tmp_path):
    from dhal.envs.adapters.rsl_rl import RslRlVecEnv
    from dhal.envs.registry import make_env
    from dhal.policies import presets
    from dhal.policies.training import DHALRunner

    config = json.loads((trained / "config.json").read_text())
    env = RslRlVecEnv(make_env(num_envs=4))
    try:
        train_cfg = presets.from_dict(presets.TrainConfig, config["train"])
        runner = DHALRunner(env, presets.rsl_rl_config(train_cfg), log_dir=None, run_config=config)
        runner.load(trained / "model_2.pt")
        policy = runner.get_inference_policy()
        obs = env.get_observations()
        with torch.inference_mode():
            first, second = policy(obs), policy(obs)
        assert torch.equal(first, second)
        assert first.abs().max() <= 3.0
        path = export_onnx(runner.alg, tmp_path / "policy.onnx")
        assert path.stat().st_size > 0
    finally:
        env.close()


def test_bad_train_override_is_reported(tmp_path):
    code, _, err = train("--iterations", "1", "--run-dir", str(tmp_path / "x"), "--train-override", "ppo.nope=1")
    assert code == 2 and "ppo.nope" in err


def test_help_lists_the_train_options():
    result = subprocess.run([str(DHAL), "train", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for option in ("--preset", "--iterations", "--num-envs", "--backend", "--device", "--seed", "--override",
                   "--train-override", "--run-dir", "--resume", "--save-interval"):
        assert option in result.stdout


def test_the_episode_log_reaches_tensorboard_when_the_env_checks_in_every_few_steps(tmp_path):
    """The GPU's way (sim.check_every > 1, queued resets), forced on the CPU: episodes of 10
    steps end between check-ins, and the log read back at check-ins still reaches TensorBoard."""
    run = tmp_path / "run"
    code, _, err = train("--iterations", "2", "--run-dir", str(run), "--override", "sim.check_every=3",
                         "--override", "sim.queue_resets=True", "--override", "sim.episode_length_s=0.2")
    assert code == 0, err
    scalars = read_scalars(run)
    assert "Episode/length_s" in scalars and "Episode_Termination/base_tilted" in scalars, sorted(scalars)
    assert all(0.0 < v <= 0.2 + 1e-6 for v in scalars["Episode/length_s"].values())
    assert all(0.0 <= v <= 1.0 for v in scalars["Episode_Termination/base_tilted"].values())  # a share
