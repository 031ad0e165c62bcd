"""One error tree for the backend: every exception class defined under ``backend/`` derives
from ``backend.errors.BackendError`` (``backend/errors.py`` draws the tree)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import backend
from backend.errors import BackendError

_ALEMBIC_SCRIPTS = {"backend.migrations.env", "backend.migrations.__main__"}
"""Alembic runs ``env.py`` inside its own context (it reads ``context.config`` when loaded);
``__main__`` is the developer's command line. Neither defines an exception class."""


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class a module under ``backend/`` defines, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(backend.__path__, "backend."):
        if module_info.name in _ALEMBIC_SCRIPTS:
            continue
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_backend_exception_derives_from_backend_error() -> None:
    classes = _exception_classes()
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, BackendError))
    assert outside == [], f"exception classes outside the BackendError tree: {outside}"


def test_the_walk_finds_the_errors_of_every_package() -> None:
    """So the check above cannot pass by finding nothing."""
    names = set(_exception_classes())
    assert {
        "backend.errors.ComponentBusy",
        "backend.backup.BackupError",
        "backend.errors.LaunchError",
        "backend.bff.ops.guards.Forbidden",
        "backend.faults.stream.FaultsError",
        "backend.lake.errors.LakeError",
        "backend.migrations.MigrationError",
        "backend.lake.errors.LakeFileError",
        "backend.nats.errors.EmbeddedNatsError",
        "backend.nats.errors.StoreInUseError",
        "backend.gateway.errors.SignatureRefused",
        "backend.gateway.errors.TargetRefused",
    } <= names
