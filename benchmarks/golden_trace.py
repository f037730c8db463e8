"""Golden traces of the batched simulator: record a digest of everything it returns, compare later.

A speed-up of :mod:`bridge.fallback` must not change a single bit of what the environment
returns for the same seed. ``record`` steps a set of configurations (default, the small
study, deterministic radio, busy incumbents, no IAB node, a chain, short episodes with new
deployments, fast always-on UEs) at several batch sizes with random actions (mostly from the
mask, some invalid ones) and stores a SHA-256 per returned array (observation, reward, flags,
mask, every info key, episode metrics, a replayed frame); ``compare`` re-runs the same and
names the first array that differs. Digests are of the raw bytes, dtype and shape, so a
float32 where there was float64 counts as a difference. Usage::

    python -m benchmarks.golden_trace record /tmp/golden.json
    python -m benchmarks.golden_trace compare /tmp/golden.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from bridge.config import ScenarioConfig
from bridge.fallback.env import IABVectorEnv

# name -> (config changes, task split, new deployment each episode, batch sizes)
CASES: dict[str, tuple[dict[str, Any], str | None, bool, tuple[int, ...]]] = {
    "default": ({}, None, False, (1, 7, 64, 256)),
    "small": ({"topology__n_iab": 1, "topology__max_iab": 1, "topology__max_ues": 4,
               "topology__n_ue": 4, "radio__n_channels": 3}, None, False, (1, 9)),
    "deterministic": ({"radio__deterministic": True}, None, False, (1, 9)),
    "incumbents": ({"dynamics__incumbent_activity": 0.6}, None, False, (1, 9)),
    "no_iab": ({"topology__n_iab": 0, "topology__max_iab": 0}, None, False, (1, 9)),
    "chain": ({"topology__topology": "chain", "topology__n_iab": 3,
               "traffic__ue_rate_mbps": 400.0}, None, False, (1, 9)),
    "tasks_new_deployments": ({"dynamics__episode_frames": 15}, "train", True, (1, 9)),
    "fast_always_on": ({"traffic__off_mean_s": 0.0, "dynamics__ue_speed_mps": 15.0,
                        "dynamics__geometry_update_frames": 1, "traffic__ue_rate_mbps": 600.0,
                        "radio__blockage_prob": 0.3}, "test", False, (1, 9)),
}
STEPS = 50


def _digest(value: Any) -> str:
    arr = np.ascontiguousarray(np.asarray(value))
    h = hashlib.sha256(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(arr.tobytes())
    return h.hexdigest()[:24]


def _actions(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """A random masked action, with about one entry in ten replaced by any value."""
    act = np.where(mask, rng.random(mask.shape), -1.0).argmax(-1)
    wild = rng.random(act.shape) < 0.1
    return np.where(wild, rng.integers(0, mask.shape[-1], size=act.shape), act)


def trace(case: str, n: int) -> Iterator[tuple[str, str]]:
    """(name, digest) of everything case ``case`` returns at batch size ``n``."""
    changes, split, new_each, _ = CASES[case]
    config = ScenarioConfig().replace(**changes)
    env = IABVectorEnv(n, config, task_split=split, new_deployment_each_episode=new_each)
    obs, info = env.reset(seed=11)
    yield "reset/obs", _digest(obs)
    yield "reset/mask", _digest(info["action_mask"])
    rng = np.random.default_rng(5)
    for t in range(STEPS):
        obs, reward, term, trunc, info = env.step(_actions(rng, info["action_mask"]))
        for name, value in (("obs", obs), ("reward", reward), ("terminated", term),
                            ("truncated", trunc)):
            yield f"{t}/{name}", _digest(value)
        for key in sorted(info):
            if key == "episode_metrics":
                for metric in sorted(info[key]):
                    yield f"{t}/episode_metrics/{metric}", _digest(info[key][metric])
            else:
                yield f"{t}/{key}", _digest(info[key])
    core = env.frame_replay()
    yield "queued", _digest(core.bytes_in_queues())
    replay = core.take(np.array([0, n - 1, 0]))
    reward, info = replay.step(_actions(rng, replay.action_mask()))
    yield "replay/reward", _digest(reward)
    for key in sorted(info):
        yield f"replay/{key}", _digest(info[key])
    yield "replay/obs", _digest(replay.observation())
    env.close()


def record_all() -> dict[str, str]:
    out: dict[str, str] = {}
    for case, (*_, sizes) in CASES.items():
        for n in sizes:
            for name, digest in trace(case, n):
                out[f"{case}/{n}/{name}"] = digest
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("record", "compare"):
        print(__doc__)
        return 2
    command, path = argv
    got = record_all()
    if command == "record":
        with open(path, "w") as fh:
            json.dump(got, fh, indent=0)
        print(f"recorded {len(got)} digests in {path}")
        return 0
    with open(path) as fh:
        want = json.load(fh)
    if set(got) != set(want):
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        print(f"different arrays: missing {missing[:5]}, new {extra[:5]}")
        return 1
    differ = [k for k in want if got[k] != want[k]]
    if differ:
        print(f"{len(differ)} of {len(want)} arrays differ; first: {differ[:10]}")
        return 1
    print(f"all {len(want)} arrays bit-identical")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
