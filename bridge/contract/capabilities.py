"""Optional capabilities of the contract that expose what the observation hides (for the
baselines that are allowed to know it): the hidden deployment conditions of the current frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HiddenConditions:
    """The hidden deployment conditions of N environments (docs/system-model.md, *Hidden
    deployment conditions*), as a per-task oracle may know them: no realisation of this
    frame's draws (interferer on/off, fading), only the deployment's parameters and the true
    incumbent state that perfect sensing would report.

    ``external_mw`` (N, L, K): the interferer's activity-weighted mean power at the receiver
    of link l on channel k, mW (0 off its channels and on links that do not exist);
    ``external_channels`` (N, K) bool: the channels it occupies; ``noise_mw`` (N, L): the
    receiver noise power of every link per channel, mW; ``incumbent`` (N, K) bool: the true
    incumbent state of the last frame (what ``observation``'s report shows when sensing
    misses nothing)."""

    external_mw: np.ndarray
    external_channels: np.ndarray
    noise_mw: np.ndarray
    incumbent: np.ndarray

    def external_loss_db(self) -> np.ndarray:
        """(N, L, K) dB the mean external power takes off each link's interference-free
        SNR: ``10 log10(1 + I_ext / N)``."""
        return 10 * np.log10(1 + self.external_mw / self.noise_mw[..., None])
