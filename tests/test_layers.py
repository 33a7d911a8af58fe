"""Imports go one way: transport -> use cases -> adapters -> pure formats."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "signer"
# layer of each subpackage; a module may import only from its own layer or lower ones
LAYERS = {"gbcs": 0, "smki": 0, "duis": 0, "cpl": 0, "hsm": 1, "registry": 1, "service": 2,
          "api": 3, "cli": 3}
SHARED = {"errors", "clock", "config", "caller", "metrics"}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("signer"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("signer"))
    return out


@pytest.mark.parametrize("sub", sorted(LAYERS))
def test_imports_point_down(sub: str) -> None:
    for path in (PACKAGE / sub).rglob("*.py"):
        if "_proto" in path.parts or "migrations" in path.parts:
            continue
        for mod in _imports(path):
            parts = mod.split(".")
            if len(parts) < 2 or parts[1] in SHARED:
                continue
            assert LAYERS[parts[1]] <= LAYERS[sub], f"{path.relative_to(PACKAGE)} imports {mod}"


def test_only_the_hsm_door_imports_pkcs11() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "hsm":
            continue
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(n == "pkcs11" or n.startswith("pkcs11.") for n in names), path


def test_pure_formats_do_no_io() -> None:
    for sub in ("gbcs", "smki", "duis", "cpl"):
        for path in (PACKAGE / sub).rglob("*.py"):
            text = path.read_text()
            for banned in ("open(", "read_bytes(", "read_text(", "subprocess", "socket",
                           "datetime.now", "import pkcs11", "sqlalchemy", "import grpc"):
                if path.name == "schema.py" and banned in ("open(", "read_bytes("):
                    continue  # the DUIS schema is loaded once from the configured directory
                assert banned not in text, f"{path.relative_to(PACKAGE)} uses {banned}"
