"""``outpost backend backup`` and ``restore``: what they refuse, from the command line, in
this process (the whole round trip with a real backend is ``test_backup_restore.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from outpost.cli import main


def test_backup_and_restore_need_their_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backend", "backup"]) == 2
    assert "name the backup folder with --to DIR" in capsys.readouterr().err
    assert main(["backend", "restore"]) == 2
    assert "name the backup folder with --from DIR" in capsys.readouterr().err


def test_a_backup_of_no_data_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["backend", "backup", "--data-dir", str(tmp_path / "none"), "--to", str(tmp_path / "b")]
    )
    assert code == 1
    assert "there is no data folder" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_a_folder_that_is_not_a_backup_is_not_restored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "bff.db").write_bytes(b"kept")
    (tmp_path / "other").mkdir()
    code = main(["backend", "restore", "--data-dir", str(data), "--from", str(tmp_path / "other")])
    assert code == 1
    assert "is not an Outpost backup (it has no outpost-backup.json)" in capsys.readouterr().err
    assert (data / "bff.db").read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "other"]
