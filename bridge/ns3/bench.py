"""Round trips/s of the bridge against the echo scenario, next to an ns3-gym-style client."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from gymnasium import spaces

from bridge.ns3.build import build_scenarios, scenario_binary
from bridge.ns3.env import Ns3GymEnv
from bridge.ns3.process import ScenarioProcess
from bridge.protocol import ns3opengym_pb2 as pb

__all__ = ["Ns3GymStyleClient", "bench_bridge"]


class Ns3GymStyleClient:
    """A client written the way ns3-gym's Python side works (our own emulation, for comparison).

    Per step it does what that client does: a blocking ``recv`` without timeout, a new
    EnvStateMsg per message, generic ``Any.Unpack`` into new messages, observations converted
    element by element to Python lists, actions packed generically by inspecting the gym space
    every step, new ``Any``/EnvActMsg objects per action, and JSON-free string info.
    """

    def __init__(self, binary: Path, scenario_args: Sequence[str], endpoint: str = "tcp") -> None:
        self.context = zmq.Context.instance()
        self.socket = self.context.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        if endpoint == "tcp":
            port = self.socket.bind_to_random_port("tcp://127.0.0.1")
            flag = f"--openGymPort={port}"
        else:
            path = f"/tmp/ns3gym-style-{os.getpid()}-{id(self)}.sock"
            self.socket.bind(f"ipc://{path}")
            flag = f"--openGymEndpoint=ipc://{path}"
        self.process = ScenarioProcess([str(binary), *scenario_args, flag])
        self.socket.setsockopt(zmq.RCVTIMEO, 30_000)  # the bench itself must not hang
        init = pb.SimInitMsg()
        init.ParseFromString(self.socket.recv())
        self.observation_space = self._create_space(init.obsSpace)
        self.action_space = self._create_space(init.actSpace)
        self.socket.send(pb.SimInitAck(done=True, stopSimReq=False).SerializeToString())

    def _create_space(self, desc: pb.SpaceDescription) -> spaces.Space:
        if desc.type == pb.Discrete:
            msg = pb.DiscreteSpace()
            desc.space.Unpack(msg)
            return spaces.Discrete(msg.n)
        if desc.type == pb.Box:
            msg = pb.BoxSpace()
            desc.space.Unpack(msg)
            dtype = {pb.INT: np.int32, pb.UINT: np.uint32, pb.DOUBLE: np.float64}.get(
                msg.dtype, np.float32
            )
            return spaces.Box(msg.low, msg.high, tuple(msg.shape), dtype)
        if desc.type == pb.Tuple:
            msg = pb.TupleSpace()
            desc.space.Unpack(msg)
            return spaces.Tuple([self._create_space(e) for e in msg.element])
        msg = pb.DictSpace()
        desc.space.Unpack(msg)
        return spaces.Dict({e.name: self._create_space(e) for e in msg.element})

    def _create_data(self, container: pb.DataContainer) -> Any:
        if container.type == pb.Discrete:
            msg = pb.DiscreteDataContainer()
            container.data.Unpack(msg)
            return msg.data
        if container.type == pb.Box:
            msg = pb.BoxDataContainer()
            container.data.Unpack(msg)
            if msg.dtype == pb.INT:
                return [v for v in msg.intData]
            if msg.dtype == pb.UINT:
                return [v for v in msg.uintData]
            if msg.dtype == pb.DOUBLE:
                return [v for v in msg.doubleData]
            return [v for v in msg.floatData]
        if container.type == pb.Tuple:
            msg = pb.TupleDataContainer()
            container.data.Unpack(msg)
            return tuple(self._create_data(e) for e in msg.element)
        msg = pb.DictDataContainer()
        container.data.Unpack(msg)
        return {e.name: self._create_data(e) for e in msg.element}

    def _pack_data(self, actions: Any, space: spaces.Space) -> pb.DataContainer:
        container = pb.DataContainer()
        if isinstance(space, spaces.Discrete):
            container.type = pb.Discrete
            container.data.Pack(pb.DiscreteDataContainer(data=int(actions)))
        elif isinstance(space, spaces.Box):
            container.type = pb.Box
            box = pb.BoxDataContainer(shape=list(space.shape))
            values = [x for x in np.asarray(actions).ravel().tolist()]
            if space.dtype == np.int32:
                box.dtype = pb.INT
                box.intData.extend(int(v) for v in values)
            elif space.dtype == np.uint32:
                box.dtype = pb.UINT
                box.uintData.extend(int(v) for v in values)
            elif space.dtype == np.float64:
                box.dtype = pb.DOUBLE
                box.doubleData.extend(values)
            else:
                box.dtype = pb.FLOAT
                box.floatData.extend(values)
            container.data.Pack(box)
        elif isinstance(space, spaces.Tuple):
            container.type = pb.Tuple
            tup = pb.TupleDataContainer()
            for sub_action, sub_space in zip(actions, space.spaces, strict=True):
                tup.element.append(self._pack_data(sub_action, sub_space))
            container.data.Pack(tup)
        else:
            container.type = pb.Dict
            dct = pb.DictDataContainer()
            for key, sub_space in space.spaces.items():
                element = self._pack_data(actions[key], sub_space)
                element.name = key
                dct.element.append(element)
            container.data.Pack(dct)
        return container

    def get_state(self) -> tuple[Any, float, bool, str]:
        state = pb.EnvStateMsg()
        state.ParseFromString(self.socket.recv())
        return self._create_data(state.obsData), state.reward, state.isGameOver, state.info

    def send_actions(self, actions: Any) -> None:
        reply = pb.EnvActMsg()
        reply.actData.CopyFrom(self._pack_data(actions, self.action_space))
        self.socket.send(reply.SerializeToString())

    def send_stop(self) -> None:
        self.socket.send(pb.EnvActMsg(stopSimReq=True).SerializeToString())

    def close(self) -> None:
        self.process.close()
        self.socket.close(linger=0)


def _time_ours(binary: Path, steps: int, endpoint: str, cpu: int | None) -> float:
    env = Ns3GymEnv(
        binary,
        [f"--steps={steps + 10}"],
        endpoint=endpoint,
        cpu_affinity=None if cpu is None else [cpu],
        spin_s=0.0 if cpu is not None else 0.0002,
    )
    try:
        env.reset(seed=1)
        action = np.ones(env.action_space.shape, dtype=env.action_space.dtype)
        start = time.perf_counter()
        for _ in range(steps):
            env.step(action)
        return steps / (time.perf_counter() - start)
    finally:
        env.close()


def _time_ns3gym_style(binary: Path, steps: int, endpoint: str, cpu: int | None) -> float:
    client = Ns3GymStyleClient(binary, [f"--steps={steps + 10}", "--simSeed=1"], endpoint)
    try:
        if cpu is not None:
            os.sched_setaffinity(client.process.pid, {cpu})
        client.get_state()
        action = np.ones(client.action_space.shape, dtype=client.action_space.dtype)
        start = time.perf_counter()
        for _ in range(steps):
            client.send_actions(action)
            obs, reward, done, info = client.get_state()
        rate = steps / (time.perf_counter() - start)
        return rate
    finally:
        client.close()


def _python_cost_us(obs_size: int = 4, n: int = 20000) -> dict[str, float]:
    """Microseconds of Python work per step without the socket: parse a state message, decode
    the observation (and info), validate and encode an action, for both clients."""
    from bridge.ns3.connection import OpenGymConnection

    obs_space = spaces.Box(-1e9, 1e9, (obs_size,), np.float32)
    act_space = spaces.Box(-100.0, 100.0, (obs_size,), np.float32)
    state = pb.EnvStateMsg(reward=1.0, info='{"step": 1, "seed": 1, "rng": 0.5}')
    box = pb.BoxDataContainer(dtype=pb.FLOAT, shape=[obs_size], floatData=[1.0] * obs_size)
    state.obsData.type = pb.Box
    state.obsData.data.Pack(box)  # as the C++ side writes it
    raw = state.SerializeToString()
    action = np.ones(obs_size, np.float32)

    conn = OpenGymConnection(spin_s=0.0)
    try:
        from bridge.protocol.codec import SpaceCodec

        conn._obs_codec, conn._act_codec = SpaceCodec(obs_space), SpaceCodec(act_space)
        act_msg = pb.EnvActMsg()

        def ours() -> None:
            result = conn._on_state(raw)
            conn._owe_reply = False
            parse_info_ = json.loads(result.info)  # what Ns3GymEnv adds (info dict)
            del parse_info_
            checked = conn._act_codec.check(action, "action")  # type: ignore[union-attr]
            conn._act_codec.encode(checked, act_msg.actData, validate=False)  # type: ignore[union-attr]
            act_msg.SerializeToString()

        client = Ns3GymStyleClient.__new__(Ns3GymStyleClient)
        client.action_space = act_space

        def ns3gym_style() -> None:
            msg = pb.EnvStateMsg()
            msg.ParseFromString(raw)
            client._create_data(msg.obsData)
            reply = pb.EnvActMsg()
            reply.actData.CopyFrom(client._pack_data(action, act_space))
            reply.SerializeToString()

        costs = {}
        for name, fn in (("ours", ours), ("ns3gym_style", ns3gym_style)):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            costs[name] = round((time.perf_counter() - start) / n * 1e6, 2)
        return costs
    finally:
        conn.close()


def bench_bridge(
    steps: int = 5000,
    repeats: int = 5,
    *,
    endpoints: Sequence[str] = ("tcp", "ipc"),
    pinned: bool = True,
    build_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Median round trips/s (one ``step`` each) over ``repeats`` runs of ``steps`` steps.

    Keys ``ours_<endpoint>`` and ``ns3gym_style_<endpoint>``, measured in the same run,
    alternating. With ``pinned`` the same runs are repeated with this Python thread and the
    scenario on one CPU (``*_pinned`` keys): on small VMs a cross-CPU wake-up costs tens of
    microseconds, several per round trip, and dominates everything else.
    """
    build = build_scenarios(build_dir)
    binary = scenario_binary("echo-scenario", build)
    configs: list[tuple[str, int | None]] = [("", None)]
    if pinned:
        configs.append(("_pinned", sorted(os.sched_getaffinity(0))[0]))
    runs: dict[str, list[float]] = {}
    original_affinity = os.sched_getaffinity(0)
    try:
        for suffix, cpu in configs:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})
            for _ in range(repeats):
                for endpoint in endpoints:
                    runs.setdefault(f"ours_{endpoint}{suffix}", []).append(
                        _time_ours(binary, steps, endpoint, cpu)
                    )
                    runs.setdefault(f"ns3gym_style_{endpoint}{suffix}", []).append(
                        _time_ns3gym_style(binary, steps, endpoint, cpu)
                    )
            os.sched_setaffinity(0, original_affinity)
    finally:
        os.sched_setaffinity(0, original_affinity)
    result: dict[str, Any] = {
        "python_us_per_step_obs4": _python_cost_us(4),
        "python_us_per_step_obs256": _python_cost_us(256),
        "steps": steps,
        "repeats": repeats,
        "cpus": os.cpu_count(),
        "round_trips_per_s": {k: round(statistics.median(v)) for k, v in runs.items()},
        "all_runs": {k: [round(x) for x in v] for k, v in runs.items()},
    }
    medians = result["round_trips_per_s"]
    for suffix, _ in configs:
        for endpoint in endpoints:
            ours, theirs = (
                medians[f"ours_{endpoint}{suffix}"],
                medians[f"ns3gym_style_{endpoint}{suffix}"],
            )
            result[f"speedup_{endpoint}{suffix}"] = round(ours / theirs, 2)
        if "tcp" in endpoints and "ipc" in endpoints:
            result[f"ipc_over_tcp{suffix}"] = round(
                medians[f"ours_ipc{suffix}"] / medians[f"ours_tcp{suffix}"], 2
            )
    return result
