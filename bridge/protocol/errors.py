"""Errors raised when a peer's message does not follow the ns3opengym protocol."""

from __future__ import annotations

from bridge.contract.errors import EnvironmentFailure


class ProtocolError(EnvironmentFailure):
    """A message from the peer is malformed or out of sequence.

    The message names what was expected and what arrived, e.g. ``expected Any of type
    ns3opengym.BoxDataContainer, got type.googleapis.com/ns3opengym.DiscreteDataContainer``.
    """
