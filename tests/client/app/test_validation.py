"""The app's own checks take ASCII digits and whole strings only, like the contract (FAULTS 19)."""

from __future__ import annotations

import pytest

from client.app.viewmodels import _validation as check


@pytest.mark.parametrize("text", ["٣", "\uff13", "3\n3", "+3", "3.0"])
def test_priority_takes_one_ascii_digit(text: str) -> None:
    with pytest.raises(check.Refused, match="Priority is None, Low, Medium, High or Urgent"):
        check.priority(text)
    assert check.priority(" 3 ") == 3


@pytest.mark.parametrize("text", ["\uff12025-03-14", "2025-03-14\n2025", "٢٠٢٥-٠٣-١٤"])
def test_a_due_date_is_ascii(text: str) -> None:
    with pytest.raises(check.Refused, match="YYYY-MM-DD"):
        check.due(text)


@pytest.mark.parametrize("text", ["\uff41lice", "alice\nbob", "al\u200bice"])
def test_a_username_is_ascii_and_whole(text: str) -> None:
    with pytest.raises(check.Refused):
        check.username(text)
    with pytest.raises(check.Refused):
        check.assignee(text)
