"""Regenerate ns3opengym_pb2.py from ns3opengym.proto with grpcio-tools' bundled protoc."""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
PROTO_FILE = PROTO_DIR / "ns3opengym.proto"


def regenerate() -> Path:
    """Run grpc_tools.protoc on ns3opengym.proto; return the path of the generated module.

    The protoc bundled with grpcio-tools matches the protobuf 5+/7.x Python runtime; Debian's
    protoc 3.21 output is too old for that runtime (it is used for the C++ side only).
    """
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - depends on the dev extra
        raise RuntimeError(
            "grpcio-tools is needed to regenerate the protobuf module: pip install grpcio-tools"
        ) from exc
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={PROTO_DIR}",
        f"--pyi_out={PROTO_DIR}",
        str(PROTO_FILE),
    ]
    status = protoc.main(args)
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status} on {PROTO_FILE}")
    return PROTO_DIR / "ns3opengym_pb2.py"


if __name__ == "__main__":
    print(regenerate())
    sys.exit(0)
