"""The screenshot checks of the end-to-end tests (``tests/support/screenshots.py``) on
pictures made here: they pass a picture that agrees with its layout, and name what is wrong
in one that does not."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from tests.support.screenshots import (
    BACKGROUND,
    Expected,
    Picture,
    layout_problems,
    picture_problems,
)

WINDOW = (40, 20)
CLEAR = bytes(round(channel * 255) for channel in BACKGROUND)
PANEL = bytes((43, 46, 54))
INK = bytes((237, 240, 245))


def write_png(path: Path, rows: list[list[bytes]], filters: tuple[int, ...] = (0, 1, 2, 4)) -> None:
    """An 8-bit RGB PNG; each row filtered with the next of ``filters`` (none, sub, up,
    Paeth), as encoders mix them."""
    raw, previous = b"", bytes(len(rows[0]) * 3)
    for y, row in enumerate(rows):
        line, kind = b"".join(row), filters[y % len(filters)]
        out = bytearray()
        for i, value in enumerate(line):
            left = line[i - 3] if i >= 3 else 0
            up, corner = previous[i], previous[i - 3] if i >= 3 else 0
            guess = {0: 0, 1: left, 2: up}.get(kind)
            if guess is None:
                estimate = left + up - corner
                near = min((abs(estimate - left), 0), (abs(estimate - up), 1))
                near = min(near, (abs(estimate - corner), 2))
                guess = (left, up, corner)[near[1]]
            out.append((value - guess) & 0xFF)
        raw += bytes([kind]) + bytes(out)
        previous = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", len(rows[0]), len(rows), 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def two_boxes(gap_drawn: bool = False, letters: bool = True) -> list[list[bytes]]:
    """Two panels side by side ([2, 2, 16, 16] and [22, 2, 16, 16]) with shaded letters,
    on the clear colour; ``gap_drawn``: something drawn in the gap between them."""
    rows = [[CLEAR] * WINDOW[0] for _ in range(WINDOW[1])]
    for y in range(2, 18):
        for x in (*range(2, 18), *range(22, 38)):
            rows[y][x] = PANEL
    if letters:
        for x in (*range(4, 12), *range(24, 32)):
            rows[8][x] = bytes((INK[0] - 20 * (x % 4), INK[1], INK[2]))
    if gap_drawn:
        rows[10][19] = INK
    return rows


def layout(**changes: Any) -> dict[str, Any]:
    regions = {
        "column:todo": {"rect": [2, 2, 16, 16], "text": "To do"},
        "column:doing": {"rect": [22, 2, 16, 16], "text": "Doing"},
    }
    return {
        "screen": "board",
        "window": list(WINDOW),
        "clearcolor": [*BACKGROUND, 1],
        "regions": regions,
    } | changes


EXPECTED = Expected(
    "board",
    {"column:todo": "To do", "column:doing": "Doing"},
    apart=(("column:todo", "column:doing"),),
    gaps=(("column:todo", "column:doing"),),
    margins=("column:todo",),
)


def test_a_picture_that_agrees_with_its_layout_passes(tmp_path: Path) -> None:
    write_png(tmp_path / "shot.png", two_boxes())
    picture = Picture(tmp_path / "shot.png")
    assert picture.pixels((0, 0, 1, 1)) == [CLEAR]
    assert picture.pixels((2, 2, 1, 1)) == [PANEL]
    assert layout_problems(layout(), EXPECTED, WINDOW) == []
    assert picture_problems(picture, layout(), EXPECTED, WINDOW) == []


def test_a_layout_of_another_screen_or_out_of_place_is_named(tmp_path: Path) -> None:
    regions = layout()["regions"] | {"column:doing": {"rect": [10, 2, 40, 16], "text": "Done"}}
    problems = layout_problems(layout(screen="task", regions=regions), EXPECTED, WINDOW)
    assert problems == [
        "the screen is 'task', not 'board'",
        "column:doing says 'Done', not 'Doing'",
        "column:doing at [10, 2, 40, 16] is not inside the window",
        "column:todo and column:doing overlap",
        "no gap between column:todo and column:doing: not side by side",
    ]
    assert layout_problems(layout(regions={}), EXPECTED, WINDOW) == [
        "no region 'column:doing'",
        "no region 'column:todo'",
    ]


def test_a_picture_that_disagrees_with_its_layout_is_named(tmp_path: Path) -> None:
    write_png(tmp_path / "drawn-gap.png", two_boxes(gap_drawn=True))
    problems = picture_problems(Picture(tmp_path / "drawn-gap.png"), layout(), EXPECTED, WINDOW)
    gap = "the gap between column:todo and column:doing [19, 3, 2, 14]"
    assert problems == [f"{gap}: 3.6% of it is drawn on, not empty"]

    write_png(tmp_path / "blank.png", [[CLEAR] * WINDOW[0] for _ in range(WINDOW[1])])
    problems = picture_problems(Picture(tmp_path / "blank.png"), layout(), EXPECTED, WINDOW)
    assert problems == [
        "column:todo: only 0.0% of its pixels are drawn on",
        "column:todo has text but shows only 1 colour(s): no letters",
        "column:doing: only 0.0% of its pixels are drawn on",
        "column:doing has text but shows only 1 colour(s): no letters",
    ]

    write_png(tmp_path / "no-letters.png", two_boxes(letters=False))
    problems = picture_problems(Picture(tmp_path / "no-letters.png"), layout(), EXPECTED, WINDOW)
    assert problems == [
        "column:todo has text but shows only 1 colour(s): no letters",
        "column:doing has text but shows only 1 colour(s): no letters",
    ]
