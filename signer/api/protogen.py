"""Regenerate the committed gRPC stubs from proto/ (needs grpcio-tools, a dev dependency)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
PROTO_FILE = "signer/v1/signer.proto"
OUT_DIR = Path(__file__).parent / "_proto"


def compile_proto(out_dir: Path, *, descriptor_set: Path | None = None) -> None:
    import grpc_tools
    from grpc_tools import protoc  # dev dependency only

    well_known = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/*.proto
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
    ]
    if descriptor_set is not None:
        args.append(f"--descriptor_set_out={descriptor_set}")
    if protoc.main([*args, str(PROTO_DIR / PROTO_FILE)]) != 0:
        raise RuntimeError("protoc failed")
    grpc_file = out_dir / "signer" / "v1" / "signer_pb2_grpc.py"
    text = grpc_file.read_text()
    # protoc writes absolute imports from the proto package; ours lives under signer.api._proto
    grpc_file.write_text(
        text.replace("from signer.v1 import", "from signer.api._proto.signer.v1 import")
    )
    for pkg in (out_dir / "signer", out_dir / "signer" / "v1"):
        (pkg / "__init__.py").touch()


def main() -> int:
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "__init__.py").touch()
    compile_proto(OUT_DIR)
    print(f"stubs written to {OUT_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
