"""The one error hierarchy of the environment contract: failures of an environment itself."""

from __future__ import annotations


class EnvironmentFailure(RuntimeError):
    """An environment failed, as opposed to bad input (``ValueError``) or a bug.

    A simulator process that died, hung or spoke garbage (:class:`bridge.ns3.connection.
    SimulatorError`, :class:`bridge.protocol.errors.ProtocolError`, a peer that closed its
    socket) or a shard worker of the batched simulator that died
    (:class:`bridge.fallback.sharded.ShardWorkerError`). Rollout code catches this one class
    and re-runs the job on a fresh environment, whichever backend raised it.
    """


class CapabilityUnavailable(NotImplementedError):
    """The backend does not offer an optional capability of the contract (e.g. frame replay
    for the exhaustive upper bound on ns-3); the message names the backend and the capability.
    Deliberately not an :class:`EnvironmentFailure`: a fresh environment of the same backend
    would lack it too, so rollouts must not retry; callers check ``supports_frame_replay``."""
