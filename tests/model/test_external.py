"""Hidden deployment conditions on the numpy twin: the external interferer (persistent per
deployment, seen in the measured SINR and not in the CQI) and imperfect incumbent sensing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bridge.config import ConfigError, ScenarioConfig
from bridge.fallback.core import BatchedIABCore
from bridge.instance import generate_instance
from bridge.layout import LAST_SINR_SENTINEL, ObservationLayout
from bridge.model.channel import mean_pathloss_db
from bridge.model.external import draw_interferer
from bridge.tasks import TaskDistribution

EXTERNAL = {"radio__external_block_channels": 2, "radio__external_eirp_dbm": 45.0,
            "radio__external_activity": 0.7}


def _core(config: ScenarioConfig, instance_seeds: list[int], episode_seed: int = 3
          ) -> BatchedIABCore:
    core = BatchedIABCore(config, [generate_instance(config, s) for s in instance_seeds])
    core.reset(np.arange(len(instance_seeds)) + episode_seed)
    return core


def _every_entry_busy(core: BatchedIABCore) -> np.ndarray:
    """Every base station serves, on every channel, the first link the mask allows."""
    mask = core.action_mask()
    first = mask[..., 1:].argmax(axis=-1) + 1
    return np.where(mask[..., 1:].any(axis=-1), first, 0)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("radio__external_block_channels", 5, "radio.external_block_channels=5 exceeds"),
    ("radio__external_block_channels", -1, "radio.external_block_channels=-1 is out of range"),
    ("radio__external_activity", 1.5, "radio.external_activity=1.5 is out of range"),
    ("radio__external_eirp_dbm", 120.0, "radio.external_eirp_dbm=120.0 is out of range"),
    ("dynamics__incumbent_miss_prob", -0.2, "dynamics.incumbent_miss_prob=-0.2 is out of"),
])
def test_bad_hidden_condition_fields_name_field_and_value(small_config, field, value, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        small_config.replace(**{field: value})


def test_task_ranges_of_the_hidden_conditions_are_disjoint_and_fit_the_channels():
    for k in (1, 2, 3, 4, 8, 16):
        config = ScenarioConfig().replace(radio__n_channels=k)
        dist = TaskDistribution.for_config(config)
        for split in ("train", "test"):
            for task in dist.sample(split, seed=k, n=40):
                assert dist.contains(split, task)
                assert 0 <= task.external_block_channels <= k
                task.apply(config)  # valid config: the block fits the band
    dist = TaskDistribution()
    train, test = dist.sample("train", 1, 200), dist.sample("test", 1, 200)
    assert {t.external_block_channels for t in test} == {3, 4}
    assert {t.external_block_channels for t in train} == {0, 1, 2, 5, 6}
    assert not any(dist.contains("train", t) for t in test)
    with pytest.raises(ConfigError, match="tasks.train.external_block_channels interval"):
        TaskDistribution.from_dict({"train": {"external_block_channels": [[0, 12]]}})
    with pytest.raises(ConfigError, match="overlaps tasks.test.incumbent_miss_prob"):
        TaskDistribution.from_dict({"train": {"incumbent_miss_prob": [[0.0, 0.2]]}})


def test_hidden_dimensions_do_not_shift_the_other_draws():
    default = TaskDistribution().sample("test", seed=9, n=10)
    other = TaskDistribution.from_dict({"test": {"external_eirp_dbm": [[0.0, 1.0]],
                                                 "external_block_channels": [[3, 4]]}})
    moved = other.sample("test", seed=9, n=10)
    for a, b in zip(default, moved, strict=True):
        assert (a.n_ue, a.ue_rate_mbps, a.blockage_prob, a.topology) == \
            (b.n_ue, b.ue_rate_mbps, b.blockage_prob, b.topology)
        assert b.external_eirp_dbm < 1.0 and a.external_eirp_dbm >= 40.0


def test_interferer_is_a_persistent_property_of_the_deployment(small_config):
    config = small_config.replace(**EXTERNAL)
    core = _core(config, [11, 12, 13])
    xyz, channels = core.ext_xyz.copy(), core.ext_channels.copy()
    core.reset(np.array([900, 901, 902]))  # new episodes of the same deployments
    np.testing.assert_array_equal(core.ext_xyz, xyz)
    np.testing.assert_array_equal(core.ext_channels, channels)
    assert len({tuple(x) for x in xyz}) == 3  # deployments differ
    half = config.topology.area_m / 2
    assert np.all(np.abs(xyz[:, :2]) <= half) and np.all(xyz[:, 2] == 10.0)
    assert np.all(channels.sum(axis=1) == 2)
    for row in channels:  # one contiguous block
        on = np.flatnonzero(row)
        assert on[-1] - on[0] == 1
    # over many deployments every start channel of the block occurs
    starts = {draw_interferer(config, s).first_channel for s in range(200)}
    assert starts == {0, 1, 2}


def test_received_power_is_the_umi_mean_loss_and_the_receive_beam(small_config):
    """An independent evaluation for one UE: explicit steering vectors of the 4x4 panel."""
    config = small_config.replace(**EXTERNAL, radio__deterministic=True)
    inst = generate_instance(config, 21)
    core = BatchedIABCore(config, [inst])
    core.reset([0])
    ext = draw_interferer(config, 21)
    u = 0
    rx, parent = inst.ue_xyz[u], inst.bs_xyz[inst.ue_parent[u]]
    d2d = math.hypot(*(rx[:2] - ext.xyz[:2]))
    loss_db = float(mean_pathloss_db(d2d, 10.0, 1.5, 28.0))

    def panel(boresight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        horiz = np.array([-boresight[1], boresight[0], 0.0]) / math.hypot(*boresight[:2])
        return horiz, np.cross(boresight, horiz)

    bore = (parent - rx) / np.linalg.norm(parent - rx)
    toward = (ext.xyz - rx) / np.linalg.norm(ext.xyz - rx)
    h, v = panel(bore)
    # element (r, c) at half-wavelength spacing along the panel's axes; weights steered
    # to broadside (all ones), so the gain is |sum exp(j pi (c p + r q))|^2 / 16
    p, q = toward @ h, toward @ v
    phases = [math.pi * (c * p + r * q) for r in range(4) for c in range(4)]
    gain = abs(sum(complex(math.cos(x), math.sin(x)) for x in phases)) ** 2 / 16
    expected_mw = 10 ** ((45.0 - loss_db) / 10) * gain
    assert core.ext_rx_mw[0, config.topology.max_iab + u] == pytest.approx(expected_mw,
                                                                             rel=1e-9)


def test_measured_sinr_drops_on_the_block_while_cqi_is_unchanged(small_config):
    """Same deployments, traffic and actions, with and without the interferer."""
    off = small_config.replace(dynamics__incumbent_activity=0.0)
    on = off.replace(**EXTERNAL)
    cores = {name: _core(cfg, [4, 5, 6, 7]) for name, cfg in (("off", off), ("on", on))}
    layout = ObservationLayout.from_config(on)
    cqi = layout.slices()["cqi"]
    hit = cores["on"].ext_channels  # (N, K)
    drops, was_on, seen_drops = [], [], []
    for _ in range(40):
        action = _every_entry_busy(cores["off"])
        np.testing.assert_array_equal(action, _every_entry_busy(cores["on"]))
        obs = {k: layout.split(c.observation())["links"][..., cqi] for k, c in cores.items()}
        np.testing.assert_array_equal(obs["off"], obs["on"])  # the CQI does not see it
        info = {k: c.step(action.reshape(c.N, -1))[1] for k, c in cores.items()}
        s_off, s_on = info["off"]["sinr_db"], info["on"]["sinr_db"]  # (N, B, K)
        active = np.isfinite(s_off)
        clean = active & ~hit[:, None, :]
        np.testing.assert_array_equal(s_off[clean], s_on[clean])
        assert np.all(s_on[active] <= s_off[active] + 1e-9)
        diff = np.where(active, s_off, 0.0) - np.where(active, s_on, 0.0)
        drops.append(np.where(active & hit[:, None, :], diff, np.nan))
        was_on.append((diff > 1e-9).any(axis=(1, 2)))
        # the observation's measured SINR reports the loss (dB / 10 where scheduled)
        last = {k: layout.split(c.observation())["sinr"] for k, c in cores.items()}
        scheduled = last["on"] != LAST_SINR_SENTINEL
        assert np.all(last["on"][scheduled] <= last["off"][scheduled] + 1e-6)
        seen_drops.append(np.max(last["off"][scheduled] - last["on"][scheduled]))
    drop = np.array(drops)
    # links near the interferer lose tens of dB; the frames it transmits follow its activity
    assert np.nanmax(drop) > 20.0
    assert 0.5 < np.mean(was_on) < 0.9
    assert max(seen_drops) > 2.0


def test_sensing_misses_busy_channels_at_the_configured_rate(small_config):
    config = small_config.replace(dynamics__incumbent_activity=0.4,
                                  dynamics__incumbent_miss_prob=0.25)
    perfect = config.replace(dynamics__incumbent_miss_prob=0.0)
    cores = {"miss": _core(config, list(range(8))), "perfect": _core(perfect, list(range(8)))}
    busy = missed = 0
    collisions = {"miss": 0, "perfect": 0}
    for _ in range(150):
        for name, core in cores.items():
            truth = core.incumbent.copy()
            seen = core.incumbent_seen.copy()
            assert not np.any(seen & ~truth)  # a free channel is never reported busy
            mask = core.action_mask().reshape(core.N, core.B, core.K, -1)
            # the mask lets the missed channels through
            assert np.all(mask[..., 1:].any(axis=(1, 3)) == ~seen)
            if name == "miss":
                busy += truth.sum()
                missed += (truth & ~seen).sum()
            _, info = core.step(_every_entry_busy(core).reshape(core.N, -1))
            collisions[name] += int(info["incumbent_collisions"].sum())
        np.testing.assert_array_equal(cores["miss"].incumbent, cores["perfect"].incumbent)
    assert busy > 500
    assert missed / busy == pytest.approx(0.25, abs=0.04)
    # a missed busy channel that is scheduled collides: far more collisions than with
    # perfect sensing (where only channels that turned busy this frame collide)
    assert collisions["miss"] > 3 * collisions["perfect"] > 0


def test_conditions_off_by_default_change_nothing(small_config):
    core = _core(small_config, [1, 2])
    assert not core.ext_channels.any() and not core.ext_rx_mw.any()
    assert np.all(core.miss_prob == 0)
