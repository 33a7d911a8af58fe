"""Imports go one way: transport -> use cases -> adapters -> pure formats."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "signer"
# layer of each subpackage; a module may import only from its own layer or lower ones
LAYERS = {
    "gbcs": 0,
    "smki": 0,
    "duis": 0,
    "cpl": 0,
    "preflight": 0,  # pure, and independent of the other pure formats (test below)
    "hsm": 1,
    "registry": 1,
    "service": 2,
    "api": 3,
    "cli": 3,
}
SHARED = {
    "errors",
    "clock",
    "config",
    "caller",
    "metrics",
    "limits",
    "helper_thread",
    "__version__",
}
# adapters a transport reaches only through the use cases: the CLI opens neither the
# database nor the token itself, so every command runs the same checks as the API
THROUGH_USE_CASES = {"cli": {"registry", "hsm"}}


def _imports(path: Path) -> set[str]:
    return _imported(ast.parse(path.read_text()))


def _imported(tree: ast.AST) -> set[str]:
    """Every signer module named by an import, ``from signer import x`` as ``signer.x``."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "signer":
            out.update(f"signer.{a.name}" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("signer"):
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


@pytest.mark.parametrize("sub", sorted(THROUGH_USE_CASES))
def test_transport_reaches_adapters_only_through_use_cases(sub: str) -> None:
    stray = [
        f"{path.relative_to(PACKAGE)} imports {mod}"
        for path in sorted((PACKAGE / sub).rglob("*.py"))
        for mod in sorted(_imports(path))
        if len(mod.split(".")) > 1 and mod.split(".")[1] in THROUGH_USE_CASES[sub]
    ]
    assert not stray, f"go through signer.service: {stray}"


def test_the_import_check_sees_every_form() -> None:
    tree = ast.parse(
        "import signer.hsm.token\n"
        "from signer import registry\n"
        "from signer.registry.db import open_database\n"
        "def f():\n"
        "    from signer.service import cplops\n"
        "import json\n"
    )
    assert _imported(tree) == {
        "signer.hsm.token",
        "signer.registry",
        "signer.registry.db",
        "signer.service",
    }


# The pre-flight replays the meter's checks in code written apart from the code that made
# the artifacts: from the signer it may use the error hierarchy only, from outside the
# standard library only these.
PREFLIGHT_THIRD_PARTY = {"cryptography", "lxml"}


def _preflight_stray_imports(tree: ast.AST) -> list[str]:
    stray = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = (
                [f"signer.{a.name}" for a in node.names]
                if node.module == "signer"
                else [node.module]
            )
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "signer":
                if not (name == "signer.errors" or name.startswith("signer.preflight")):
                    stray.append(name)
            elif top not in PREFLIGHT_THIRD_PARTY and top not in sys.stdlib_module_names:
                stray.append(name)
    return stray


def test_the_preflight_imports_only_the_standard_library_crypto_lxml_and_errors() -> None:
    paths = sorted((PACKAGE / "preflight").rglob("*.py"))
    assert paths, "signer/preflight is missing"
    stray = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in paths
        for name in _preflight_stray_imports(ast.parse(path.read_text()))
    ]
    assert not stray, f"the pre-flight must stay independent of the code it checks: {stray}"


def test_the_preflight_import_check_sees_a_stray_import() -> None:
    tree = ast.parse(
        "import hashlib\n"
        "from lxml import etree\n"
        "from signer.errors import PolicyRefused\n"
        "from signer.preflight import _ota\n"
        "from signer.gbcs.ota import parse_upgrade_image\n"
        "from signer import duis\n"
        "def f():\n"
        "    import signer.service.resign\n"
        "    import sqlalchemy\n"
    )
    assert _preflight_stray_imports(tree) == [
        "signer.gbcs.ota",
        "signer.duis",
        "signer.service.resign",
        "sqlalchemy",
    ]


def test_only_the_hsm_door_imports_pkcs11() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "hsm":
            continue
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(n == "pkcs11" or n.startswith("pkcs11.") for n in names), path


def test_pure_formats_do_no_io() -> None:
    for sub in ("gbcs", "smki", "duis", "cpl", "preflight"):
        for path in (PACKAGE / sub).rglob("*.py"):
            text = path.read_text()
            for banned in (
                "open(",
                "read_bytes(",
                "read_text(",
                "subprocess",
                "socket",
                "datetime.now",
                "import pkcs11",
                "sqlalchemy",
                "import grpc",
            ):
                if path.name == "schema.py" and banned in ("open(", "read_bytes("):
                    continue  # the DUIS schema is loaded once from the configured directory
                assert banned not in text, f"{path.relative_to(PACKAGE)} uses {banned}"


# Where the token's signing primitive may be reached: the signing door (every signature it
# makes is in the audit trail), the key CSR and the development self-certification (recorded
# as key operations), and the HSM adapter that defines it.
SIGN_DIGEST_ALLOWED = {
    "service/signing.py": None,
    "service/keys/lifecycle.py": {"certificate_request", "self_certify"},
}


PRIMITIVES = ("sign_digest", "sign_digests")  # the token's signing methods


def _sign_digest_uses(tree: ast.AST) -> list[tuple[int, str | None]]:
    """(line, enclosing top-level function) of every reference to (or getattr of) one of the
    token's signing methods."""
    found: list[tuple[int, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and function is None:
            function = node.name
        if isinstance(node, ast.Attribute) and node.attr in PRIMITIVES:
            found.append((node.lineno, function))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and any(isinstance(a, ast.Constant) and a.value in PRIMITIVES for a in node.args)
        ):
            found.append((node.lineno, function))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return found


def test_only_the_signing_door_calls_the_tokens_sign_digest() -> None:
    """A new direct call of ``Token.sign_digest`` would sign without an audit record."""
    stray = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("hsm/") or "_proto" in path.parts:
            continue
        allowed = SIGN_DIGEST_ALLOWED.get(rel, set())
        for line, function in _sign_digest_uses(ast.parse(path.read_text())):
            if allowed is None or function in allowed:
                continue
            stray.append(f"signer/{rel}:{line} ({function or 'module level'})")
    assert not stray, (
        f"call the token through signer.service.signing (SigningBatch), never directly: {stray}"
    )


def test_the_sign_digest_check_finds_a_direct_call() -> None:
    tree = ast.parse(
        "from functools import partial\n"
        "def resign(svc, key, d):\n"
        "    svc.token.sign_digest(key, d)\n"
        "    f = partial(svc.token.sign_digest, key)\n"
        "    g = getattr(svc.token, 'sign_digest')\n"
        "    svc.token.sign_digests(key, [d])\n"
        "    h = getattr(svc.token, 'sign_digests')\n"
    )
    assert _sign_digest_uses(tree) == [
        (3, "resign"),
        (4, "resign"),
        (5, "resign"),
        (6, "resign"),
        (7, "resign"),
    ]
    assert SIGN_DIGEST_ALLOWED["service/keys/lifecycle.py"] and _sign_digest_uses(
        ast.parse((PACKAGE / "service/keys/lifecycle.py").read_text())
    )  # the CSR path is still seen
