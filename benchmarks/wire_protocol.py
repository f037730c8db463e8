"""Round trips/s of the bridge against the echo scenario, next to an ns3-gym-style client.

Configurations (all in one run, see :data:`CONFIGS`): the ns3-gym-style client over ZMQ/TCP
(the reference of the targets), our client over ZMQ tcp:// and ipc://, and over the Unix
stream transport with and without co-location on one CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from gymnasium import spaces

from bridge.ns3.affinity import pin_thread, release_thread
from bridge.ns3.build import build_scenarios, scenario_binary
from bridge.ns3.env import Ns3GymEnv
from bridge.ns3.process import ScenarioProcess
from bridge.protocol import ns3opengym_pb2 as pb

__all__ = ["CONFIGS", "BenchConfig", "Ns3GymStyleClient", "bench_bridge"]


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


@dataclass(frozen=True)
class BenchConfig:
    """One measured configuration: which client, which transport, co-located or not."""

    name: str
    client: str  # "ours" or "ns3gym_style"
    endpoint: str  # "tcp", "ipc" or "unix"
    colocated: bool  # Python thread and scenario pinned to one CPU
    description: str


CONFIGS = (
    BenchConfig(
        "ns3gym_style_tcp",
        "ns3gym_style",
        "tcp",
        False,
        "reference for the targets: a client working like ns3-gym's, ZMQ over TCP, unpinned "
        "(how ns3-gym runs)",
    ),
    BenchConfig(
        "ns3gym_style_tcp_pinned",
        "ns3gym_style",
        "tcp",
        True,
        "the same client with its thread, its ZMQ I/O thread and the scenario pinned to one "
        "CPU (what co-location alone gives it)",
    ),
    BenchConfig("ours_zmq_tcp", "ours", "tcp", False, "Ns3GymEnv, ZMQ over TCP (default)"),
    BenchConfig("ours_zmq_ipc", "ours", "ipc", False, "Ns3GymEnv, ZMQ over ipc://"),
    BenchConfig(
        "ours_zmq_tcp_pinned",
        "ours",
        "tcp",
        True,
        "Ns3GymEnv, ZMQ over TCP, colocate=True (and the ZMQ I/O thread on that CPU)",
    ),
    BenchConfig(
        "ours_unix",
        "ours",
        "unix",
        False,
        "Ns3GymEnv, length-prefixed Unix stream transport, colocate=False",
    ),
    BenchConfig(
        "ours_unix_pinned",
        "ours",
        "unix",
        True,
        "Ns3GymEnv, Unix stream transport, co-located on one CPU (the unix default)",
    ),
)
REFERENCE = "ns3gym_style_tcp"
TARGET_ROUND_TRIPS_PER_S = 20_000
TARGET_SPEEDUP = 2.0


@contextmanager
def _zmq_io_threads_on(cpu: int | None) -> Iterator[None]:
    """Also move this process's ZMQ background threads to ``cpu`` (restored afterwards).

    A co-located ZMQ client is only fully co-located if the I/O thread that carries its
    messages is on the same CPU too; without this the pinned ZMQ rows would understate what
    co-location gives ZMQ (and so flatter the ratio of the Unix transport to them).
    """
    moved: dict[int, set[int]] = {}
    if cpu is not None:
        zmq.Context.instance().socket(zmq.REP).close()  # make sure the threads exist
        for task in Path("/proc/self/task").iterdir():
            try:
                if task.joinpath("comm").read_text().startswith("ZMQbg"):
                    tid = int(task.name)
                    moved[tid] = os.sched_getaffinity(tid)
                    os.sched_setaffinity(tid, {cpu})
            except (OSError, ValueError):
                pass
    try:
        yield
    finally:
        for tid, mask in moved.items():
            try:
                os.sched_setaffinity(tid, mask)
            except OSError:
                pass


def _time_ours(binary: Path, steps: int, config: BenchConfig) -> float:
    env = Ns3GymEnv(
        binary, [f"--steps={steps + 10}"], endpoint=config.endpoint, colocate=config.colocated
    )
    zmq_cpu = None
    if config.colocated and config.endpoint != "unix" and env.cpu_affinity:
        zmq_cpu = min(env.cpu_affinity)
    try:
        with _zmq_io_threads_on(zmq_cpu):
            env.reset(seed=1)
            action = np.ones(env.action_space.shape, dtype=env.action_space.dtype)
            start = time.perf_counter()
            for _ in range(steps):
                env.step(action)
            return steps / (time.perf_counter() - start)
    finally:
        env.close()


def _time_ns3gym_style(binary: Path, steps: int, config: BenchConfig) -> float:
    pin = pin_thread() if config.colocated else None
    try:
        client = Ns3GymStyleClient(
            binary, [f"--steps={steps + 10}", "--simSeed=1"], config.endpoint
        )
        try:
            with _zmq_io_threads_on(None if pin is None else pin[1]):
                if pin is not None:
                    os.sched_setaffinity(client.process.pid, {pin[1]})
                client.get_state()
                action = np.ones(client.action_space.shape, dtype=client.action_space.dtype)
                start = time.perf_counter()
                for _ in range(steps):
                    client.send_actions(action)
                    obs, reward, done, info = client.get_state()
                return steps / (time.perf_counter() - start)
        finally:
            client.close()
    finally:
        if pin is not None:
            release_thread(pin[0])


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
    configs: Sequence[str] | None = None,
    build_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Median round trips/s (one ``step`` each) over ``repeats`` runs of ``steps`` steps.

    Every configuration of :data:`CONFIGS` (or the named subset) is measured in the same run,
    interleaved (each repeat runs all of them, in a rotated order) so that load from other
    jobs spreads over all of them. ``ours_best`` is the fastest configuration of our client;
    ``speedup_vs_ns3gym_style`` divides it by the ns3-gym-style client over TCP measured in
    the same run (``reference``), the comparison the targets are about. The load average
    before and after is recorded: on a shared machine the absolute figures move with it.
    """
    chosen = [c for c in CONFIGS if configs is None or c.name in configs]
    if configs is not None and len(chosen) != len(set(configs)):
        known = [c.name for c in CONFIGS]
        raise ValueError(f"configs={list(configs)}, expected names from {known}")
    build = build_scenarios(build_dir)
    binary = scenario_binary("echo-scenario", build)
    load_before = os.getloadavg()
    runs: dict[str, list[float]] = {c.name: [] for c in chosen}
    for repeat in range(repeats):
        shift = repeat % len(chosen)
        for config in chosen[shift:] + chosen[:shift]:
            timer = _time_ours if config.client == "ours" else _time_ns3gym_style
            runs[config.name].append(timer(binary, steps, config))
    medians = {name: round(statistics.median(values)) for name, values in runs.items()}
    result: dict[str, Any] = {
        "round_trips_per_s": medians,
        "all_runs": {name: [round(x) for x in values] for name, values in runs.items()},
        "configs": {c.name: c.description for c in chosen},
        "steps": steps,
        "repeats": repeats,
        "cpus": os.cpu_count(),
        "load_avg_1_5_15min_before": [round(x, 2) for x in load_before],
        "load_avg_1_5_15min_after": [round(x, 2) for x in os.getloadavg()],
        "python_us_per_step_obs4": _python_cost_us(4),
        "python_us_per_step_obs256": _python_cost_us(256),
    }
    ours = {c.name: medians[c.name] for c in chosen if c.client == "ours"}
    if ours:
        best = max(ours, key=ours.__getitem__)
        result["ours_best"] = {"config": best, "round_trips_per_s": ours[best]}
        result["targets"] = {
            "round_trips_per_s": TARGET_ROUND_TRIPS_PER_S,
            "speedup_vs_ns3gym_style": TARGET_SPEEDUP,
        }
        if REFERENCE in medians:
            speedup = ours[best] / medians[REFERENCE]
            result["reference"] = {"config": REFERENCE, "round_trips_per_s": medians[REFERENCE]}
            result["speedup_vs_ns3gym_style"] = round(speedup, 2)
            result["targets_met"] = (
                ours[best] >= TARGET_ROUND_TRIPS_PER_S and speedup >= TARGET_SPEEDUP
            )
        if "ns3gym_style_tcp_pinned" in medians:
            result["speedup_vs_ns3gym_style_pinned"] = round(
                ours[best] / medians["ns3gym_style_tcp_pinned"], 2
            )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--configs",
        default=None,
        help="comma-separated subset of: " + ", ".join(c.name for c in CONFIGS),
    )
    args = parser.parse_args()
    configs = None if args.configs is None else args.configs.split(",")
    result = bench_bridge(steps=args.steps, repeats=args.repeats, configs=configs)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
