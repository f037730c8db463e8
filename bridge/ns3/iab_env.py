"""The IAB environment on the ns-3 backend: iab-scenario processes behind the env contract.

:class:`Ns3IABVectorEnv` implements :class:`bridge.contract.vector_env.IABVectorEnvBase` (the
same spaces, deployments, episode seeds, autoreset and info keys as the fallback's), so the
same seeds give the same network, traffic, incumbents and mobility on both backends; it does
not support frame replay. Select the backend with :func:`bridge.contract.make_env` /
:func:`bridge.contract.make_vector_env`.

Each environment owns one ``iab-scenario`` process per deployment (launched directly, no
shell, through :class:`bridge.ns3.connection.OpenGymConnection`); the deployment travels as a
JSON file in the run directory (``--instance``, see :mod:`bridge.ns3.rundir`), the episode seed
as ``--simSeed``. When an episode ends
and the next one keeps the deployment, the process is not restarted: the reply to its
game-over state asks for a new episode (the EnvActMsg field ``continueEpisode``, see
``ns3_scenarios/iab/model/iab-gym-env.h``), which keeps the generated 3GPP channels (several
seconds of set-up per deployment).

Those channels, ns-3's random streams and the simulation clock carry over from episode to
episode, so an ns-3 episode depends on the episodes run before it in its process. Episode k of
an environment (reset seed s) is therefore defined as the (k+1)-th episode of one process
started at episode 0 of s. A process that already ran episode k-1 of s continues; otherwise a
fresh one is started at episode 0 and fast-forwarded through episodes 0..k-1 with idle actions
(the channels evolve with the geometry alone, whatever the actions). Whoever asks for episode
k, and in whichever process, gets the same episode: reruns of a rollout job are exact.

The wire observation is a Dict ``{"obs", "action_mask"}``;
the info string is JSON (frame statistics; episode accumulators at the end).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bridge.config import ScenarioConfig
from bridge.contract.single_env import IABSingleEnv
from bridge.contract.vector_env import (
    REWARD_BS,
    STEP_BS_COUNTERS,
    STEP_COUNTERS,
    BackendStep,
    IABVectorEnvBase,
)
from bridge.instance import ScenarioInstance
from bridge.metrics import episode_metrics
from bridge.ns3.connection import EnvState, OpenGymConnection, SimulatorError, wait_all
from bridge.ns3.rundir import write_instance_file
from bridge.tasks import TaskDistribution

__all__ = ["Ns3IABEnv", "Ns3IABVectorEnv"]

SCENARIO_NAME = "iab-scenario"


def _default_binary() -> Path:
    from bridge.ns3.build import scenario_binary

    return scenario_binary(SCENARIO_NAME)


class _Session:
    """One iab-scenario process simulating one deployment, episode after episode."""

    def __init__(self, binary: Path, instance: ScenarioInstance, episode_seed: int,
                 launch_options: dict[str, Any], scenario_args: Sequence[str]) -> None:
        self.instance = instance
        self.instance_dict = instance.to_dict()
        self.instance_path = write_instance_file(self.instance_dict)
        path = self.instance_path
        self.episode_seed = int(episode_seed)
        self.at_episode_end = False
        # the lineage: reset seed of the process's first episode and the running episode
        self.base_seed: int | None = None
        self.episode = 0
        self.startup: dict[str, Any] = {}
        self.last_info: dict[str, Any] = {}
        try:
            self.conn = OpenGymConnection.launch(
                binary,
                [f"--instance={path}", f"--simSeed={self.episode_seed}", *scenario_args],
                **launch_options,
            )
        except BaseException:
            self.instance_path.unlink(missing_ok=True)
            raise

    def send_action(self, action: np.ndarray) -> None:
        self.conn.send_action(action.astype(np.int32, copy=False), validate=False)

    def send_continue(self, episode_seed: int) -> None:
        """Answer the game-over state: start episode ``episode_seed`` in this process."""
        self.episode_seed = int(episode_seed)
        self.conn.send_continue(self.episode_seed)
        self.at_episode_end = False

    def close(self) -> None:
        try:
            if self.conn._owe_reply:  # noqa: SLF001 - a pending state: tell it to stop
                self.conn.send_stop()
        except Exception:
            pass
        finally:
            self.conn.close()
            self.instance_path.unlink(missing_ok=True)


class Ns3IABVectorEnv(IABVectorEnvBase):
    """N IAB networks, each simulated by its own ns-3 process, stepped concurrently.

    The contract's constructor arguments, deployment rules (``task_split``, :meth:`set_tasks`,
    ``new_deployment_each_episode``), seeding, next-step autoreset and info keys. Extra
    keyword arguments: ``binary`` (default:
    the built ``iab-scenario``), ``endpoint`` (``"tcp"`` or ``"ipc"``), ``connect_timeout_s``,
    ``step_timeout_s`` and ``scenario_args`` (e.g. ns-3 attribute flags such as
    ``--ns3::IabLinkGainModel::SubbandsPerChannel=2``).

    ``infos`` also carries ``startup`` (per env, after a process start: beam convention and
    array-gain self-test) only on the steps where a process was started.
    """

    backend = "ns3"

    def __init__(self, num_envs: int = 1, config: ScenarioConfig | dict | str | None = None,
                 task_split: str | None = None, tasks: TaskDistribution | None = None,
                 new_deployment_each_episode: bool = False, *,
                 binary: str | os.PathLike[str] | None = None, endpoint: str = "tcp",
                 connect_timeout_s: float = 60.0, step_timeout_s: float = 300.0,
                 scenario_args: Sequence[str] = ()) -> None:
        super().__init__(num_envs, config, task_split, tasks, new_deployment_each_episode)
        self.binary = Path(binary) if binary is not None else _default_binary()
        self._launch_options: dict[str, Any] = {
            "endpoint": endpoint,
            "connect_timeout_s": connect_timeout_s,
            "step_timeout_s": step_timeout_s,
            "spin_s": 0.0002 if self.num_envs == 1 else 0.0,
        }
        self.scenario_args = list(scenario_args)
        self._sessions: list[_Session | None] = [None] * self.num_envs
        self._forward = [0] * self.num_envs  # episodes a fresh process must still skip
        # why the processes were stopped by a failure (step() refuses until reset())
        self._failure: str | None = None
        self._obs = np.zeros((self.num_envs, self.layout.size), dtype=np.float32)
        self._mask = np.zeros((self.num_envs, self.layout.action_size, self.layout.n_choices),
                              dtype=bool)
        self.closed = False


    @property
    def pids(self) -> list[int | None]:
        """Process ids of the scenario processes (None where none runs)."""
        out: list[int | None] = []
        for s in self._sessions:
            proc = s.conn.process if s is not None else None
            out.append(proc.pid if proc is not None else None)
        return out

    # -------------------------------------------------------------- processes
    def _begin_episode(self, i: int, instance: ScenarioInstance) -> None:
        """Make env i start its current episode k of ``instance``: continue the process if
        it just ran episode k-1 of the same lineage, else start one at episode 0 (to be
        fast-forwarded to k by :meth:`_fast_forward`). The initial state is then awaited by
        :meth:`_collect`."""
        base, episode = self._deploy.base_seed(i), self._deploy.episode(i)
        session = self._sessions[i]
        alive = session is not None and session.conn.process is not None \
            and session.conn.process.is_alive()
        if (session is not None and alive and session.at_episode_end
                and session.instance_dict == instance.to_dict()
                and session.base_seed == base and session.episode == episode - 1):
            session.send_continue(self._deploy.episode_seed(i))
            session.episode = episode
            self._forward[i] = 0
            return
        if session is not None:
            session.close()
        # a new deployment every episode has no lineage: start right at the episode
        first = episode if self._deploy.new_each_episode else 0
        self._sessions[i] = _Session(self.binary, instance,
                                     self._deploy.episode_seed(i, first),
                                     self._launch_options, self.scenario_args)
        self._sessions[i].base_seed = base
        self._sessions[i].episode = first
        self._forward[i] = episode - first

    def _fast_forward(self, states: dict[int, EnvState]) -> None:
        """Play the earlier episodes of every env whose fresh process started before its
        episode, with idle actions, concurrently; ``states`` is updated in place to each
        env's first state of its own episode."""
        idle = np.zeros(self.layout.action_size, dtype=np.int64)
        while True:
            pending = [i for i in states if self._forward[i] > 0]
            if not pending:
                return
            for i in pending:
                session = self._sessions[i]
                assert session is not None
                if states[i].game_over:
                    session.episode += 1
                    self._forward[i] -= 1
                    session.send_continue(self._deploy.episode_seed(i, session.episode))
                else:
                    session.send_action(idle)
            states.update(self._collect(pending))

    def _collect(self, indices: Sequence[int]) -> dict[int, EnvState]:
        sessions = {i: self._sessions[i] for i in indices}
        conns = {s.conn: i for i, s in sessions.items() if s is not None}
        try:
            states = wait_all(list(conns))
        except BaseException as exc:
            self._failure = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            self._close_sessions()
            raise
        return {conns[c]: st for c, st in states.items()}

    def _close_sessions(self) -> None:
        for i, s in enumerate(self._sessions):
            if s is not None:
                s.close()
            self._sessions[i] = None

    def _absorb(self, i: int, state: EnvState) -> dict[str, Any]:
        """Store env i's observation and mask; return its decoded info JSON."""
        self._obs[i] = state.obs["obs"]
        self._mask[i] = state.obs["action_mask"] != 0
        info = json.loads(state.info) if state.info else {}
        session = self._sessions[i]
        assert session is not None
        session.at_episode_end = bool(state.game_over)
        session.last_info = info
        if "startup" in info:
            session.startup = info["startup"]
        return info

    # -------------------------------------------------------------- contract hooks
    def _reset_backend(self, deployments_changed: bool
                       ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        if self.closed:
            raise RuntimeError("reset() on a closed Ns3IABVectorEnv")
        self._failure = None
        if deployments_changed:
            self._instances = self._deploy.instances()
        for i in range(self.num_envs):
            session = self._sessions[i]
            if session is not None and not session.at_episode_end:
                session.close()  # mid-episode: only a new process can start over
                self._sessions[i] = None
            self._begin_episode(i, self._instances[i])
        states = self._collect(range(self.num_envs))
        startup = [self._absorb(i, states[i]).get("startup") for i in range(self.num_envs)]
        forwarded = {i: states[i] for i in range(self.num_envs) if self._forward[i] > 0}
        self._fast_forward(forwarded)
        for i, state in forwarded.items():
            states[i] = state
            self._absorb(i, state)
        extra: dict[str, Any] = {}
        if any(s is not None for s in startup):
            extra["startup"] = np.array(startup, dtype=object)
        return self._obs.copy(), self._mask.copy(), extra

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray, dict[str, Any]]:
        if self._failure is not None:
            raise SimulatorError(
                f"the ns-3 simulator stopped with {self._failure}; its processes are gone: "
                "call reset() before step()")
        return super().step(actions)

    def _step_backend(self, actions: np.ndarray, resetting: np.ndarray) -> BackendStep:
        N, B, K = self.num_envs, self.layout.n_bs, self.layout.n_channels
        for i in np.flatnonzero(resetting):
            if self._deploy.new_each_episode:
                self._instances[i] = self._deploy.instance(int(i))
            self._begin_episode(int(i), self._instances[i])
        for i in np.flatnonzero(~resetting):
            session = self._sessions[i]
            assert session is not None
            session.send_action(actions[i])
        states = self._collect(range(N))
        # an autoreset continues its process; only one that had died must fast-forward
        forwarded = {i: states[i] for i in range(N) if self._forward[i] > 0}
        first_startup = {i: self._absorb(i, st).get("startup") for i, st in forwarded.items()}
        self._fast_forward(forwarded)
        states.update(forwarded)

        reward = np.zeros(N, dtype=np.float64)
        truncated = np.zeros(N, dtype=bool)
        infos: dict[str, Any] = {
            "sinr_db": np.full((N, B, K), -np.inf),
            "allocation": np.full((N, B, K), -1, dtype=np.int64),
        }
        for key in STEP_COUNTERS:
            infos[key] = np.zeros(N, dtype=np.int64)
        for key in STEP_BS_COUNTERS:
            infos[key] = np.zeros((N, B), dtype=np.int64)
        infos[REWARD_BS] = np.zeros((N, B))
        acc_rows: list[dict[str, Any] | None] = [None] * N
        startup: list[Any] = [None] * N
        for i in range(N):
            info = self._absorb(i, states[i])
            startup[i] = first_startup.get(i) or info.get("startup")
            if resetting[i]:
                continue
            reward[i] = float(info.get("reward", states[i].reward))
            truncated[i] = states[i].game_over
            sinr = np.array([-np.inf if v is None else v for v in info["sinr_db"]])
            infos["sinr_db"][i] = sinr.reshape(B, K)
            infos["allocation"][i] = np.asarray(info["allocation"]).reshape(B, K)
            for key in STEP_COUNTERS:
                infos[key][i] = info[key]
            for key in (*STEP_BS_COUNTERS, REWARD_BS):
                infos[key][i] = info[key]
            if states[i].game_over:
                acc_rows[i] = info["episode"]
        if any(s is not None for s in startup):
            infos["startup"] = np.array(startup, dtype=object)
        metrics = self._episode_metrics(acc_rows) if truncated.any() else None
        return BackendStep(self._obs.copy(), self._mask.copy(), reward, truncated, infos,
                           metrics)

    def _episode_metrics(self, rows: list[dict[str, Any] | None]) -> dict[str, np.ndarray]:
        """bridge.metrics.episode_metrics over the scenarios' accumulators (zeros elsewhere)."""
        N, U = self.num_envs, self.config.topology.max_ues
        acc = {k: np.zeros(N, dtype=np.int64) for k in (
            "dropped", "arrived", "scheduled", "sinr_violations", "incumbent_collisions",
            "half_duplex", "invalid")}
        acc["delivered_ue"] = np.zeros((N, U), dtype=np.int64)
        frames = np.zeros(N, dtype=np.int64)
        ue_valid = np.zeros((N, U), dtype=bool)
        returns = np.zeros(N)
        for i, row in enumerate(rows):
            n_ue = self._instances[i].n_ue
            ue_valid[i, :n_ue] = True
            if row is None:
                continue
            a = row["accumulators"]
            acc["delivered_ue"][i, :n_ue] = a["delivered_ue"]
            for key in ("dropped", "arrived", "scheduled", "sinr_violations",
                        "incumbent_collisions", "half_duplex", "invalid"):
                acc[key][i] = a[key]
            frames[i] = a["frames"]
            returns[i] = row["episode_return"]
        out = episode_metrics(acc, frames, self.config.dynamics.frame_s, ue_valid)
        out["episode_return"] = returns
        return out

    def _close_backend(self) -> None:
        self._close_sessions()

    def __del__(self) -> None:
        try:
            self._close_sessions()
        except Exception:
            pass


class Ns3IABEnv(IABSingleEnv):
    """One IAB network on the ns-3 backend (``gymnasium.Env``): the vector env with N = 1.

    The contract's single-env API; extra keyword arguments as :class:`Ns3IABVectorEnv`.
    """

    vector_class = Ns3IABVectorEnv

    @property
    def startup(self) -> dict[str, Any]:
        """Start-up report of the current process (beam convention, self-test gains)."""
        session = self._vec._sessions[0]  # noqa: SLF001
        return dict(session.startup) if session is not None else {}
