"""Ns3GymEnv: a Gymnasium 1.x environment over any OpenGym-compatible ns-3 scenario binary."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym

from bridge.ns3.affinity import pin_thread, release_thread
from bridge.ns3.connection import EnvState, OpenGymConnection, SimInit
from bridge.ns3.transport import is_unix_endpoint

__all__ = ["Ns3GymEnv", "parse_info"]

_SEED_LIMIT = 2**31 - 1  # --simSeed is the ns-3 run number; keep it a positive int32


def parse_info(info: str) -> dict[str, Any]:
    """Decode a scenario's info string: a JSON object -> dict, anything else -> {"info": str}."""
    if info:
        try:
            decoded = json.loads(info)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            return decoded
    return {"info": info}


class Ns3GymEnv(gym.Env):
    """Gymnasium environment driving one scenario process over the ns3-gym protocol.

    The spaces come from the scenario's handshake, so the constructor starts the scenario
    once (``binary *scenario_args --openGymPort=<port> --simSeed=<n>``). As in ns3-gym, every
    ``reset`` starts a fresh process (the one started by the constructor is used for the first
    reset if the seed matches). ``reset(seed=s)`` passes ``--simSeed=s``; later resets without
    a seed draw the next ``--simSeed`` from ``np_random``, so a seeded sequence of episodes is
    reproducible.

    ``step`` validates the action against the action space before anything is sent (ValueError
    naming the problem). A game-over state ends the episode: ``terminated`` for reason GameOver,
    ``truncated`` for reason SimulationEnd (the simulated time ran out); the scenario is told to
    stop (stopSimReq) at once. ``info`` holds the scenario's info string decoded by
    :func:`parse_info`.

    Transport and CPUs: ``endpoint="tcp"`` (default) speaks ns3-gym's ZeroMQ wire and works with
    any ns3-gym scenario; ``endpoint="unix"`` is the fast length-prefixed Unix socket transport
    of our own scenarios (see :mod:`bridge.ns3.transport`). ``colocate`` (default: on for
    ``unix``, off otherwise) pins the calling thread and the scenario process to the same CPU:
    the protocol is lock-step, so only one of them runs at a time, and a wake-up on the same
    CPU is several times cheaper than one on another CPU. The pin lasts until :meth:`close`
    (threads started meanwhile from this thread inherit it; see :mod:`bridge.ns3.affinity`).
    Pass ``colocate=False`` to keep the scheduler free, or ``cpu_affinity`` to place only the
    scenario process. ``spin_s`` (busy-poll before sleeping on the socket) defaults to 0.2 ms,
    or 0 when co-located (spinning on the shared CPU would only delay the scenario).

    Subclasses (e.g. the IAB env) can override :meth:`_decode_obs` and :meth:`_make_info` to
    reshape observations or add metrics without touching the protocol.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        binary: str | os.PathLike[str],
        scenario_args: Sequence[str] = (),
        *,
        endpoint: str = "tcp",
        connect_timeout_s: float = 30.0,
        step_timeout_s: float = 120.0,
        spin_s: float | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        cpu_affinity: Sequence[int] | None = None,
        colocate: bool | None = None,
        initial_seed: int = 1,
    ) -> None:
        super().__init__()
        self._pinned_thread: int | None = None
        self._conn: OpenGymConnection | None = None
        if colocate is None:
            colocate = is_unix_endpoint(endpoint) and cpu_affinity is None
        if colocate and cpu_affinity is not None:
            raise ValueError(
                f"colocate=True and cpu_affinity={list(cpu_affinity)}: co-location chooses the "
                "CPU itself, pass one or the other"
            )
        self.colocate = bool(colocate)
        if spin_s is None:
            spin_s = 0.0 if self.colocate else 0.0002
        self.binary = os.fspath(binary)
        self.scenario_args = list(scenario_args)
        for arg in self.scenario_args:
            if arg.startswith(("--openGymPort", "--openGymEndpoint", "--simSeed")):
                raise ValueError(
                    f"scenario_args contains {arg!r}: the env sets --openGymPort, "
                    "--openGymEndpoint and --simSeed itself (use reset(seed=...))"
                )
        self._launch_options: dict[str, Any] = {
            "endpoint": endpoint,
            "connect_timeout_s": connect_timeout_s,
            "step_timeout_s": step_timeout_s,
            "spin_s": spin_s,
            "cwd": cwd,
            "env": env,
        }
        self.cpu_affinity = None if cpu_affinity is None else set(cpu_affinity)
        self._conn_seed: int | None = None
        self._fresh = False  # the current process has not produced its first state yet
        self._needs_reset = True
        self._closed = False
        self._spaces_known = False
        try:
            init = self._start(initial_seed)
        except BaseException:
            self._unpin()
            raise
        self.observation_space = init.observation_space
        self.action_space = init.action_space
        self._spaces_known = True

    # ------------------------------------------------------------------------------ process
    @property
    def connection(self) -> OpenGymConnection | None:
        """The live connection (None after close)."""
        return self._conn

    @property
    def sim_seed(self) -> int | None:
        """``--simSeed`` of the running scenario process."""
        return self._conn_seed

    def _start(self, sim_seed: int) -> SimInit:
        self._stop()
        if self.colocate and self._pinned_thread is None:
            # pin before the launch: the child inherits the mask from its first instruction
            self._pinned_thread, cpu = pin_thread()
            self.cpu_affinity = {cpu}
        conn = OpenGymConnection.launch(
            self.binary, [*self.scenario_args, f"--simSeed={sim_seed}"], **self._launch_options
        )
        try:
            if self.cpu_affinity is not None:
                assert conn.process is not None
                os.sched_setaffinity(conn.process.pid, self.cpu_affinity)
            init = conn.handshake()
        except BaseException:
            conn.close()
            raise
        if self._spaces_known:
            if init.observation_space != self.observation_space:
                conn.close()
                raise RuntimeError(
                    f"scenario restarted with observation space {init.observation_space}, "
                    f"expected {self.observation_space} as at construction"
                )
            if init.action_space != self.action_space:
                conn.close()
                raise RuntimeError(
                    f"scenario restarted with action space {init.action_space}, "
                    f"expected {self.action_space} as at construction"
                )
        self._conn = conn
        self._conn_seed = sim_seed
        self._fresh = True
        return init

    def _stop(self) -> None:
        conn, self._conn = self._conn, None
        self._fresh = False
        if conn is not None:
            conn.close()

    # ------------------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start an episode in a fresh scenario process; return (obs, info)."""
        if self._closed:
            raise RuntimeError("reset() on a closed Ns3GymEnv")
        super().reset(seed=seed)
        if seed is not None:
            sim_seed = int(seed) % _SEED_LIMIT
        elif self._fresh and self._conn is not None:
            sim_seed = self._conn_seed if self._conn_seed is not None else 1
        else:
            sim_seed = int(self.np_random.integers(1, _SEED_LIMIT))
        if not (self._fresh and self._conn is not None and self._conn_seed == sim_seed):
            self._start(sim_seed)
        assert self._conn is not None
        self._fresh = False
        try:
            state = self._conn.receive_state()
        except BaseException:
            self._stop()
            raise
        self._needs_reset = state.game_over
        return self._decode_obs(state), self._make_info(state)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Send ``action`` (validated first), return (obs, reward, terminated, truncated, info)."""
        if self._needs_reset or self._conn is None:
            raise RuntimeError("step() before reset() or after the episode ended: call reset()")
        conn = self._conn
        checked = conn.check_action(action)  # ValueError before anything is sent
        try:
            conn.send_action(checked, validate=False)
            state = conn.receive_state()
        except BaseException:
            self._needs_reset = True
            self._stop()
            raise
        if state.game_over:
            self._needs_reset = True
        return (
            self._decode_obs(state),
            state.reward,
            state.terminated,
            state.truncated,
            self._make_info(state),
        )

    def close(self) -> None:
        """Stop the scenario process, close the socket, undo the CPU pin (idempotent)."""
        self._closed = True
        self._needs_reset = True
        try:
            self._stop()
        finally:
            self._unpin()
        super().close()

    def _unpin(self) -> None:
        tid, self._pinned_thread = self._pinned_thread, None
        if tid is not None:
            release_thread(tid)

    # ------------------------------------------------------------------------------ hooks
    def _decode_obs(self, state: EnvState) -> Any:
        """Observation returned to the agent (override to reshape)."""
        return state.obs

    def _make_info(self, state: EnvState) -> dict[str, Any]:
        """Info dict returned to the agent (override to add metrics)."""
        return parse_info(state.info)

    def __del__(self) -> None:
        try:
            self._stop()
            self._unpin()
        except Exception:
            pass
