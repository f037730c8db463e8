"""ns3-gym compatible wire protocol: generated protobuf module, codec and protocol errors."""

from bridge.protocol.errors import ProtocolError

__all__ = ["ProtocolError"]
