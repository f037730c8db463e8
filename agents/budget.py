"""The budget that sizes a study (env-steps, episodes, environments, seeds) and its profiles.

Budgets count environment steps, never wall time: the same budget spends the same work on
any machine, so a run is reproducible. Wall time is measured and reported, not a stopping
rule. Every field is validated like the scenario's (:mod:`bridge.config`): a bad value
raises :class:`ConfigError` naming ``experiment.<field>``, the value and the allowed range.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# the scenario's validating mixin and field helper, shared so both configs refuse bad input
# with the same messages
from bridge.config import ConfigError, _f, _Section


@dataclass(frozen=True)
class Budget(_Section):
    """How much compute one study gets (per agent and seed).

    ``meta_train_env_steps`` counts environment steps (frames summed over environments) spent
    in meta-training. Adaptation on each held-out task runs ``adapt_episodes + 1`` episodes
    on ``adapt_envs`` environments (curve points 0..K)."""

    _section_name = "experiment"

    name: str = "default"
    episode_frames: int = _f(100, lo=1, hi=100_000)
    meta_train_env_steps: int = _f(50_000, lo=0, hi=10**12)
    num_envs: int = _f(64, lo=1, hi=65_536)
    meta_batch_tasks: int = _f(8, lo=1, hi=4_096)
    # the few-shot protocol reports zero-shot and after 1, 2, 5 and 10 adaptation episodes
    # (agents.study.few_shot)
    adapt_episodes: int = _f(10, lo=0, hi=1_000)
    adapt_envs: int = _f(8, lo=1, hi=65_536)
    n_test_tasks: int = _f(4, lo=1, hi=10_000)
    # training seeds; the seed plan (agents.study.seeds) gives each 100 adaptation seeds
    seeds: tuple[int, ...] = _f((0, 1, 2), lo=0, hi=9_999)
    # environments per rollout job: the unit a rollout backend runs (and a Ray worker
    # receives); the split does not depend on the backend, so local and Ray runs agree
    envs_per_job: int = _f(16, lo=1, hi=65_536)

    def _validate(self) -> None:
        if not self.seeds:
            raise ConfigError("experiment.seeds=[]: expected at least one seed")

    def replace(self, **changes: Any) -> Budget:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["seeds"] = list(self.seeds)
        return out

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls)) - {"name"}


# The profiles ``--profile`` selects. ``quick`` is the whole study in minutes; ``default``
# (50k meta-training env-steps per agent and seed, 3 seeds, both studies) is sized to finish
# in half an hour on a 2-core machine with ``--jobs 2`` (docs/benchmarks.md has the measured
# wall times; at 100k the main study alone took 39 min); ``paper`` is six times the
# meta-training budget with five seeds and twice the held-out tasks (tighter confidence
# intervals).
PROFILES: dict[str, Budget] = {
    "quick": Budget(name="quick", episode_frames=40, meta_train_env_steps=20_000, num_envs=32,
                    meta_batch_tasks=4, adapt_episodes=3, adapt_envs=4, n_test_tasks=3,
                    seeds=(0,)),
    "default": Budget(),
    "paper": Budget(name="paper", meta_train_env_steps=300_000, n_test_tasks=8,
                    seeds=(0, 1, 2, 3, 4)),
}

# An ns-3 process steps a few hundred frames per second: on ns-3 the quick profile is smaller.
NS3_PROFILES: dict[str, Budget] = {
    "quick": PROFILES["quick"].replace(meta_train_env_steps=1_500, num_envs=4,
                                       meta_batch_tasks=2, adapt_episodes=2, adapt_envs=2,
                                       n_test_tasks=1, episode_frames=20),
}


def profile_budget(profile: str, backend: str = "fallback") -> Budget:
    """The budget of ``profile`` on ``backend`` (``NS3_PROFILES`` first on ns-3)."""
    if profile not in PROFILES:
        raise ConfigError(f"--profile={profile!r}: expected one of {sorted(PROFILES)}")
    if backend == "ns3" and profile in NS3_PROFILES:
        return NS3_PROFILES[profile]
    return PROFILES[profile]
