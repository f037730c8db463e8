"""Per-link path loss and LOS probability: the ns-3 scenario, the numpy twin and TR 38.901.

The expected values are computed here from Table 7.4.1-1 / 7.4.2-1 (UMi street canyon), not by
the twin's functions, so a mistake shared by both backends would fail too. ns-3 3.44's
``ThreeGppUmiStreetCanyonPropagationLossModel`` used to be called base station first, which
gave NLOS losses 0.3 (h_BS - h_UT) dB too high whenever neither node is at 10 m.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bridge.config import ScenarioConfig
from bridge.instance import generate_instance
from bridge.model.channel import umi_los_probability, umi_pathloss_db
from bridge.ns3.build import scenario_binary

pytestmark = pytest.mark.ns3

SPEED_OF_LIGHT_MPS = 299_792_458.0
# UE distances from the donor: below the model's 10 m (both backends clamp the 2D distance to
# [10 m, 5 km]), near the edge, the LOS-probability knee (18 m), the usual range, beyond the
# LOS breakpoint d_BP' (about 1.7 km at 28 GHz, 10 m / 1.5 m) and beyond 5 km
UE_DISTANCES_M = (4.0, 11.0, 18.0, 40.0, 120.0, 600.0, 2500.0, 4500.0, 5600.0)


def tr38901_umi_db(d2d: float, h_bs: float, h_ut: float, fc_ghz: float, los: bool) -> float:
    """TR 38.901 Table 7.4.1-1, UMi street canyon, written out independently of the twin."""
    d3d = math.sqrt(d2d * d2d + (h_bs - h_ut) ** 2)
    breakpoint_m = 4.0 * (h_bs - 1.0) * (h_ut - 1.0) * fc_ghz * 1e9 / SPEED_OF_LIGHT_MPS
    if d2d <= breakpoint_m:
        pl_los = 32.4 + 21.0 * math.log10(d3d) + 20.0 * math.log10(fc_ghz)
    else:
        pl_los = (32.4 + 40.0 * math.log10(d3d) + 20.0 * math.log10(fc_ghz)
                  - 9.5 * math.log10(breakpoint_m ** 2 + (h_bs - h_ut) ** 2))
    if los:
        return pl_los
    pl_nlos = 35.3 * math.log10(d3d) + 22.4 + 21.3 * math.log10(fc_ghz) - 0.3 * (h_ut - 1.5)
    return max(pl_los, pl_nlos)


def tr38901_umi_los_probability(d2d: float) -> float:
    """TR 38.901 Table 7.4.2-1, UMi street canyon."""
    if d2d <= 18.0:
        return 1.0
    return 18.0 / d2d + math.exp(-d2d / 36.0) * (1.0 - 18.0 / d2d)


def path_loss_report(binary: Path, h_bs: float, h_ut: float, tmp_path: Path) -> tuple[
        list[dict], dict]:
    """Run ``iab-scenario --pathLossReport`` on a deployment whose UEs sit at
    UE_DISTANCES_M from the donor; return its rows and the instance dict."""
    config = ScenarioConfig().replace(
        topology__n_iab=2, topology__max_iab=2, topology__n_ue=len(UE_DISTANCES_M),
        topology__max_ues=len(UE_DISTANCES_M), topology__bs_height_m=h_bs,
        topology__ue_height_m=h_ut, radio__n_channels=2)
    data = generate_instance(config, seed=5).to_dict()
    angles = np.linspace(0.3, 5.9, len(UE_DISTANCES_M))
    data["ue_xyz"] = [[d * math.cos(a), d * math.sin(a), h_ut]
                      for d, a in zip(UE_DISTANCES_M, angles, strict=True)]
    data["ue_parent"] = [0] * len(UE_DISTANCES_M)
    data["ue_hops"] = [[2 + u] for u in range(len(UE_DISTANCES_M))]
    path = tmp_path / f"instance-{h_bs}-{h_ut}.json"
    path.write_text(json.dumps(data))
    out = subprocess.run([str(binary), f"--instance={path}", "--pathLossReport"],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), data


@pytest.mark.parametrize(("h_bs", "h_ut"), [(10.0, 1.5), (15.0, 1.75), (20.0, 1.5), (6.0, 2.0)])
def test_scenario_and_twin_path_loss_match_tr38901(scenario_build_dir: Path, tmp_path: Path,
                                                   h_bs: float, h_ut: float) -> None:
    binary = scenario_binary("iab-scenario", scenario_build_dir)
    rows, data = path_loss_report(binary, h_bs, h_ut, tmp_path)
    bs_xyz, ue_xyz = np.array(data["bs_xyz"]), np.array(data["ue_xyz"])
    max_iab = data["config"]["topology"]["max_iab"]
    # every (base station, receiver) pair but an IAB node's own DU -> MT
    n_bs, n_iab, n_ue = len(bs_xyz), len(bs_xyz) - 1, len(ue_xyz)
    assert len(rows) == n_bs * (n_iab + n_ue) - n_iab
    checked = 0
    for row in rows:
        b, link = row["bs"], row["link"]
        rx = bs_xyz[link + 1] if link < max_iab else ue_xyz[link - max_iab]
        d2d = float(np.hypot(*(rx[:2] - bs_xyz[b][:2])))
        # the report's geometry is the instance's (MTs at base-station height)
        assert row["d2d_m"] == pytest.approx(d2d, rel=1e-9)
        assert row["h_bs_m"] == h_bs and row["h_rx_m"] == (h_bs if link < max_iab else h_ut)
        h_rx = row["h_rx_m"]
        d_model = min(max(d2d, 10.0), 5000.0)  # TR 38.901's validity range
        for los, key in ((True, "loss_los_db"), (False, "loss_nlos_db")):
            expected = tr38901_umi_db(d_model, h_bs, h_rx, 28.0, los)
            twin = float(umi_pathloss_db(d2d, h_bs, h_rx, 28.0, los))
            assert row[key] == pytest.approx(expected, abs=0.01), (row, los, expected)
            assert twin == pytest.approx(expected, abs=1e-6), (row, los)
        expected_p = tr38901_umi_los_probability(d2d)
        assert row["los_probability"] == pytest.approx(expected_p, abs=1e-12)
        assert float(umi_los_probability(d2d)) == pytest.approx(expected_p, abs=1e-12)
        checked += 1
    assert checked == len(rows)
    # both regimes of the LOS formula and NLOS above LOS were exercised
    assert any(r["d2d_m"] > 4 * (h_bs - 1) * (h_ut - 1) * 28e9 / SPEED_OF_LIGHT_MPS
               for r in rows)
    assert all(r["loss_nlos_db"] >= r["loss_los_db"] - 1e-9 for r in rows)
