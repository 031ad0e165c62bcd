"""The desktop bundle's check (``outpost/bundle_check.py``): each refusal, on made-up
listings of a bundle's modules and files. The built bundle itself is checked by
``make bundle`` and ``tests/packaging/test_bundle.py`` (``make bundle-test``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from outpost import bundle_check
from outpost.bundle_check import BundleError, bundle_files, bundle_modules, problems

APP_MODULES = {"client", "client.app", "client.app.main", "outpost", "outpost.cli"}
APP_MODULES |= {"protocol", "protocol.envelope"}
DATA = {"client/app/screens/board.kv", "client/app/fonts/icons.ttf"}
FILES = DATA | {"client", "client/app", "client/app/screens", "kivy_install/data/style.kv"}


def test_a_bundle_of_the_app_its_modules_and_its_data_passes() -> None:
    assert problems(APP_MODULES | {"kivy", "httpx"}, FILES, APP_MODULES, DATA) == []


@pytest.mark.parametrize(
    "module",
    ["backend", "backend.bff.app", "outpost.bench", "outpost.conflicts.run", "tests.support"],
)
def test_a_module_of_the_backend_its_tools_or_the_tests_is_refused(module: str) -> None:
    found = problems(APP_MODULES | {module}, FILES, APP_MODULES, DATA)
    assert len(found) == 1
    assert f"module(s) of {module.split('.')[0]}" in found[0] or module in found[0]


def test_a_library_only_the_backend_uses_is_refused() -> None:
    found = problems(APP_MODULES | {"litestar.app"}, FILES, APP_MODULES, DATA)
    assert found == ["1 module(s) of litestar inside, e.g. litestar.app"]


def test_a_file_of_the_backend_is_refused_even_without_its_modules() -> None:
    files = FILES | {"backend/migrations/script.py.mako"}
    assert problems(APP_MODULES, files, APP_MODULES, DATA) == [
        "1 file(s) of backend inside, e.g. backend/migrations/script.py.mako"
    ]


def test_a_name_that_only_starts_like_backend_is_not_refused() -> None:
    modules = APP_MODULES | {"backends_of_kivy", "testscope"}
    assert problems(modules, FILES | {"backendish/x.txt"}, APP_MODULES, DATA) == []


def test_the_app_without_its_entry_is_refused() -> None:
    modules = APP_MODULES - {"client.app.main"}
    assert problems(modules, FILES, APP_MODULES - {"client.app.main"}, DATA) == [
        "the app's module client.app.main is missing"
    ]


def test_a_module_of_the_client_left_out_is_refused() -> None:
    expected = APP_MODULES | {"client.app.screens.board"}
    assert problems(APP_MODULES, FILES, expected, DATA) == [
        "1 module(s) of the app missing, e.g. client.app.screens.board"
    ]


def test_a_data_file_of_the_client_left_out_is_refused() -> None:
    files = FILES - {"client/app/fonts/icons.ttf"}
    assert problems(APP_MODULES, files, APP_MODULES, DATA) == [
        "the app's data file client/app/fonts/icons.ttf is missing"
    ]


def test_the_source_listing_finds_every_kv_file_and_no_python(tmp_path: Path) -> None:
    for path in ("client/app/main.py", "client/app/screens/a.kv", "client/app/font/i.ttf"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    (tmp_path / "client/__pycache__").mkdir()
    (tmp_path / "client/__pycache__/x.cpython-311.pyc").write_text("x")
    (tmp_path / "client/__init__.py").write_text("")
    (tmp_path / "protocol").mkdir()
    (tmp_path / "protocol/__init__.py").write_text("")
    assert bundle_check.source_data(tmp_path) == {
        "client/app/screens/a.kv",
        "client/app/font/i.ttf",
    }
    assert bundle_check.source_modules(tmp_path) == {"client", "client.app.main", "protocol"}


def test_a_folder_that_is_no_bundle_is_refused_in_plain_words(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="run `make bundle` first"):
        bundle_modules(tmp_path)
    with pytest.raises(BundleError, match="not a one-folder PyInstaller bundle"):
        bundle_files(tmp_path)


def test_the_command_says_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bundle_check.main([str(tmp_path)]) == 1
    assert "run `make bundle` first" in capsys.readouterr().err
