"""signer.cpl is pure code (design principle 6): no I/O, no clock, nothing above it imported."""

from __future__ import annotations

import ast
from pathlib import Path

CPL = Path(__file__).resolve().parents[2] / "signer" / "cpl"


def test_cpl_does_no_io_and_imports_only_errors_and_itself() -> None:
    files = sorted(CPL.glob("*.py"))
    assert {f.name for f in files} >= {"model.py", "parse.py", "paths.py", "dot.py"}
    for path in files:
        text = path.read_text()
        for banned in ("open(", "read_text(", "read_bytes(", "subprocess", "socket",
                       "datetime", "import time", "sqlalchemy", "grpc", "pkcs11"):
            assert banned not in text, f"{path.name} uses {banned}"
        for node in ast.walk(ast.parse(text)):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("signer"):
                    assert name == "signer.errors" or name.startswith("signer.cpl"), (
                        f"{path.name} imports {name}")
