"""The DHAL skateboard task: the step/reset loop over a backend-agnostic `Simulator`.

Per control step: actions -> joint targets (with a per-env delay of 0..decimation substeps) ->
physics -> one snapshot -> derived state -> contacts, clock, rewards by group, terminations ->
dynamics targets (before resets) -> observations -> partial reset of finished envs -> final
observations. All task logic is torch on the simulator's device; mujoco is never imported here.
"""

from __future__ import annotations

import numpy as np
import torch

from dhal.envs.api import StepResult
from dhal.envs.backends.base import SimulationDiverged, Simulator
from dhal.envs.compilation import compiles, maybe_compile
from dhal.envs.contract import Contract, go1_contract
from dhal.envs.packing import row_mask
from dhal.envs.robots import go1
from dhal.envs.skateboard import events, observations, resets, rewards, terminations, transition
from dhal.envs.skateboard.config import CUDA_CHECK_EVERY, TERRAIN_GEOMS, SkateboardConfig
from dhal.envs.skateboard.episode_log import EpisodeLog
from dhal.envs.skateboard.state import SceneIndices
from dhal.envs.skateboard.transition import Contacts, Memory

KEYFRAMES = ("push", "glide")


def task_contract(cfg: SkateboardConfig) -> Contract:
    """The observation/action contract of a task config: what export writes into the policy file."""
    obs_cfg = cfg.observations
    return go1_contract(
        history_length=obs_cfg.history_length, control_dt=cfg.control_dt, clock_period=cfg.clock.period_s,
        action_scale=cfg.action.scale, action_limit=cfg.action.limit, noise=obs_cfg.noise_std or None,
        phase_input_threshold=cfg.clock.phase_input_threshold,
    )


def _storage(groups: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The tensors that hold a set of observation groups: proprio is a view of the history."""
    return tuple(v for k, v in groups.items() if k != "proprio")


class SkateboardEnv:
    """N Go1-on-skateboard environments; satisfies `dhal.envs.api.BatchedEnv`."""

    def __init__(self, cfg: SkateboardConfig, sim: Simulator, seed: int = 0) -> None:
        if abs(sim.info.physics_dt - cfg.sim.physics_dt) > 1e-9:
            raise ValueError(f"sim.physics_dt {cfg.sim.physics_dt} differs from the model's timestep {sim.info.physics_dt}")
        sim.info.require("keyframe", KEYFRAMES)
        try:
            sim.info.require("geom", TERRAIN_GEOMS[cfg.terrain.kind])
        except KeyError as error:
            raise ValueError(f"terrain.kind is {cfg.terrain.kind!r} but the scene has no such terrain ({error}); "
                             "build it with dhal.assets.terrain.terrain_scene(scene, cfg.terrain)") from error
        if sim.info.nu != cfg.num_actions:
            raise ValueError(f"model has {sim.info.nu} actuators, the task expects {cfg.num_actions}")
        self.cfg, self.sim = cfg, sim
        self.device = sim.device
        self.num_envs = sim.num_envs
        self.num_actions = cfg.num_actions
        self.step_dt = cfg.control_dt
        self.max_episode_length = int(round(cfg.sim.episode_length_s / self.step_dt))
        self.reward_group_names = cfg.rewards.groups
        obs_cfg = cfg.observations
        self.contract: Contract = task_contract(cfg)
        self.action_low, self.action_high = -cfg.action.limit, cfg.action.limit
        self.idx = SceneIndices.resolve(sim.info, self.device)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.observation_sizes = {
            "history": self.contract.history_size,
            "proprio": self.contract.frame_size,
            "privileged": observations.privileged_size(
                obs_cfg.critic, self.contract.frame_size, obs_cfg.history_length, obs_cfg.contact_history_length),
        }
        self.reward_table = rewards.RewardTable(cfg.rewards, self.step_dt, self.device)
        # SimConfig.queue_resets: the same resets either way; only the random draws for them
        # differ (made every step when queued).
        queue = cfg.sim.queue_resets
        self.queue_resets = self.device.type == "cuda" if queue is None else queue
        every = cfg.sim.check_every
        self.check_every = (CUDA_CHECK_EVERY if self.device.type == "cuda" else 1) if every is None else every
        self._steps_to_check = 1
        self._bad_actions = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self.compiled = compiles(cfg.sim.compile, self.device)
        self._log = EpisodeLog(self.reward_table.term_names, (*terminations.TERMINATIONS, "diverged"),
                               cfg.sim.episode_length_s, self.step_dt, self.device, compiled=self.compiled)
        # the pure per-step functions, compiled as SimConfig.compile says (the episode log's too)
        self._transition = maybe_compile(transition.transition_from_snapshot, self.compiled, self.device)
        self._restart_memory = maybe_compile(resets.restart, self.compiled, self.device)
        self._observe_restarted = maybe_compile(resets.observe_restarted_snapshot, self.compiled, self.device)
        self._allocate_buffers()
        self.actuator_delay = self._delay_field()
        self.set_randomization_scale(events.curriculum_scale(cfg.randomization.curriculum, 0))
        self.reset()

    # ---- buffers ----------------------------------------------------------------------------------
    def _allocate_buffers(self) -> None:
        n, j, dev = self.num_envs, self.num_actions, self.device
        zeros = lambda *shape, dtype=torch.float32: torch.zeros(*shape, dtype=dtype, device=dev)  # noqa: E731
        self.episode_length_buf = zeros(n, dtype=torch.long)
        self.common_step_counter = 0
        self.commands = zeros(n, 3)
        self.gates = {"glide": zeros(n), "push": zeros(n)}
        self.actions, self.last_actions = zeros(n, j), zeros(n, j)
        # laid out as the state's joint_vel / joint_torque (views of a snapshot), which replace
        # them every step: compiled code then sees one layout throughout
        snapshot = self.sim.read()
        self.last_joint_vel = snapshot.qvel[:, self.idx.joint_qvel].zero_()
        self.last_torques = snapshot.actuator_force[:, self.idx.actuators].zero_()
        flags = lambda: zeros(n, 4, dtype=torch.bool)  # noqa: E731
        self.contacts = Contacts(raw_foot=flags(), foot=flags(), raw_wheel=flags(), wheel=flags(),
                                 history=zeros(n, self.cfg.observations.contact_history_length, 4))
        self.history = zeros(n, self.contract.history_length, self.contract.frame_size)
        self.episode_sums = zeros(n, len(self.reward_table.term_names))  # [N, T]
        # the sums and lengths of the episodes that ended at the last restart, for the log
        self._ended_sums, self._ended_steps = self.episode_sums.clone(), self.episode_length_buf.clone()
        self.ctrl = zeros(n, self.sim.info.nu)
        self.default_pose = torch.tensor(go1.DEFAULT_POSE, device=dev)
        self.free_feet = torch.tensor(rewards.FREE_FEET, device=dev)
        self.glide_pose = torch.tensor(go1.GLIDE_POSE, device=dev)
        self.start_targets = {"push": self.default_pose, "glide": self.glide_pose}
        self.keyframes = {k: self.sim.info.keyframes[k].to(dev) for k in KEYFRAMES}

    def _delay_field(self) -> torch.Tensor:
        """The per-env actuator delay field, after checking the model can hold the longest delay."""
        longest = max(self.cfg.action.delay_range_s)
        samples = self.sim.nominal_field("actuator_history")[self.idx.actuators, 0]
        capacity = (float(samples.min()) - 1.0) * self.cfg.sim.physics_dt
        if longest > capacity + 1e-9:
            raise ValueError(f"action.delay_range_s reaches {longest} s but the actuators keep "
                             f"{int(samples.min())} control samples ({capacity:.3f} s); raise nsample in the MJCF")
        return self.sim.model_field("actuator_delay")

    # ---- public API -------------------------------------------------------------------------------
    def set_randomization_scale(self, scale: float) -> None:
        """Use the configured randomisation and delay ranges at `scale` of their width (the
        curriculum's hook; 1 = as configured) and redraw every env's physical parameters."""
        self.randomization, self.delay_range_s = events.ranges_at(self.cfg, scale)
        self.randomization_scale = scale
        self.domain = events.sample_domain_params(self.num_envs, self.randomization, self.generator, self.device)
        events.apply_domain_params(self.sim, self.idx, self.domain)

    def observations(self) -> dict[str, torch.Tensor]:
        """This step's observations. The history is copied: the env reads its own in the next
        step (proprio is the copy's newest frame). The privileged group is the tensor this step
        built, which the env never writes again, so it is not copied (1,630 floats per env)."""
        return self._observation_groups(self.history.clone(), self._obs["privileged"])

    def reset(self, env_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Restart all envs, or those in `env_ids`. A divergence found since the last check-in
        is dealt with as a check-in would: before a full restart the backend clears those worlds;
        with `env_ids` it is left for the next step's check-in, which ends those episodes."""
        if env_ids is None:
            self._diverged_envs()  # every env restarts: only the backend's clean-up matters
            self._restart(torch.ones(self.num_envs, dtype=torch.bool, device=self.device), check=True)
        else:
            self._restart(self._mask(env_ids.to(self.device).long()))
        return self.observations()

    def step(self, actions: torch.Tensor) -> StepResult:
        check_in = self._steps_to_check <= 1
        actions = self._check_actions(actions, check_in)
        self._steps_to_check = self.check_every if check_in else self._steps_to_check - 1
        self.last_actions = self.actions
        self.actions = actions.clamp(self.action_low, self.action_high)
        self._simulate(self.contract.joint_targets(self.actions))
        snapshot = self.sim.read()
        # a new tensor, not in place: under inference mode it is an inference tensor from the
        # first rollout step, as the rest of the state, so a compiled step compiles once
        self.episode_length_buf = self.episode_length_buf + 1
        self.common_step_counter += 1
        curriculum = self.cfg.randomization.curriculum
        if events.curriculum_update_due(curriculum, self.common_step_counter):
            self.set_randomization_scale(events.curriculum_scale(curriculum, self.common_step_counter))

        draws = transition.Draws(torch.rand(self.num_envs, 2, generator=self.generator, device=self.device),
                                 self._frame_noise())
        before = self._memory()
        s, t = self._transition(snapshot, self.idx, self.reward_table, self.cfg, self.contract, before, draws,
                                domain=self.domain, default_pose=self.default_pose, glide_pose=self.glide_pose,
                                free_feet=self.free_feet, max_episode_length=self.max_episode_length,
                                broken=self.sim.unchecked_divergence())
        self.state = s
        breakdown, metrics, reasons = t.breakdown, t.metrics, dict(t.reasons)
        self._remember(t.memory_after(before, s))
        self._obs = self._observation_groups(self.history, t.observed.privileged)
        self._apply_pushes()  # after the observations: they are of the state before the push
        dynamics_targets = {"next_state": t.next_state, "next_contacts": t.next_contacts}
        terminated, truncated, done = t.terminated, t.truncated, t.done
        final_observations = None
        if self.queue_resets:
            final_observations = self._finish_episodes(done)
        # Everything above is queued without waiting for the physics; a check-in is the host
        # synchronisation (on a GPU), so the launches overlap the simulation. Envs that diverged
        # since the last one already earn and observe 0 (`transition`'s `broken`), unless this
        # step's queued restart gave them a fresh start and its observations.
        diverged = self._diverged_envs() if check_in else None
        reasons["diverged"] = self._mask(diverged)
        if diverged is not None:
            # (each tensor once: the metrics are views of their table, proprio of the history)
            outputs = (breakdown.groups, breakdown.term_values, t.metric_table, *dynamics_targets.values(),
                       *_storage(self._obs), *_storage(final_observations or {}))
            self._discard(reasons["diverged"], before.episode_sums, outputs)
            terminated, truncated = terminated | reasons["diverged"], truncated & ~reasons["diverged"]
            done = terminated | truncated
            if self.queue_resets:  # the backend has put them at the model defaults since
                self._restart(reasons["diverged"])
        if not self.queue_resets and bool(done.any()):  # asking costs nothing on the CPU
            final_observations = self._finish_episodes(done)
        extras: dict = {}
        if final_observations is not None:
            extras["final_observations"] = final_observations
            self._log.record(done, self._ended_sums, self._ended_steps, reasons)
        log = self._log.flush() if check_in else None
        if log is not None:
            extras["log"] = log
        extras.update(
            reward_groups=breakdown.groups, reward_group_names=self.reward_group_names,
            time_outs=truncated.clone(), dynamics_targets=dynamics_targets, metrics=metrics,
            terminations=reasons,  # fresh masks every step, kept by nothing here: no copies
        )
        return StepResult(self.observations(), breakdown.total, terminated, truncated, extras)

    def render(self, env_id: int = 0, width: int = 640, height: int = 480) -> np.ndarray:
        render = getattr(self.sim, "render", None)
        if render is None:
            raise NotImplementedError(f"backend {type(self.sim).__name__} cannot render")
        return render(env_id, width, height)

    def close(self) -> None:
        close = getattr(self.sim, "close", None)
        if close is not None:
            close()

    # ---- step pieces ------------------------------------------------------------------------------
    def _check_actions(self, actions: torch.Tensor, check_in: bool) -> torch.Tensor:
        """The actions as float32 on the device. Non-finite ones raise at a check-in, before
        anything is simulated; between check-ins they are replaced by zeros, remembered, and
        raised at the next check-in."""
        actions = torch.as_tensor(actions, device=self.device, dtype=torch.float32)
        if actions.shape != (self.num_envs, self.num_actions):
            raise ValueError(f"actions must have shape {(self.num_envs, self.num_actions)}, got {tuple(actions.shape)}")
        finite = torch.isfinite(actions).all(-1)
        if not check_in:
            self._bad_actions |= ~finite
            return torch.where(finite.unsqueeze(-1), actions, 0.0)
        bad = self._bad_actions | ~finite
        if bool(bad.any()):
            self._bad_actions.zero_()
            raise ValueError(f"non-finite actions for envs {bad.nonzero().squeeze(-1).tolist()}"
                             + ("" if self.check_every == 1 else f" (in the last {self.check_every} steps)"))
        return actions

    def _simulate(self, targets: torch.Tensor) -> None:
        """Queue one control step of physics with this step's per-env command delay; whether it
        diverged is asked later (`_diverged_envs`)."""
        delay = events.sample_delay_substeps(self.num_envs, self.delay_range_s, self.cfg.sim.physics_dt,
                                             self.cfg.sim.decimation, self.generator, self.device)
        # MuJoCo applies each actuator's control from `delay` seconds ago (its control history),
        # so a delay of k substeps holds the previous target for the first k substeps.
        self.actuator_delay[:, self.idx.actuators] = (delay * self.cfg.sim.physics_dt).unsqueeze(-1).to(
            self.actuator_delay.dtype)
        self.ctrl[:, self.idx.actuators] = targets
        self.sim.step(self.ctrl, self.cfg.sim.decimation, check=False)

    def _diverged_envs(self) -> torch.Tensor | None:
        """Ids of the envs whose physics failed in this step (the backend has reset them to the
        model defaults; they end their episodes here), or None."""
        try:
            self.sim.check()
        except SimulationDiverged as err:
            return torch.tensor(err.env_ids, dtype=torch.long, device=self.device)
        return None

    def _mask(self, ids: torch.Tensor | None) -> torch.Tensor:
        mask = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        if ids is not None:
            mask[ids] = True
        return mask

    def _discard(self, diverged: torch.Tensor, sums_before: torch.Tensor, outputs: tuple[torch.Tensor, ...]) -> None:
        """This step's values of the envs in the mask `diverged` came from a broken state (NaN on
        some backends): they earn nothing, keep their episode sums, and their rows of the step's
        `outputs` (rewards, observations, targets) are zeroed until a reset rebuilds them."""
        rows = diverged.unsqueeze(-1)
        self.episode_sums = torch.where(rows, sums_before, self.episode_sums)
        self._ended_sums = torch.where(rows, sums_before, self._ended_sums)
        for values in outputs:
            values.masked_fill_(row_mask(diverged, values), 0.0)

    def _memory(self) -> Memory:
        return Memory(
            episode_steps=self.episode_length_buf, commands=self.commands, actions=self.actions,
            last_actions=self.last_actions, last_joint_vel=self.last_joint_vel, last_torques=self.last_torques,
            contacts=self.contacts, gates=self.gates, episode_sums=self.episode_sums, history=self.history,
        )

    def _remember(self, memory: Memory) -> None:
        """The inverse of `_memory`."""
        self.episode_length_buf, self.commands, self.gates = memory.episode_steps, memory.commands, memory.gates
        self.actions, self.last_actions = memory.actions, memory.last_actions
        self.last_joint_vel, self.last_torques = memory.last_joint_vel, memory.last_torques
        self.contacts, self.episode_sums, self.history = memory.contacts, memory.episode_sums, memory.history

    def _apply_pushes(self) -> None:
        r = self.randomization
        interval = int(round(r.push_interval_s / self.step_dt))
        if r.enabled and r.push_velocity > 0 and self.common_step_counter % interval == 0:
            snapshot = self.sim.read()
            events.push_base(self.sim, self.idx, snapshot.qvel, torch.arange(self.num_envs, device=self.device),
                             r.push_velocity, self.generator)

    # ---- resets and observations ------------------------------------------------------------------
    def _finish_episodes(self, done: torch.Tensor) -> dict[str, torch.Tensor]:
        """Record the ending episodes' sums and lengths for the log, restart the envs in `done`
        and return the observations from before the restart (for time-out bootstrapping)."""
        # no copies: the restart builds new tensors and never writes these
        final = dict(self._obs)
        self._ended_sums, self._ended_steps = self.episode_sums, self.episode_length_buf
        self._restart(done)
        return final

    def _restart(self, mask: torch.Tensor, check: bool = False) -> None:
        """Reset the envs in `mask` and rebuild their observations. Masked throughout, so on a
        GPU nothing waits for the device; unchecked resets are checked with the next physics."""
        draws = resets.ResetDraws.draw(self.num_envs, self.num_actions, self.generator, self.device)
        memory, pose = self._restart_memory(mask, self._memory(), draws, self.cfg, self.idx, self.keyframes,
                                            self.start_targets, self.sim.info.nv, self.sim.info.nu)
        self.sim.set_state(mask, pose.qpos, pose.qvel, pose.ctrl, check=check, refresh=self.cfg.sim.reset_refresh)
        self._remember(memory)
        self.state, observed = self._observe_restarted(
            self.sim.read(), self.idx, self.contract, self.cfg, self._memory(), self._frame_noise(), self.domain,
            self.default_pose, mask)
        # the envs in `mask` fill their history with their new frame; the others keep theirs
        self.history = observed.history
        self._obs = self._observation_groups(self.history, observed.privileged)

    def _frame_noise(self) -> torch.Tensor | None:
        """A standard-normal draw for the next frame's observation noise, or None without noise."""
        if not self.cfg.observations.noise:
            return None
        return torch.randn((self.num_envs, self.contract.frame_size), generator=self.generator, device=self.device)

    @staticmethod
    def _observation_groups(history: torch.Tensor, privileged: torch.Tensor) -> dict[str, torch.Tensor]:
        # The proprio group is the history's newest frame, so both groups always agree.
        return {"history": history.flatten(1), "proprio": history[:, -1], "privileged": privileged}
