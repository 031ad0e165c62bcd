"""The contract documents under ``docs/``, generated from code and checked to be current.

- ``schema/``: JSON Schema of the envelope and of every event type (``protocol.jsonschema``);
- ``asyncapi.json``: what each backend component publishes and consumes (``backend.asyncapi``);
- ``openapi.json``: the BFF's HTTP contract, as the app serves it at ``/schema/openapi.json``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from protocol import jsonschema

SCHEMA_DIR = "schema"
ASYNCAPI = "asyncapi.json"
OPENAPI = "openapi.json"


@dataclass(frozen=True)
class _NoServices:
    """What ``create_app`` reads of its services before serving: the settings. The OpenAPI
    document comes from the routes and the OpenAPI config alone, so it needs no database,
    no NATS and no running server."""

    settings: Any


@contextlib.contextmanager
def _logging_as_it_was() -> Iterator[None]:
    """Building a Litestar app configures logging (the root logger's handlers included):
    undo that, so that writing the documents leaves the process's logging alone."""
    loggers = [logging.getLogger(), logging.getLogger("litestar")]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for lg, handlers, level, propagate in saved:
            # Litestar's queue listener stops itself at exit; once detached it stays idle.
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate


def openapi() -> dict[str, Any]:
    """The OpenAPI document of the BFF, built from the real app (its routes, its config)."""
    from backend.bff.app import Services, create_app
    from backend.config import Settings

    with _logging_as_it_was():
        app = create_app(cast(Services, _NoServices(Settings())))
        return app.openapi_schema.to_schema()


def generated() -> dict[str, bytes]:
    """Every generated document, by its path relative to the docs folder."""
    from backend import asyncapi

    documents = {
        f"{SCHEMA_DIR}/{name}": jsonschema.render(doc)
        for name, doc in jsonschema.documents().items()
    }
    documents[ASYNCAPI] = asyncapi.render()
    documents[OPENAPI] = jsonschema.render(openapi())
    return documents


def stale(docs_dir: Path) -> list[str]:
    """Generated documents that are missing or differ from the files in ``docs_dir``,
    and files under ``docs/schema`` that no longer match any generated document."""
    expected = generated()
    problems = [
        name
        for name, content in expected.items()
        if not (docs_dir / name).is_file() or (docs_dir / name).read_bytes() != content
    ]
    schema_root = docs_dir / SCHEMA_DIR
    if schema_root.is_dir():
        for path in sorted(schema_root.rglob("*.json")):
            name = path.relative_to(docs_dir).as_posix()
            if name not in expected:
                problems.append(name)
    return problems


def write(docs_dir: Path) -> list[str]:
    """Write every generated document (and remove outdated ones); return what changed."""
    changed = stale(docs_dir)
    expected = generated()
    for name in changed:
        path = docs_dir / name
        if name in expected:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(expected[name])
        else:
            path.unlink()
    return changed
