"""The test suite's own layout: fixtures in conftest.py, helpers in tests/support, and test
modules that import only helpers, so a test reads top to bottom without chasing another
test file (or a conftest) for the thing it uses.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SUPPORT = TESTS / "support"


def _modules() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


def _name(path: Path) -> str:
    return ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)


def _imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) of every import, nested ones included; relative imports as '.'."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, "." * node.level + (node.module or "")


def _is_fixture(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (
        isinstance(target, ast.Attribute)
        and target.attr == "fixture"
        and isinstance(target.value, ast.Name)
        and target.value.id == "pytest"
    )


def test_tests_import_only_support_modules() -> None:
    """No module under tests/ imports a test module or a conftest: shared code is support."""
    bad = [
        f"{_name(path)}:{line} imports {module}"
        for path in _modules()
        for line, module in _imports(ast.parse(path.read_text(encoding="utf-8")))
        if module.startswith(".")
        or (
            (module == "tests" or module.startswith("tests."))
            and not (module == "tests.support" or module.startswith("tests.support."))
        )
    ]
    assert bad == []


def _conftest_misfits(tree: ast.Module) -> Iterator[str]:
    for i, node in enumerate(tree.body):
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the module docstring
        if isinstance(node, ast.FunctionDef):
            if node.name.startswith("pytest_") or any(map(_is_fixture, node.decorator_list)):
                continue
            yield f"line {node.lineno}: function {node.name} is not a fixture or hook"
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if not (isinstance(t, ast.Name) and t.id.startswith("_")):
                    yield f"line {node.lineno}: public name {ast.unparse(t)} (move it to support)"
        else:
            yield f"line {node.lineno}: {type(node).__name__} (move it to tests/support)"


@pytest.mark.parametrize(
    "conftest", sorted(TESTS.rglob("conftest.py")), ids=lambda p: str(p.relative_to(TESTS))
)
def test_conftest_defines_only_fixtures_and_hooks(conftest: Path) -> None:
    """Constants used by a conftest's own fixtures may stay there, if private."""
    assert list(_conftest_misfits(ast.parse(conftest.read_text(encoding="utf-8")))) == []


def test_support_modules_hold_no_fixtures_or_tests() -> None:
    bad = []
    for path in sorted(SUPPORT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.FunctionDef):
                continue
            if node.name.startswith("test_") or any(map(_is_fixture, node.decorator_list)):
                bad.append(f"{_name(path)}:{node.lineno} {node.name}")
    assert bad == []


def test_helper_modules_live_in_support() -> None:
    """Outside tests/support a module is a test module, a conftest or a package marker."""
    bad = [
        _name(path)
        for path in _modules()
        if SUPPORT not in path.parents
        and not path.name.startswith("test_")
        and path.name not in ("conftest.py", "__init__.py")
    ]
    assert bad == []
