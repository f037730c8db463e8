"""Scenario config validation, files, overrides and the task distribution."""

from __future__ import annotations

import pytest

from bridge.config import ConfigError, ScenarioConfig, load_config
from bridge.tasks import Task, TaskDistribution


def test_defaults_match_the_design():
    c = ScenarioConfig()
    assert c.topology.n_iab == 4 and c.topology.n_ue == 16 and c.topology.area_m == 400
    assert c.radio.carrier_ghz == 28 and c.radio.bandwidth_mhz == 400
    assert c.radio.n_channels == 8 and c.radio.channel_bandwidth_hz == 50e6
    assert c.radio.bs_array == (8, 8) and c.radio.ue_array == (4, 4)
    assert c.dynamics.ticks_per_frame == 10
    assert c.traffic.delay_budget_s == 0.020


@pytest.mark.parametrize(("change", "words"), [
    ({"radio__carrier_ghz": 200.0}, ["radio.carrier_ghz", "200", "100"]),
    ({"topology__n_ue": 0}, ["topology.n_ue", "0", "[1"]),
    ({"topology__n_ue": 30}, ["topology.n_ue=30", "max_ues=24"]),
    ({"topology__topology": "ring"}, ["topology.topology", "ring", "star"]),
    ({"radio__n_channels": "many"}, ["radio.n_channels", "many", "integer"]),
    ({"dynamics__frame_s": 0.0105}, ["dynamics.frame_s", "tick_s"]),
    ({"traffic__delay_budget_s": 0.0}, ["traffic.delay_budget_s", "(0.0"]),
    ({"radio__bs_array": [8, 0]}, ["radio.bs_array", "[1"]),
    ({"radio__bs_tx_power_dbm": float("nan")}, ["radio.bs_tx_power_dbm", "finite"]),
])
def test_bad_values_name_field_value_and_range(change, words):
    with pytest.raises(ConfigError) as exc:
        ScenarioConfig().replace(**change)
    for w in words:
        assert w in str(exc.value)


def test_unknown_field_is_refused():
    with pytest.raises(ConfigError, match="radio.carrier_mhz"):
        ScenarioConfig().replace(radio__carrier_mhz=28000)


def test_toml_yaml_and_overrides(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text("[scenario.topology]\nn_ue = 12\n[scenario.radio]\nn_channels = 4\n")
    c = load_config(toml, ["radio.carrier_ghz=39", "topology.topology=chain"])
    assert (c.topology.n_ue, c.radio.n_channels, c.radio.carrier_ghz) == (12, 4, 39.0)
    assert c.topology.topology == "chain"
    yml = tmp_path / "s.yaml"
    yml.write_text("topology:\n  n_ue: 9\n")
    assert load_config(yml).topology.n_ue == 9
    bad = tmp_path / "b.toml"
    bad.write_text("[scenario.radio]\nn_channels = -3\n")
    with pytest.raises(ConfigError, match=r"radio.n_channels=-3"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="section.field=value"):
        load_config(None, ["radio.carrier_ghz"])


def test_round_trip_through_dict():
    c = ScenarioConfig().replace(topology__n_ue=7, radio__deterministic=True)
    assert ScenarioConfig.from_dict(c.to_dict()) == c


def test_task_splits_are_disjoint_and_sampling_is_seeded():
    dist = TaskDistribution()
    train = dist.sample("train", seed=5, n=50)
    test = dist.sample("test", seed=5, n=50)
    assert train == dist.sample("train", seed=5, n=50)
    assert train != dist.sample("train", seed=6, n=50)
    assert all(dist.contains("train", t) and not dist.contains("test", t) for t in train)
    assert all(dist.contains("test", t) and not dist.contains("train", t) for t in test)


def test_overlapping_ranges_are_refused():
    with pytest.raises(ConfigError, match="overlaps"):
        TaskDistribution.from_dict({"test": {"ue_speed_mps": [[0.5, 2.0]]}})
    with pytest.raises(ConfigError, match="tasks.train.n_ue"):
        TaskDistribution.from_dict({"train": {"n_ue": [[8, 40]]}})
    with pytest.raises(ConfigError, match="unknown task dimension"):
        TaskDistribution.from_dict({"train": {"speed": [[0, 1]]}})


def test_task_applies_to_config():
    task = Task(n_ue=10, ue_speed_mps=3.0, ue_rate_mbps=50.0, blockage_prob=0.2,
                incumbent_activity=0.1, topology="chain")
    c = task.apply(ScenarioConfig())
    assert c.topology.n_ue == 10 and c.topology.topology == "chain"
    assert Task.from_config(c) == task
