"""TR 38.901 path loss, LOS probability, beam gains and the spectral-efficiency mapping."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.model.channel import (
    noise_dbm,
    spectral_efficiency,
    umi_los_probability,
    umi_pathloss_db,
    upa_gain_db,
)

# Values worked by hand from Table 7.4.1-1 (UMi street canyon) at f_c = 28 GHz:
#  d2D=100 m, hBS=10, hUT=1.5: d3D = sqrt(100^2 + 8.5^2) = 100.3606 m, log10 = 2.001563
#    LOS  PL1 = 32.4 + 21*2.001563 + 20*log10(28)=28.943160          = 103.3760
#    NLOS PL' = 35.3*2.001563 + 22.4 + 21.3*1.447158 - 0        = 123.8796 (> LOS)
#  d2D=3000 m: d_BP' = 4*9*0.5*28e9/c = 1681.16 m < d2D, so PL2:
#    32.4 + 40*log10(3000.012) + 28.943160 - 9.5*log10(1681.16^2 + 8.5^2)  = 139.1414
#  backhaul d2D=150 m, hBS=hUT=10 m: d3D = 150, PL1 = 32.4 + 21*2.176091 + 28.943160 = 107.0411
#  d2D=10 m (edge of validity): d3D = 13.1244, PL1 = 84.8228, NLOS' = 92.6927
HAND = [
    (100.0, 10.0, 1.5, True, 103.3760),
    (100.0, 10.0, 1.5, False, 123.8796),
    (3000.0, 10.0, 1.5, True, 139.1414),
    (3000.0, 10.0, 1.5, False, 175.9669),
    (150.0, 10.0, 10.0, True, 107.0411),
    (150.0, 10.0, 10.0, False, 127.4905),
    (10.0, 10.0, 1.5, True, 84.8228),
    (10.0, 10.0, 1.5, False, 92.6927),
]


@pytest.mark.parametrize(("d2d", "hbs", "hut", "los", "expected"), HAND)
def test_umi_pathloss_matches_hand_computation(d2d, hbs, hut, los, expected):
    assert float(umi_pathloss_db(d2d, hbs, hut, 28.0, los)) == pytest.approx(expected, abs=1e-3)


def test_pathloss_is_vectorised_and_monotone_in_distance():
    d = np.linspace(10, 1000, 50)
    for los in (True, False):
        pl = umi_pathloss_db(d, 10.0, 1.5, 28.0, los)
        assert pl.shape == d.shape
        assert np.all(np.diff(pl) > 0)
    assert np.all(umi_pathloss_db(d, 10.0, 1.5, 28.0, False)
                  >= umi_pathloss_db(d, 10.0, 1.5, 28.0, True))


def test_los_probability_table_7_4_2_1():
    assert float(umi_los_probability(10.0)) == 1.0
    assert float(umi_los_probability(18.0)) == 1.0
    # 18/50 + exp(-50/36)*(1 - 18/50) = 0.36 + 0.249372*0.64
    assert float(umi_los_probability(50.0)) == pytest.approx(0.519585, abs=1e-5)
    assert float(umi_los_probability(100.0)) == pytest.approx(0.230985, abs=1e-5)


@pytest.mark.parametrize(("rows", "cols"), [(8, 8), (4, 4), (1, 4), (2, 8)])
def test_upa_peak_gain_is_element_count(rows, cols):
    rng = np.random.default_rng(1)
    for _ in range(5):
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        assert float(upa_gain_db(v, v, rows, cols)) == pytest.approx(
            10 * np.log10(rows * cols), abs=1e-9)


def test_upa_off_axis_gain_is_lower_and_nulls_exist():
    bore = np.array([1.0, 0.0, 0.0])
    az = np.radians(np.linspace(1, 80, 200))
    dirs = np.stack([np.cos(az), np.sin(az), np.zeros_like(az)], axis=-1)
    g = upa_gain_db(dirs, bore, 8, 8)
    assert np.all(g < 10 * np.log10(64))
    # first null of an 8-element half-wavelength array: sin(theta) = 2/8
    null = np.degrees(np.arcsin(0.25))
    g_null = upa_gain_db(np.array([np.cos(np.radians(null)), np.sin(np.radians(null)), 0]),
                         bore, 8, 8)
    assert float(g_null) < -40


def test_spectral_efficiency_mapping():
    assert float(spectral_efficiency(-10.5)) == 0.0
    assert float(spectral_efficiency(0.0)) == pytest.approx(0.6)
    assert float(spectral_efficiency(10.0)) == pytest.approx(0.6 * np.log2(11.0))
    assert float(spectral_efficiency(60.0)) == pytest.approx(7.4063)


def test_spectral_efficiency_array_path_equals_its_definition():
    # the array path multiplies by the threshold flag instead of selecting: the same bits
    sinr = np.array([-np.inf, -100.0, -10.0001, -10.0, -3.2, 0.0, 17.5, 60.0, np.inf, np.nan])
    got = spectral_efficiency(sinr)
    se = 0.6 * np.log2(1.0 + np.power(10.0, 0.1 * sinr))
    with np.errstate(invalid="ignore"):
        want = np.where(sinr < -10.0, 0.0, np.minimum(se, 7.4063))
    assert got.tobytes() == want.tobytes()


def test_noise_power():
    # -174 dBm/Hz + 10 log10(50e6) + 9 dB = -174 + 76.9897 + 9
    assert float(noise_dbm(50e6, 9.0)) == pytest.approx(-88.0103, abs=1e-4)


def test_jain_index_definition():
    from bridge.metrics import jain_index

    assert float(jain_index(np.array([3.0, 3.0, 3.0]))) == pytest.approx(1.0)
    assert float(jain_index(np.array([1.0, 0.0, 0.0, 0.0]))) == pytest.approx(0.25)
    assert float(jain_index(np.zeros(4))) == 0.0  # an idle network earns no fairness
    valid = np.array([True, True, False])
    assert float(jain_index(np.array([2.0, 2.0, 100.0]), valid)) == pytest.approx(1.0)
