"""Channel model of both backends: TR 38.901 UMi street canyon, UPA beams, fading, SE.

Everything here is vectorised over arbitrary leading dimensions. Powers are in dB unless the
name says ``_lin``. References: 3GPP TR 38.901 V17 Table 7.4.1-1 (path loss), Table 7.4.2-1
(LOS probability), Table 7.5-6 (shadowing/K-factor correlation parameters).
"""

from __future__ import annotations

import numpy as np

SPEED_OF_LIGHT_MPS = 299_792_458.0
UMI_EFFECTIVE_ENV_HEIGHT_M = 1.0


def umi_pathloss_db(d2d_m: np.ndarray | float, h_bs_m: np.ndarray | float,
                    h_ut_m: np.ndarray | float, fc_ghz: float,
                    los: np.ndarray | bool) -> np.ndarray:
    """Path loss (dB) of TR 38.901 Table 7.4.1-1, scenario UMi - Street Canyon.

    LOS::

        d_BP' = 4 h'_BS h'_UT f_c / c        (h' = h - 1 m, f_c in Hz)
        PL1   = 32.4 + 21 log10(d_3D) + 20 log10(f_c/GHz)                10 m <= d_2D <= d_BP'
        PL2   = 32.4 + 40 log10(d_3D) + 20 log10(f_c/GHz)
                - 9.5 log10(d_BP'^2 + (h_BS - h_UT)^2)                   d_BP' <= d_2D <= 5 km

    NLOS::

        PL'_NLOS = 35.3 log10(d_3D) + 22.4 + 21.3 log10(f_c/GHz) - 0.3 (h_UT - 1.5)
        PL_NLOS  = max(PL_LOS, PL'_NLOS)

    ``d2d_m`` is clamped to the model's validity range [10 m, 5 km]; shadowing is not included
    (sigma_SF = 4 dB LOS, 7.82 dB NLOS, applied by the caller).
    """
    d2d = np.clip(np.asarray(d2d_m, dtype=np.float64), 10.0, 5000.0)
    h_bs = np.asarray(h_bs_m, dtype=np.float64)
    h_ut = np.asarray(h_ut_m, dtype=np.float64)
    d3d = np.sqrt(d2d**2 + (h_bs - h_ut) ** 2)
    fc_hz = fc_ghz * 1e9
    d_bp = (4.0 * (h_bs - UMI_EFFECTIVE_ENV_HEIGHT_M) * (h_ut - UMI_EFFECTIVE_ENV_HEIGHT_M)
            * fc_hz / SPEED_OF_LIGHT_MPS)
    log_fc = np.log10(fc_ghz)
    log_d3d = np.log10(d3d)  # once for the three formulas (the same values)
    pl1 = 32.4 + 21.0 * log_d3d + 20.0 * log_fc
    pl2 = (32.4 + 40.0 * log_d3d + 20.0 * log_fc
           - 9.5 * np.log10(d_bp**2 + (h_bs - h_ut) ** 2))
    pl_los = np.where(d2d <= d_bp, pl1, pl2)
    pl_nlos_prime = 35.3 * log_d3d + 22.4 + 21.3 * log_fc - 0.3 * (h_ut - 1.5)
    pl_nlos = np.maximum(pl_los, pl_nlos_prime)
    return np.where(np.asarray(los, dtype=bool), pl_los, pl_nlos)


def umi_los_probability(d2d_m: np.ndarray | float) -> np.ndarray:
    """LOS probability of TR 38.901 Table 7.4.2-1, UMi - Street Canyon:
    1 for d_2D <= 18 m, else 18/d_2D + exp(-d_2D/36) (1 - 18/d_2D)."""
    d = np.maximum(np.asarray(d2d_m, dtype=np.float64), 1e-9)
    far = 18.0 / d + np.exp(-d / 36.0) * (1.0 - 18.0 / d)
    return np.where(d <= 18.0, 1.0, far)


def mean_pathloss_db(d2d_m: np.ndarray | float, h_bs_m: np.ndarray | float,
                     h_ut_m: np.ndarray | float, fc_ghz: float) -> np.ndarray:
    """LOS-probability-weighted mean path loss (linear average of the LOS/NLOS gains)."""
    p = umi_los_probability(d2d_m)
    g_los = 10 ** (-umi_pathloss_db(d2d_m, h_bs_m, h_ut_m, fc_ghz, True) / 10)
    g_nlos = 10 ** (-umi_pathloss_db(d2d_m, h_bs_m, h_ut_m, fc_ghz, False) / 10)
    return -10 * np.log10(p * g_los + (1 - p) * g_nlos)


def _dirichlet_sq(x: np.ndarray, n: int) -> np.ndarray:
    """|sum_{i<n} exp(2j i x)|^2 = sin^2(n x) / sin^2(x), with its limit n^2 at x -> 0."""
    s = np.sin(x)
    small = np.abs(s) < 1e-6
    ratio = np.sin(n * x) / np.where(small, 1.0, s)
    ratio *= ratio
    return np.where(small, n * n, ratio)


def upa_gain_db(direction: np.ndarray, boresight: np.ndarray, rows: int, cols: int
                ) -> np.ndarray:
    """:func:`upa_gain_lin` in dBi."""
    return 10.0 * np.log10(np.maximum(upa_gain_lin(direction, boresight, rows, cols), 1e-30))


def upa_gain_lin(direction: np.ndarray, boresight: np.ndarray, rows: int, cols: int
                 ) -> np.ndarray:
    """Array gain (dBi) of a half-wavelength UPA of isotropic elements whose beam is steered
    toward ``boresight``, seen from ``direction`` (both unit vectors, last axis xyz).

    The panel is oriented so that the steering target is its broadside (the bearing/down-tilt
    of the panel follow the target), columns horizontal and rows along the panel's up axis. The
    gain is ``|a(d)^H w|^2`` with ``w`` the normalised steering vector, i.e.
    ``D_cols(pi p/2) D_rows(pi q/2) / (rows cols)`` where p, q are the direction's components on
    the panel's horizontal and vertical axes; the peak is ``10 log10(rows cols)``.
    """
    p, q = panel_coordinates(
        (direction[..., 0], direction[..., 1], direction[..., 2]),
        (boresight[..., 0], boresight[..., 1], boresight[..., 2]))
    return upa_gain_pq(p, q, rows, cols)


def panel_coordinates(direction: tuple[np.ndarray, np.ndarray, np.ndarray],
                      boresight: tuple[np.ndarray, np.ndarray, np.ndarray]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Components (p, q) of unit vectors ``direction`` (x, y, z arrays) on the horizontal and
    vertical axes of a panel whose broadside is ``boresight``: y' = z x b / |z x b| and
    z' = b x y'."""
    bx, by, bz = boresight
    horiz = np.sqrt(bx * bx + by * by)
    horiz = np.where(horiz < 1e-12, 1.0, horiz)
    yx, yy = -by / horiz, bx / horiz
    zx = -bz * yy
    zy = bz * yx
    zz = bx * yy - by * yx
    dx, dy, dz = direction
    p = dx * yx + dy * yy
    q = dx * zx + dy * zy + dz * zz
    return p, q


def upa_gain_pq(p: np.ndarray, q: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Linear UPA gain from panel coordinates: D_cols(pi p/2) D_rows(pi q/2) / (rows cols)."""
    half_pi = p.dtype.type(0.5 * np.pi) if p.dtype.kind == "f" else 0.5 * np.pi
    g = _dirichlet_sq(half_pi * p, cols)
    g *= _dirichlet_sq(half_pi * q, rows)
    g /= rows * cols
    return g


def spectral_efficiency(sinr_db: np.ndarray, efficiency: float = 0.6, cap: float = 7.4063,
                        min_sinr_db: float = -10.0) -> np.ndarray:
    """Attenuated, truncated Shannon: 0 below ``min_sinr_db``, else
    ``min(efficiency log2(1 + SINR), cap)`` in b/s/Hz."""
    sinr_db = np.asarray(sinr_db)
    if sinr_db.ndim == 0:
        se = efficiency * np.log2(1.0 + np.power(10.0, 0.1 * sinr_db))
        return np.where(sinr_db < min_sinr_db, 0.0, np.minimum(se, cap))
    # below the threshold the result is 0 whatever the power: raising them (and -inf, idle)
    # to just under it keeps pow off its slow path for special values (the same results)
    se = np.maximum(sinr_db, min_sinr_db - 1.0)
    se *= 0.1
    np.power(10.0, se, out=se)
    se += 1.0
    np.log2(se, out=se)
    se *= efficiency
    np.minimum(se, cap, out=se)
    # 0 below the threshold: se >= 0, so a product with the flag equals the select
    se *= sinr_db >= min_sinr_db
    return se


def noise_dbm(bandwidth_hz: float, noise_figure_db: np.ndarray | float) -> np.ndarray:
    """Thermal noise power (dBm) over ``bandwidth_hz``: -174 dBm/Hz + 10 log10(B) + NF."""
    return -174.0 + 10.0 * np.log10(bandwidth_hz) + np.asarray(noise_figure_db, dtype=np.float64)


def coherence_frames(speed_mps: np.ndarray, fc_ghz: float, frame_s: float) -> np.ndarray:
    """Frames over which block fading is held: Clarke's coherence time 0.423 / f_D, at least
    one frame. ``speed_mps`` is the relative speed (UE speed plus the scatterers')."""
    wavelength = SPEED_OF_LIGHT_MPS / (fc_ghz * 1e9)
    doppler = np.maximum(np.asarray(speed_mps, dtype=np.float64), 1e-6) / wavelength
    return np.maximum(1, np.floor(0.423 / doppler / frame_s)).astype(np.int64)


def fading_quantiles(rician_k_db: float, size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Quantile tables (linear power, unit mean) of Rician (LOS, K-factor ``rician_k_db``) and
    Rayleigh (NLOS) small-scale fading, for inverse-CDF sampling from uniform words."""
    u = (np.arange(size) + 0.5) / size
    rayleigh = -np.log1p(-u)
    k = 10.0 ** (rician_k_db / 10.0)
    rng = np.random.default_rng(0x5EED)
    n = 1 << 18
    h = (np.sqrt(k / (k + 1.0))
         + np.sqrt(1.0 / (2.0 * (k + 1.0))) * (rng.standard_normal(n)
                                              + 1j * rng.standard_normal(n)))
    power = np.sort(np.abs(h) ** 2)
    rician = power[np.minimum((u * n).astype(np.int64), n - 1)]
    return rician / rician.mean(), rayleigh / rayleigh.mean()
