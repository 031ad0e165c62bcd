"""The contract documents under ``docs/``, generated from code and checked to be current."""

from __future__ import annotations

from pathlib import Path

from protocol import jsonschema

SCHEMA_DIR = "schema"


def generated() -> dict[str, bytes]:
    """Every generated document, by its path relative to the docs folder."""
    return {
        f"{SCHEMA_DIR}/{name}": jsonschema.render(doc)
        for name, doc in jsonschema.documents().items()
    }


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
