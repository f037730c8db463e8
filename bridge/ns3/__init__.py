"""ns-3 backend: scenario processes, the ns3-gym protocol connection, Gymnasium envs, build."""

from bridge.ns3.connection import (
    EnvState,
    OpenGymConnection,
    SimInit,
    SimulatorDied,
    SimulatorError,
    SimulatorTimeout,
)
from bridge.ns3.env import Ns3GymEnv, parse_info
from bridge.ns3.process import ScenarioProcess
from bridge.ns3.vector_env import Ns3VectorEnv
from bridge.protocol.errors import ProtocolError

__all__ = [
    "EnvState",
    "Ns3GymEnv",
    "Ns3VectorEnv",
    "OpenGymConnection",
    "ProtocolError",
    "ScenarioProcess",
    "SimInit",
    "SimulatorDied",
    "SimulatorError",
    "SimulatorTimeout",
    "parse_info",
]
