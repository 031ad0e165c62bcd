"""What the desktop bundle must hold, and must not: ``make bundle`` checks it after building.

``python -m outpost.bundle_check dist/outpost-app`` lists the bundle's Python modules (from
the archive inside its executable, with PyInstaller's reader) and its files, and fails when

- a module or a file of the server side is inside (``backend``, the server's libraries, the
  tools that run it: ``outpost.bench``, ``outpost.conflicts``), or of the tests;
- the app's entry is missing (``client.app.main``, ``outpost.cli``), or a module of the
  client or the protocol packages;
- a data file of those packages is missing (every file in them that is not Python source:
  kv files, fonts, images), so that a new kv file or font is checked without listing it.

``tests/packaging/test_bundle.py`` checks the built bundle the same way, and
``tests/test_bundle_check.py`` each refusal here on made-up listings.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

NAME = "outpost-app"
REPOSITORY = Path(__file__).resolve().parents[1]
SHIPPED_PACKAGES = ("client", "protocol")
REQUIRED_MODULES = ("client.app.main", "outpost.cli", "protocol.envelope")
FORBIDDEN = (
    "backend",
    "outpost.bench",
    "outpost.conflicts",
    "outpost.docs",
    "outpost.run_local",
    "tests",
    "litestar",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "asyncpg",
    "nats",
    "pytest",
)
"""Modules (and their submodules) and top-level folders that must not be in the bundle:
the backend, the tools around it and the libraries only it uses, and the tests."""


class BundleError(Exception):
    """The bundle cannot be read."""


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def bundle_modules(folder: Path) -> set[str]:
    """The Python modules in the bundle's executable's archive (PYZ)."""
    executable = folder / NAME
    if not executable.is_file():
        raise BundleError(f"{executable} is missing: run `make bundle` first")
    try:
        from PyInstaller.archive.readers import CArchiveReader
    except ImportError as exc:
        raise BundleError(
            "PyInstaller is missing: `make bundle` installs it (the bundle extra)"
        ) from exc
    try:
        package = CArchiveReader(str(executable))
        archives = [name for name in package.toc if name.endswith(".pyz")]
        modules: set[str] = set()
        for archive in archives:
            modules |= set(package.open_embedded_archive(archive).toc)
    except Exception as exc:  # PyInstaller's readers raise plain exceptions
        raise BundleError(f"{executable} is not a PyInstaller executable: {exc}") from exc
    if not modules:
        raise BundleError(f"{executable} holds no Python modules")
    return modules


def bundle_files(folder: Path) -> set[str]:
    """The bundle's files, as paths from its ``_internal`` folder (``client/app/x.kv``)."""
    internal = folder / "_internal"
    if not internal.is_dir():
        raise BundleError(f"{internal} is missing: not a one-folder PyInstaller bundle")
    return {path.relative_to(internal).as_posix() for path in internal.rglob("*")}


def source_modules(root: Path = REPOSITORY) -> set[str]:
    """The modules of the shipped packages, from their source files."""
    found: set[str] = set()
    for package in SHIPPED_PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.add(".".join(parts))
    return found


def source_data(root: Path = REPOSITORY) -> set[str]:
    """The data files of the shipped packages: every file there but Python and its caches."""
    return {
        path.relative_to(root).as_posix()
        for package in SHIPPED_PACKAGES
        for path in (root / package).rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }


def problems(
    modules: Iterable[str], files: Iterable[str], expected_modules: set[str], data: set[str]
) -> list[str]:
    """Everything wrong with a bundle holding ``modules`` and ``files`` (a refusal each)."""
    modules, files = set(modules), set(files)
    found: list[str] = []
    for gone in FORBIDDEN:
        inside = sorted(name for name in modules if within(name, gone))
        if inside:
            found.append(f"{len(inside)} module(s) of {gone} inside, e.g. {inside[0]}")
        folder = gone.replace(".", "/")
        stray = sorted(path for path in files if path == folder or path.startswith(folder + "/"))
        if stray:
            found.append(f"{len(stray)} file(s) of {gone} inside, e.g. {stray[0]}")
    for name in REQUIRED_MODULES:
        if name not in modules:
            found.append(f"the app's module {name} is missing")
    missing = sorted(expected_modules - modules)
    if missing:
        found.append(f"{len(missing)} module(s) of the app missing, e.g. {missing[0]}")
    for path in sorted(data - files):
        found.append(f"the app's data file {path} is missing")
    return found


def check(folder: Path, root: Path = REPOSITORY) -> list[str]:
    return problems(
        bundle_modules(folder), bundle_files(folder), source_modules(root), source_data(root)
    )


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    folder = Path(arguments[0] if arguments else f"dist/{NAME}")
    try:
        found = check(folder)
    except BundleError as exc:
        print(f"bundle check: {exc}", file=sys.stderr)
        return 1
    for problem in found:
        print(f"bundle check: {folder}: {problem}", file=sys.stderr)
    if found:
        return 1
    print(f"{folder}: the app and the client, no backend")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
