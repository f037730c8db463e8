"""The scenario's faster 3GPP channel generation (IabThreeGppChannelModel) and per-band gains
(IabSpectrumPropagationLossModel::BandGains) against ns-3's own GetNewChannel and
CalcBeamformingGain: every matrix, every evaluation and whole episodes, bit for bit with
GridPhases=false; with the default grid-factored element phases every matrix to within
1e-12 of its largest coefficient."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.ns3_env import largest_backlog
from bridge.config import ScenarioConfig
from bridge.ns3.build import scenario_binary
from bridge.ns3.iab_env import Ns3IABVectorEnv

pytestmark = pytest.mark.ns3

# fast UEs (the top of the training speed range): after 70 frames a UE has moved 10.5 m, so
# every UE's channels are generated anew mid-episode, and LOS states change on the way;
# blockage adds NLOS pairs next to the LOS backhaul
FAST = {"topology__n_iab": 2, "topology__n_ue": 8, "dynamics__episode_frames": 80,
        "dynamics__ue_speed_mps": 15.0, "radio__blockage_prob": 0.3}
FLAG = "--ns3::IabThreeGppChannelModel::"
EXACT = f"{FLAG}GridPhases=false"  # ns-3's own element phase evaluation, bit-identical


@pytest.fixture(scope="module")
def iab_binary(scenario_build_dir: Path) -> Path:
    return scenario_binary("iab-scenario", scenario_build_dir)


def run_episode(binary: Path, args: list[str], seed: int = 5
                ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Observations and rewards of one largest-backlog episode, and its last info."""
    env = Ns3IABVectorEnv(1, ScenarioConfig().replace(**FAST), binary=binary,
                          scenario_args=args)
    try:
        obs, info = env.reset(seed=seed)
        observations, rewards = [obs.copy()], []
        done = False
        while not done:
            obs, reward, _, trunc, info = env.step(
                largest_backlog(obs, info["action_mask"], env.layout))
            observations.append(obs.copy())
            rewards.append(reward.copy())
            done = bool(trunc[0])
        last = env._sessions[0].last_info  # noqa: SLF001 - the scenario's episode report
        return np.array(observations), np.array(rewards), last
    finally:
        env.close()


def test_every_generated_matrix_and_band_gain_equals_ns3s(iab_binary: Path) -> None:
    """VerifyAgainstBase runs ns-3's GetNewChannel beside the fast one for every matrix (and
    CalcBeamformingGain beside BandGains for every evaluation) and aborts the scenario on the
    first value that differs in any bit."""
    _, _, last = run_episode(iab_binary, [
        EXACT, f"{FLAG}VerifyAgainstBase=true",
        "--ns3::IabSpectrumPropagationLossModel::VerifyAgainstBase=true"])
    bands = last["band_gains"]
    # every frame re-evaluates the serving links; every geometry update all interferers
    assert bands["verified"] == bands["computed"] > FAST["dynamics__episode_frames"] * 10
    matrices = last["channel_matrices"]
    assert last["channel_refreshes"] >= 8  # every UE's channels were regenerated
    assert matrices["verified"] == matrices["generated"]
    # set-up: (1 + n_iab) DUs x (n_ue + n_iab) receivers at least, then the refreshes
    assert matrices["generated"] > 3 * 10 + 3 * 8


def test_grid_phases_match_ns3s_matrices_to_rounding(iab_binary: Path) -> None:
    """The default grid-factored element phases (rows + columns sine-cosine pairs per ray):
    VerifyAgainstBase aborts the scenario unless every coefficient of every matrix is within
    1e-12 of the matrix's largest coefficient of ns-3's GetNewChannel; the episode's
    observations and rewards agree with the exact evaluation's to float32 rounding."""
    obs_grid, rew_grid, last = run_episode(iab_binary, [f"{FLAG}VerifyAgainstBase=true"])
    matrices = last["channel_matrices"]
    assert matrices["verified"] == matrices["generated"] > 3 * 10 + 3 * 8
    obs_exact, rew_exact, _ = run_episode(iab_binary, [EXACT])
    np.testing.assert_allclose(obs_grid, obs_exact, rtol=0, atol=1e-5)
    np.testing.assert_allclose(rew_grid, rew_exact, rtol=0, atol=1e-6)


def test_episodes_are_bit_identical_to_ns3s_generation(iab_binary: Path) -> None:
    """The same episode with ns-3's own GetNewChannel (FastGeneration=false): observations and
    rewards equal to the last bit, so the speed-up changes no result."""
    obs_fast, rew_fast, last_fast = run_episode(iab_binary, [EXACT])
    obs_ns3, rew_ns3, last_ns3 = run_episode(iab_binary, [f"{FLAG}FastGeneration=false"])
    assert last_fast["channel_matrices"]["generated"] == \
        last_ns3["channel_matrices"]["generated"]
    assert obs_fast.shape == obs_ns3.shape and obs_fast.shape[0] == FAST[
        "dynamics__episode_frames"] + 1
    np.testing.assert_array_equal(obs_fast, obs_ns3)
    np.testing.assert_array_equal(rew_fast, rew_ns3)
    assert last_fast["episode"] == last_ns3["episode"]
