"""Ns3VectorEnv: several scenario processes stepped concurrently from one Python process."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from bridge.ns3.affinity import unpinned_cpus
from bridge.ns3.connection import EnvState, OpenGymConnection, SimInit, wait_all
from bridge.ns3.env import parse_info

__all__ = ["Ns3VectorEnv"]

_SEED_LIMIT = 2**31 - 1


class Ns3VectorEnv(VectorEnv):
    """``num_envs`` copies of one scenario, each its own process and socket, in lock step.

    ``step`` validates every action first (ValueError naming the env index; nothing is sent),
    sends all of them, then waits for all replies with one ``zmq.Poller`` (no threads), so the
    scenarios compute in parallel. Gymnasium 1.x next-step autoreset: after an env ends, its
    next ``step`` ignores the action, starts a fresh process and returns the first observation
    with reward 0 and both flags false.

    ``scenario_args`` is one argument list for all envs or a list of ``num_envs`` lists.
    ``reset(seed=s)`` gives env i ``--simSeed=s+i``; later restarts draw seeds from
    ``np_random``. Info dicts are batched with Gymnasium's ``_key`` masks.

    ``endpoint`` is ``"tcp"`` (ns3-gym's ZeroMQ wire, default), ``"ipc"`` or ``"unix"`` (the fast
    transport of our own scenarios); each env gets its own socket. The scenarios run in
    parallel, so they are never co-located on one CPU with Python (unlike a single
    Ns3GymEnv on ``unix``): ``cpu_placement="free"`` (default) lets them use every CPU this
    process may use, even if the calling thread was pinned by a co-located Ns3GymEnv (the
    children would otherwise inherit that pin and run one after the other);
    ``"spread"`` pins env i to CPU ``i mod n``.
    """

    def __init__(
        self,
        binary: str | os.PathLike[str],
        num_envs: int,
        scenario_args: Sequence[str] | Sequence[Sequence[str]] = (),
        *,
        endpoint: str = "tcp",
        connect_timeout_s: float = 30.0,
        step_timeout_s: float = 120.0,
        poll_interval_s: float = 0.1,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        cpu_placement: str = "free",
        initial_seed: int = 1,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs}, expected >= 1")
        if cpu_placement not in ("free", "spread"):
            raise ValueError(f"cpu_placement={cpu_placement!r}, expected 'free' or 'spread'")
        self.cpu_placement = cpu_placement
        self.num_envs = int(num_envs)
        self.binary = os.fspath(binary)
        args = list(scenario_args)
        if args and not isinstance(args[0], str):
            if len(args) != self.num_envs:
                raise ValueError(
                    f"scenario_args has {len(args)} lists, expected one per env ({num_envs})"
                )
            self._args = [list(a) for a in args]
        else:
            self._args = [[str(a) for a in args] for _ in range(self.num_envs)]
        self._launch_options: dict[str, Any] = {
            "endpoint": endpoint,
            "connect_timeout_s": connect_timeout_s,
            "step_timeout_s": step_timeout_s,
            "poll_interval_s": poll_interval_s,
            "spin_s": 0.0,  # many scenarios share the cores: never busy-poll here
            "cwd": cwd,
            "env": env,
        }
        self.poll_interval_s = poll_interval_s
        self.metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}
        self._conns: list[OpenGymConnection | None] = [None] * self.num_envs
        self._seeds: list[int | None] = [None] * self.num_envs
        self._fresh = np.zeros(self.num_envs, dtype=bool)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._needs_reset = True
        self.closed = False
        try:
            inits = self._launch(
                list(range(self.num_envs)),
                [initial_seed + i for i in range(self.num_envs)],
                until=SimInit,
            )
        except BaseException:
            self._close_all()
            raise
        first = inits[0]
        for i, init in enumerate(inits):
            if (
                init.observation_space != first.observation_space
                or init.action_space != first.action_space
            ):
                self._close_all()
                raise RuntimeError(
                    f"env {i} announced spaces {init.observation_space} / {init.action_space}, "
                    f"expected {first.observation_space} / {first.action_space} as env 0"
                )
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._obs_buffer = create_empty_array(
            self.single_observation_space, n=self.num_envs, fn=np.zeros
        )

    # ------------------------------------------------------------------------------ processes
    def _launch(self, indices: list[int], seeds: list[int], until: type) -> list[Any]:
        """(Re)start the given envs concurrently; return their SimInit or first EnvState."""
        for i in indices:
            self._close_env(i)
        new = [self._open(i, seed) for i, seed in zip(indices, seeds, strict=True)]
        results = wait_all(new, until=until, poll_interval_s=self.poll_interval_s)
        for i in indices:
            self._fresh[i] = until is SimInit
        return [results[conn] for conn in new]

    def _open(self, i: int, seed: int) -> OpenGymConnection:
        """Start env i's scenario process with ``--simSeed=seed`` and place it on its CPUs."""
        conn = OpenGymConnection.launch(
            self.binary, [*self._args[i], f"--simSeed={seed}"], **self._launch_options
        )
        self._conns[i] = conn
        self._seeds[i] = seed
        cpus = sorted(unpinned_cpus())
        allowed = {cpus[i % len(cpus)]} if self.cpu_placement == "spread" else set(cpus)
        assert conn.process is not None
        try:
            if os.sched_getaffinity(conn.process.pid) != allowed:
                os.sched_setaffinity(conn.process.pid, allowed)
        except ProcessLookupError:
            pass  # already dead: the next receive reports it
        return conn

    def _close_env(self, i: int) -> None:
        conn, self._conns[i] = self._conns[i], None
        self._fresh[i] = False
        if conn is not None:
            conn.close()

    def _close_all(self) -> None:
        for i in range(self.num_envs):
            self._close_env(i)

    def _draw_seeds(self, n: int) -> list[int]:
        return [int(s) for s in self.np_random.integers(1, _SEED_LIMIT, size=n)]

    # ------------------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start an episode in every env (fresh processes); return batched (obs, infos)."""
        if self.closed:
            raise RuntimeError("reset() on a closed Ns3VectorEnv")
        if isinstance(seed, Sequence):
            if len(seed) != self.num_envs:
                raise ValueError(f"seed list has {len(seed)} entries, expected {self.num_envs}")
            seeds: list[int | None] = [None if s is None else int(s) for s in seed]
            super().reset(seed=None)
        else:
            super().reset(seed=seed)
            seeds = (
                [None] * self.num_envs
                if seed is None
                else [(int(seed) + i) % _SEED_LIMIT for i in range(self.num_envs)]
            )
        sim_seeds: list[int] = []
        for i, s in enumerate(seeds):
            if s is not None:
                sim_seeds.append(s)
            elif self._fresh[i] and self._seeds[i] is not None:
                sim_seeds.append(int(self._seeds[i]))  # type: ignore[arg-type]
            else:
                sim_seeds.append(self._draw_seeds(1)[0])
        relaunch = [
            i
            for i in range(self.num_envs)
            if not (self._fresh[i] and self._conns[i] is not None) or self._seeds[i] != sim_seeds[i]
        ]
        try:
            states: dict[int, EnvState] = {}
            launched = self._launch(relaunch, [sim_seeds[i] for i in relaunch], until=EnvState)
            states.update(zip(relaunch, launched, strict=True))
            reused = [i for i in range(self.num_envs) if i not in states]
            if reused:
                conns = [self._conns[i] for i in reused]
                got = wait_all(conns, poll_interval_s=self.poll_interval_s)  # type: ignore[arg-type]
                for i, conn in zip(reused, conns, strict=True):
                    states[i] = got[conn]
        except BaseException:
            self._close_all()
            self._needs_reset = True
            raise
        self._fresh[:] = False
        self._autoreset[:] = False
        infos: dict[str, Any] = {}
        for i in range(self.num_envs):
            state = states[i]
            if state.game_over:
                self._finish(i)
            infos = self._add_info(infos, parse_info(state.info), i)
        self._needs_reset = False
        obs = concatenate(
            self.single_observation_space,
            [states[i].obs for i in range(self.num_envs)],
            self._obs_buffer,
        )
        return _copy(obs), infos

    def _finish(self, i: int) -> None:
        """Answer env i's game-over state with stopSimReq and schedule its autoreset."""
        conn = self._conns[i]
        if conn is not None and conn.expecting is not None:
            conn.send_stop()
        self._autoreset[i] = True

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env; envs that ended on the previous step are reset instead."""
        if self.closed or self._needs_reset:
            raise RuntimeError("step() before reset() (or after close()): call reset()")
        per_env = list(iterate(self.action_space, actions))
        if len(per_env) != self.num_envs:
            raise ValueError(f"actions hold {len(per_env)} entries, expected {self.num_envs}")
        resetting = [i for i in range(self.num_envs) if self._autoreset[i]]
        stepping = [i for i in range(self.num_envs) if not self._autoreset[i]]
        checked: dict[int, Any] = {}
        for i in stepping:
            conn = self._conns[i]
            assert conn is not None
            try:
                checked[i] = conn.check_action(per_env[i])
            except ValueError as exc:
                raise ValueError(f"env {i}: {exc}") from None
        states: dict[int, EnvState] = {}
        try:
            for i in stepping:
                self._conns[i].send_action(checked[i], validate=False)  # type: ignore[union-attr]
            # restart the finished envs while the others compute
            for i in resetting:
                self._close_env(i)
            for i, seed in zip(resetting, self._draw_seeds(len(resetting)), strict=True):
                self._open(i, seed)
            conns = {i: self._conns[i] for i in range(self.num_envs)}
            got = wait_all(conns.values(), poll_interval_s=self.poll_interval_s)  # type: ignore[arg-type]
            for i, conn in conns.items():
                states[i] = got[conn]
        except BaseException:
            self._close_all()
            self._needs_reset = True
            raise
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {}
        self._autoreset[:] = False
        for i in range(self.num_envs):
            state = states[i]
            if i in stepping:
                rewards[i] = state.reward
                terminated[i] = state.terminated
                truncated[i] = state.truncated
            if state.game_over:
                self._finish(i)
            infos = self._add_info(infos, parse_info(state.info), i)
        obs = concatenate(
            self.single_observation_space,
            [states[i].obs for i in range(self.num_envs)],
            self._obs_buffer,
        )
        return _copy(obs), rewards, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        """Stop every scenario process and close the sockets."""
        self._close_all()
        self._needs_reset = True

    @property
    def sim_seeds(self) -> list[int | None]:
        """``--simSeed`` of each env's current process."""
        return list(self._seeds)

    @property
    def pids(self) -> list[int | None]:
        """Process ids of the current scenario processes."""
        return [None if c is None or c.process is None else c.process.pid for c in self._conns]

    def __del__(self) -> None:
        try:
            self._close_all()
        except Exception:
            pass


def _copy(obs: Any) -> Any:
    """Detach the batched observation from the reused buffer."""
    if isinstance(obs, np.ndarray):
        return obs.copy()
    if isinstance(obs, tuple):
        return tuple(_copy(o) for o in obs)
    if isinstance(obs, dict):
        return {k: _copy(v) for k, v in obs.items()}
    return obs
