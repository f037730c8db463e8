"""Where the batched simulator's step spends its time: exclusive time per method, per env-step.

Every function defined on :class:`~bridge.fallback.core.BatchedIABCore` and its mixins (and
the action validation of the contract) is wrapped, for the duration of the measurement only, in a
``perf_counter`` timer that charges a call's time to that function minus the time of the
wrapped functions it called; what is left of ``IABVectorEnv.step`` (the contract's autoreset
and info bookkeeping) is "contract". The wrappers cost about a microsecond a call, visible at
one environment; the unwrapped rate is measured separately and printed with the profile.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from bridge.config import ScenarioConfig
from bridge.fallback.env import IABVectorEnv

# what each method of the core does (methods not listed are shown by name)
PHASE_LABELS = {
    "validate_action": "action validation",
    "effective_allocation": "allocation rules (mask, half-duplex)",
    "_advance_incumbents": "incumbent on/off",
    "_signal_fading": "fading: signal paths",
    "_interference_fading": "fading: interference paths",
    "_fading_base": "fading: per-frame part of the hashes",
    "_fading_lookup": "fading: mixer and table lookup",
    "_sinr": "SINR of the scheduled choices",
    "_interference": "SINR: interference pairs (gains x fading)",
    "_capacity": "spectral efficiency -> bytes per tick",
    "_traffic": "traffic arrivals",
    "_run_queues": "queues: the frame's 1 ms ticks",
    "_serve_backhaul": "queues: backhaul share per tick",
    "_words": "hash words (incumbents, traffic)",
    "_cqi": "CQI",
    "_frame_outcome": "observation side effects, counters, reward",
    "_move_ues": "mobility",
    "_update_geometry": "geometry: path loss, LOS, shadowing, beams",
    "_update_geometry_block": "geometry: distances, path loss, gains",
    "_large_scale": "geometry: LOS and shadowing",
    "_geo_words": "geometry: hash words",
    "_beam_gains": "geometry: transmit and receive beams",
    "_work": "scratch arrays",
    "_link_queues": "observation: backlog and head-of-line age",
    "observation": "observation: assembly",
    "action_mask": "action mask",
    "episode_metrics": "episode metrics",
    "step": "step: the rest",
}


class _PhaseClock:
    """Exclusive time per wrapped function (nested wrapped calls are charged to the callee)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._children: list[float] = []

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._children.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.seconds[name] += elapsed - self._children.pop()
                self.calls[name] += 1
                if self._children:
                    self._children[-1] += elapsed
        return timed


@contextmanager
def _instrumented(clock: _PhaseClock) -> Iterator[None]:
    import bridge.contract.vector_env as vector_env
    import bridge.fallback.core as core_module

    patches: list[tuple[Any, str, Any]] = []
    # the core and the mixins it is made of (each method patched where it is defined)
    for cls in core_module.BatchedIABCore.__mro__:
        if not cls.__module__.startswith("bridge.fallback"):
            continue
        for name, value in vars(cls).items():
            if callable(value) and not name.startswith("__") and not isinstance(value, type):
                patches.append((cls, name, value))
    for module in (vector_env, core_module):
        if hasattr(module, "validate_action"):
            patches.append((module, "validate_action", module.validate_action))
    patches.append((IABVectorEnv, "step", IABVectorEnv.step))
    try:
        for owner, name, value in patches:
            label = "contract" if owner is IABVectorEnv else name
            fn = value.__func__ if isinstance(value, staticmethod) else value
            wrapped = clock.wrap(label, fn)
            setattr(owner, name, staticmethod(wrapped) if isinstance(value, staticmethod)
                    else wrapped)
        yield
    finally:
        for owner, name, value in patches:
            setattr(owner, name, value)


def _action_pool(info: dict[str, Any], count: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    mask = info["action_mask"]
    return [np.where(mask, rng.random(mask.shape), -1).argmax(-1) for _ in range(count)]


def profile_fallback(sizes: tuple[int, ...] = (1, 64, 1024), seconds: float = 2.0,
                     config: ScenarioConfig | None = None) -> dict:
    """Per batch size: the unprofiled env-steps/s and, from a profiled run of about
    ``seconds``, the exclusive microseconds per env-step of every phase (a multiple of 10
    frames, so the geometry update's share is its average)."""
    config = config or ScenarioConfig()
    out: dict = {"benchmark": "fallback_profile", "scenario": "default", "sizes": {}}
    for n in sizes:
        env = IABVectorEnv(n, config)
        _, info = env.reset(seed=0)
        pool = _action_pool(info)
        for t in range(10):  # warm-up
            env.step(pool[t % len(pool)])
        period = config.dynamics.geometry_update_frames
        steps, start = 0, time.perf_counter()
        while steps % period or time.perf_counter() - start < seconds / 2:
            env.step(pool[steps % len(pool)])
            steps += 1
        rate = steps * n / (time.perf_counter() - start)
        clock = _PhaseClock()
        profiled = 0
        with _instrumented(clock):
            start = time.perf_counter()
            while profiled % period or time.perf_counter() - start < seconds / 2:
                env.step(pool[profiled % len(pool)])
                profiled += 1
        env.close()
        per_step = {name: s / (profiled * n) * 1e6 for name, s in clock.seconds.items()}
        total = sum(per_step.values())
        phases = [{"phase": name, "what": PHASE_LABELS.get(name, name),
                   "us_per_env_step": us, "share": us / total,
                   "calls_per_step": clock.calls[name] / profiled}
                  for name, us in sorted(per_step.items(), key=lambda kv: -kv[1])]
        out["sizes"][str(n)] = {"num_envs": n, "steps_per_s": rate,
                                "profiled_us_per_env_step": total, "phases": phases}
    out["load_average"] = list(os.getloadavg())
    return out


def format_profile(result: dict) -> str:
    """The profile as a table per batch size."""
    lines = []
    for label, size in result["sizes"].items():
        lines.append(f"{label} environments: {size['steps_per_s']:,.0f} env-steps/s unprofiled, "
                     f"{size['profiled_us_per_env_step']:.2f} us per env-step profiled")
        for p in size["phases"]:
            lines.append(f"  {p['us_per_env_step']:9.3f} us {100 * p['share']:5.1f}%  "
                         f"{p['phase']:<22} {p['what']}")
    lines.append("load average " + " ".join(f"{x:.2f}" for x in result["load_average"]))
    return "\n".join(lines)
