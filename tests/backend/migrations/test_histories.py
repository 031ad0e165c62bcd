"""The migration histories as files: named, in one line each, and matching the models."""

from __future__ import annotations

import re

import pytest
from alembic.script import ScriptDirectory

from backend.migrations import HISTORIES, config_for
from backend.migrations.__main__ import REVISION_ID_MAX, main


@pytest.mark.parametrize("history", sorted(HISTORIES))
def test_each_history_is_one_line_of_named_numbered_revisions(history: str) -> None:
    script = ScriptDirectory.from_config(config_for(history))
    assert len(script.get_heads()) == 1, "one head: no branches to merge"
    names = [step.revision for step in script.walk_revisions()][::-1]
    assert names[0] == f"{history}_0001_tables"
    for number, name in enumerate(names, start=1):
        assert re.fullmatch(rf"{history}_{number:04d}_[a-z0-9_]+", name), name
        assert len(name) <= REVISION_ID_MAX, f"{name} does not fit Alembic's version table"


def test_every_head_matches_its_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert all(f"{history}: matches its models" in out for history in HISTORIES), out


def test_an_unknown_history_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="no migration history 'views': choose from bff"):
        config_for("views")
