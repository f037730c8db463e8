"""The batched simulator split over worker processes: one ``IABVectorEnv`` shard per core.

numpy runs elementwise work on one core, so a machine with C cores steps C shards of a big
batch concurrently. Environment ``i`` is environment ``i - offset`` of its shard; randomness is
counter-based per environment, so the result is identical to one ``IABVectorEnv`` with the
same seeds (tested). Observations, masks, rewards, flags and the per-step ``infos`` of fixed
shape travel through shared memory (a pipe carries the rest: episode metrics, a backend's
extras), so a step pickles almost nothing. A worker that dies raises an error naming its exit
code; every wait has a timeout; ``close()`` (also at exit) stops and joins the workers.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import weakref
from collections.abc import Sequence
from multiprocessing import shared_memory
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from bridge.config import ScenarioConfig
from bridge.contract.deployments import per_env_seeds
from bridge.contract.errors import EnvironmentFailure
from bridge.contract.spaces import bind_spaces
from bridge.contract.vector_env import REWARD_BS, STEP_BS_COUNTERS, STEP_COUNTERS
from bridge.fallback.env import IABVectorEnv
from bridge.layout import ObservationLayout
from bridge.tasks import Task, TaskDistribution

_TIMEOUT_S = 120.0


class ShardWorkerError(EnvironmentFailure):
    """A shard worker died or did not answer in time."""


_INFO = "info:"  # prefix of the shared-memory buffers of per-step infos


def _buffers(n: int, layout: ObservationLayout) -> dict[str, tuple[tuple[int, ...], Any]]:
    b, k = layout.n_bs, layout.n_channels
    out: dict[str, tuple[tuple[int, ...], Any]] = {
        "obs": ((n, layout.size), np.float32),
        "mask": ((n, layout.action_size, layout.n_choices), np.bool_),
        "action": ((n, layout.action_size), np.int64),
        "reward": ((n,), np.float64),
        "terminated": ((n,), np.bool_),
        "truncated": ((n,), np.bool_),
        _INFO + "sinr_db": ((n, b, k), np.float64),
        _INFO + "allocation": ((n, b, k), np.int64),
    }
    for key in STEP_COUNTERS:
        out[_INFO + key] = ((n,), np.int64)
    for key in STEP_BS_COUNTERS:
        out[_INFO + key] = ((n, b), np.int64)
    out[_INFO + REWARD_BS] = ((n, b), np.float64)
    return out


def _infos_to_shared(info: dict[str, Any], view: dict[str, np.ndarray]) -> list[str]:
    """Move the infos whose shape and dtype match a shared buffer into it; return their keys
    (the rest stay in ``info`` for the pipe)."""
    moved = []
    for name, buf in view.items():
        key = name[len(_INFO):]
        value = info.get(key) if name.startswith(_INFO) else None
        if isinstance(value, np.ndarray) and value.dtype == buf.dtype \
                and value.shape == buf.shape:
            buf[...] = value
            del info[key]
            moved.append(key)
    return moved


def _views(shm: shared_memory.SharedMemory, n: int, layout: ObservationLayout
           ) -> dict[str, np.ndarray]:
    out, offset = {}, 0
    for name, (shape, dtype) in _buffers(n, layout).items():
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        out[name] = np.ndarray(shape, dtype=dtype, buffer=shm.buf, offset=offset)
        offset += (size + 63) // 64 * 64
    return out


def _buffer_bytes(n: int, layout: ObservationLayout) -> int:
    return sum((int(np.prod(shape)) * np.dtype(dtype).itemsize + 63) // 64 * 64
               for shape, dtype in _buffers(n, layout).values())


def _worker(conn: Any, shm_name: str, lo: int, hi: int, n_total: int, config: dict,
            task_split: str | None, tasks: dict | None, new_each: bool) -> None:
    cfg = ScenarioConfig.from_dict(config)
    dist = TaskDistribution(tasks, max_ues=cfg.topology.max_ues, n_iab=cfg.topology.n_iab,
                            n_channels=cfg.radio.n_channels) if tasks is not None else None
    env = IABVectorEnv(hi - lo, cfg, task_split, dist, new_each)
    shm = shared_memory.SharedMemory(name=shm_name)
    view = {k: v[lo:hi] for k, v in _views(shm, n_total, env.layout).items()}
    try:
        while True:
            cmd, payload = conn.recv()
            if cmd == "close":
                break
            try:
                if cmd == "reset":
                    obs, info = env.reset(seed=payload["seed"], options=payload["options"])
                    view["obs"][:] = obs
                    view["mask"][:] = info["action_mask"]
                    conn.send(("ok", None))
                elif cmd == "step":
                    obs, reward, term, trunc, info = env.step(view["action"])
                    view["obs"][:] = obs
                    view["reward"][:] = reward
                    view["terminated"][:] = term
                    view["truncated"][:] = trunc
                    view["mask"][:] = info.pop("action_mask")
                    moved = _infos_to_shared(info, view)
                    conn.send(("ok", (moved, info)))
                elif cmd == "set_tasks":
                    env.set_tasks(*payload)
                    conn.send(("ok", None))
                elif cmd == "instances":
                    conn.send(("ok", [i.to_dict() for i in env.instances]))
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        del view
        shm.close()
        conn.close()


class ShardedIABVectorEnv(VectorEnv):
    """``IABVectorEnv`` over ``workers`` processes (same API, spaces, infos and results)."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, config: ScenarioConfig | dict | str | None = None,
                 task_split: str | None = None, tasks: TaskDistribution | None = None,
                 new_deployment_each_episode: bool = False, workers: int = 2) -> None:
        if int(workers) < 1 or int(workers) > int(num_envs):
            raise ValueError(f"workers={workers!r}: expected 1 .. num_envs={num_envs}")
        bind_spaces(self, config, num_envs)
        edges = np.linspace(0, self.num_envs, int(workers) + 1).round().astype(int)
        self._slices = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
        self._shm = shared_memory.SharedMemory(create=True,
                                               size=_buffer_bytes(self.num_envs, self.layout))
        self._view = _views(self._shm, self.num_envs, self.layout)
        ctx = mp.get_context("spawn")
        self._conns, self._procs = [], []
        ranges = tasks.ranges if tasks is not None else None
        for lo, hi in self._slices:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, daemon=True,
                               args=(child, self._shm.name, lo, hi, self.num_envs,
                                     self.config.to_dict(), task_split, ranges,
                                     new_deployment_each_episode))
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        self._closed = False
        self._finalizer = weakref.finalize(self, _shutdown, self._conns, self._procs, self._shm)
        atexit.register(self._finalizer)

    # -------------------------------------------------------------- plumbing
    def _call(self, cmd: str, payloads: Sequence[Any]) -> list[Any]:
        if self._closed:
            raise RuntimeError("the environment is closed")
        for w, (conn, payload) in enumerate(zip(self._conns, payloads)):
            try:
                conn.send((cmd, payload))
            except OSError as exc:  # BrokenPipeError: the worker is gone
                proc = self._procs[w]
                proc.join(1.0)
                raise ShardWorkerError(f"shard worker {w} (pid {proc.pid}) is gone ({exc}); "
                                       f"exit code {proc.exitcode}") from None
        out = []
        for w, (conn, proc) in enumerate(zip(self._conns, self._procs)):
            if not conn.poll(_TIMEOUT_S):
                raise ShardWorkerError(f"shard worker {w} (pid {proc.pid}) did not answer "
                                       f"{cmd!r} within {_TIMEOUT_S:.0f} s")
            try:
                status, value = conn.recv()
            except EOFError:
                proc.join(1.0)
                raise ShardWorkerError(f"shard worker {w} (pid {proc.pid}) died with exit "
                                       f"code {proc.exitcode}") from None
            if status == "error":
                raise ValueError(f"shard worker {w}: {value}")
            out.append(value)
        return out

    def set_tasks(self, tasks: Sequence[Task | None], instance_seeds: Sequence[int]) -> None:
        if len(tasks) != self.num_envs or len(instance_seeds) != self.num_envs:
            raise ValueError(f"set_tasks needs {self.num_envs} tasks and seeds, got "
                             f"{len(tasks)} and {len(instance_seeds)}")
        self._call("set_tasks", [(list(tasks[a:b]), list(instance_seeds[a:b]))
                                 for a, b in self._slices])

    @property
    def instances(self) -> list[Any]:
        from bridge.instance import ScenarioInstance

        return [ScenarioInstance.from_dict(d) for part in self._call("instances", [None] *
                len(self._slices)) for d in part]

    # -------------------------------------------------------------- gym API
    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            seeds = per_env_seeds(seed, self.num_envs)
        payloads = []
        for a, b in self._slices:
            opts = None
            if options:
                # per-environment options are split with the batch (an int episode is not)
                opts = {k: (list(v)[a:b] if k in ("tasks", "instance_seeds")
                            or (k == "episode" and not isinstance(v, (int, np.integer)))
                            else v)
                        for k, v in options.items()}
            payloads.append({"seed": None if seed is None else seeds[a:b], "options": opts})
        self._call("reset", payloads)
        return self._view["obs"].copy(), {"action_mask": self._view["mask"].copy()}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                  np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, self.layout.action_size):
            raise ValueError(f"actions have shape {actions.shape}; expected "
                             f"{(self.num_envs, self.layout.action_size)}")
        if not np.issubdtype(actions.dtype, np.integer):
            from bridge.layout import validate_action

            actions = validate_action(actions, self.layout, batch=self.num_envs)
        self._view["action"][:] = actions
        parts = []
        for (a, b), (moved, info) in zip(self._slices, self._call("step", [None] *
                                                                  len(self._slices))):
            info.update({key: self._view[_INFO + key][a:b] for key in moved})
            parts.append(info)
        infos = _merge_infos(parts, [b - a for a, b in self._slices])
        infos["action_mask"] = self._view["mask"].copy()
        return (self._view["obs"].copy(), self._view["reward"].copy(),
                self._view["terminated"].copy(), self._view["truncated"].copy(), infos)

    def close_extras(self, **kwargs: Any) -> None:
        if not self._closed:
            self._closed = True
            self._view = {}
            self._finalizer()


def _merge_infos(parts: list[dict[str, Any]], sizes: list[int]) -> dict[str, Any]:
    """Concatenate per-shard info dicts along the environment axis (masked keys included)."""
    keys = {k for p in parts for k in p}
    out: dict[str, Any] = {}
    for key in keys:
        if key == "episode_metrics":
            names = {m for p in parts for m in p.get(key, {})}
            out[key] = {m: np.concatenate([p[key][m] if key in p else np.zeros(n)
                                           for p, n in zip(parts, sizes)]) for m in names}
        elif key.startswith("_"):
            out[key] = np.concatenate([p.get(key, np.zeros(n, dtype=bool))
                                       for p, n in zip(parts, sizes)])
        else:
            out[key] = np.concatenate([p[key] for p in parts])
    return out


def _shutdown(conns: list[Any], procs: list[Any], shm: shared_memory.SharedMemory) -> None:
    for conn in conns:
        try:
            conn.send(("close", None))
        except (OSError, BrokenPipeError):
            pass
    for proc in procs:
        proc.join(2.0)
        if proc.is_alive():
            proc.kill()
            proc.join(2.0)
    for conn in conns:
        conn.close()
    try:
        shm.close()
        shm.unlink()
    except FileNotFoundError:
        pass
