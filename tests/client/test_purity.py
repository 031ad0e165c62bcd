"""What ships in client/ (the app and the device side) stands alone: it never imports the
backend (``make run``, which starts both, is tooling: ``outpost/run_local.py``) nor the
tests, and it holds no test machinery a setting or an environment variable could turn on
(the end-to-end tests' control lives in ``tests/support/app_control.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "client"
OLD_CONTROL_NAMES = ("OUTPOST_APP_TEST_CONTROL", "test_control", "start_if_requested")


def _sources() -> list[Path]:
    sources = sorted(CLIENT.rglob("*.py")) + sorted(CLIENT.rglob("*.kv"))
    assert len(sources) > 20, f"client/ has only {len(sources)} sources: the wrong folder?"
    return sources


def _imported(path: Path) -> set[str]:
    """Every module a Python file imports, wherever in it (also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_client_never_imports_the_backend_or_the_tests() -> None:
    found = {
        f"{path.relative_to(CLIENT.parent)}: {name}"
        for path in _sources()
        if path.suffix == ".py"
        for name in _imported(path)
        if name.split(".")[0] in {"backend", "tests", "outpost"}
    }
    assert not found, f"client/ imports what does not ship with the app: {sorted(found)}"


def test_client_holds_no_test_control_hook() -> None:
    found = [
        f"{path.relative_to(CLIENT.parent)}: {name}"
        for path in _sources()
        for name in OLD_CONTROL_NAMES
        if name in path.read_text()
    ]
    found += [str(p.relative_to(CLIENT.parent)) for p in CLIENT.rglob("test_*.py")]
    assert not found, f"test machinery in the shipped app: {found}"


def test_the_check_sees_an_import_of_the_backend(tmp_path: Path) -> None:
    """The scan finds an import however it is written, so the checks above can fail."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from backend.launcher import answers\n    import tests.x\n")
    assert _imported(module) == {"backend.launcher", "tests.x"}
