"""Screenshots of the app checked against the layout they must show (issue 13).

The control's ``screenshot`` answers the picture's path and the layout of the same frame:
the screen's name and, per shown row or named widget, its rectangle in window pixels
(``[left, top, width, height]`` from the top left, as in the picture) and its text. A test
states what the screen must show in an ``Expected``; ``assert_screenshot`` then checks

- the layout: the screen, each region there, with its text, inside the window, regions
  that must not overlap apart, regions inside the ones that hold them, in their order top
  to bottom;
- the picture against the layout: inside every stated region some pixels differ from the
  window's clear colour (something is drawn there) and, where it has text, several colours
  show (letters, not a plain box), and every strip meant to be empty
  (between two regions side by side, or between the window's left edge and a region) is
  the clear colour and nothing else.

PNGs are decoded with zlib and struct: no image library.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from client.app.look import DARK, LIGHT

BACKGROUNDS = tuple(
    tuple(round(channel, 2) for channel in palette["background"][:3]) for palette in (LIGHT, DARK)
)
"""The window's clear colour in either scheme (``client/app/look.py``): what shows where
nothing is drawn. A picture is read against the one its layout names."""
BACKGROUND = BACKGROUNDS[0]
SAME = 3
"""How far (per channel, 0-255) a pixel may be from the clear colour and still be it."""
MIN_DRAWN = 0.005
"""The share of a region's pixels that must differ from the clear colour: drawn on (a
heading's few letters across the window's width cover about 1.2%)."""
MIN_TEXT_COLOURS = 4
"""A region with text shows at least this many colours (its glyphs' edges are shaded)."""

Rect = tuple[int, int, int, int]  # left, top, width, height; from the top left


@dataclass(frozen=True)
class Expected:
    """What one screenshot must show."""

    screen: str
    texts: dict[str, str | None]
    """Regions that must be there and drawn on, with their text (None: any text)."""
    apart: tuple[tuple[str, ...], ...] = ()
    """Groups of regions: no two of a group may overlap."""
    inside: dict[str, str] = field(default_factory=dict)
    """Region: the region it must lie within."""
    above: tuple[tuple[str, str], ...] = ()
    """Pairs of regions (upper, lower): the first lies wholly above the second."""
    gaps: tuple[tuple[str, str], ...] = ()
    """Pairs of regions side by side (left, right): the strip between them is empty."""
    margins: tuple[str, ...] = ()
    """Regions whose strip to the window's left edge (at their height) is empty."""


class Picture:
    """A decoded PNG: its size, and the RGB of any pixel."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.width, self.height, self.rows = png_pixels(path)
        self.step = len(self.rows[0]) // self.width

    def pixels(self, rect: Rect) -> list[bytes]:
        left, top, width, height = rect
        step = self.step
        return [
            row[x * step : x * step + 3]
            for row in self.rows[top : top + height]
            for x in range(left, left + width)
        ]

    def colours(self, rect: Rect) -> int:
        return len(set(self.pixels(rect)))

    def drawn_share(self, rect: Rect, clear: tuple[float, ...] = BACKGROUND) -> float:
        """The share of the rectangle's pixels that are not the clear colour."""
        pixels = self.pixels(rect)
        if not pixels:
            return 0.0
        background = bytes(round(channel * 255) for channel in clear[:3])
        counts = Counter(pixels)
        same = sum(n for colour, n in counts.items() if _near(colour, background))
        return 1 - same / len(pixels)


def _near(colour: bytes, other: bytes) -> bool:
    return all(abs(a - b) <= SAME for a, b in zip(colour, other, strict=True))


def assert_screenshot(shot: dict[str, Any], expected: Expected, window: tuple[int, int]) -> None:
    """The layout answered with the screenshot is the expected one, and the picture agrees
    with it; a failure lists every problem and saves the layout beside the picture."""
    path, layout = Path(shot["path"]), shot["layout"]
    path.with_suffix(".json").write_text(json.dumps(layout, indent=1, ensure_ascii=False))
    picture = Picture(path)
    problems = real_render_problems(picture) + layout_problems(layout, expected, window)
    if not problems:  # the picture is read only where the layout is right
        problems = picture_problems(picture, layout, expected, window)
    shown = {name: region["text"][:60] for name, region in layout["regions"].items()}
    assert not problems, (
        f"{path.name}, expected the {expected.screen!r} screen:\n  "
        + "\n  ".join(problems)
        + f"\nit showed the {layout['screen']!r} screen: "
        + json.dumps(shown, indent=1, ensure_ascii=False)
    )


def layout_problems(
    layout: dict[str, Any], expected: Expected, window: tuple[int, int]
) -> list[str]:
    problems: list[str] = []
    if layout["screen"] != expected.screen:
        problems.append(f"the screen is {layout['screen']!r}, not {expected.screen!r}")
    if tuple(layout["window"]) != window:
        problems.append(f"the window is {layout['window']}, not {list(window)}")
    if tuple(round(c, 2) for c in layout["clearcolor"][:3]) not in BACKGROUNDS:
        problems.append(f"the clear colour is {layout['clearcolor']}, not one of {BACKGROUNDS}")
    regions = layout["regions"]
    names = [*expected.texts, *(name for group in expected.apart for name in group)]
    names += [*expected.inside, *expected.inside.values()]
    names += [name for pair in expected.above for name in pair]
    names += [name for pair in expected.gaps for name in pair] + list(expected.margins)
    missing = sorted({name for name in names if name not in regions})
    problems += [f"no region {name!r}" for name in missing]
    for name, text in expected.texts.items():
        if name in regions and text is not None and regions[name]["text"] != text:
            problems.append(f"{name} says {regions[name]['text']!r}, not {text!r}")
    for name in dict.fromkeys(names):
        if name in regions and not _within(rect_of(layout, name), (0, 0, *window)):
            problems.append(f"{name} at {regions[name]['rect']} is not inside the window")
    pairs = (pair for group in expected.apart for pair in combinations(group, 2))
    for first, second in pairs:
        both = first in regions and second in regions
        if both and _overlap(rect_of(layout, first), rect_of(layout, second)):
            problems.append(f"{first} and {second} overlap")
    for name, holder in expected.inside.items():
        both = name in regions and holder in regions
        if both and not _within(rect_of(layout, name), rect_of(layout, holder)):
            problems.append(f"{name} {regions[name]['rect']} is not inside {holder}")
    for upper, lower in expected.above:
        if upper not in regions or lower not in regions:
            continue
        (_, top, _, height), below = rect_of(layout, upper), rect_of(layout, lower)
        if top + height > below[1]:
            problems.append(f"{upper} is not above {lower}")
    for left, right in expected.gaps:
        if left in regions and right in regions and gap(layout, left, right) is None:
            problems.append(f"no gap between {left} and {right}: not side by side")
    return problems


def picture_problems(
    picture: Picture, layout: dict[str, Any], expected: Expected, window: tuple[int, int]
) -> list[str]:
    problems: list[str] = []
    if (picture.width, picture.height) != window:
        return [f"the picture is {picture.width}x{picture.height}, not {window}"]
    for name in expected.texts:
        share = picture.drawn_share(rect_of(layout, name), layout["clearcolor"])
        if share < MIN_DRAWN:
            problems.append(f"{name}: only {share:.1%} of its pixels are drawn on")
        colours = picture.colours(rect_of(layout, name))
        if layout["regions"][name]["text"] and colours < MIN_TEXT_COLOURS:
            problems.append(f"{name} has text but shows only {colours} colour(s): no letters")
    empty = [(f"the gap between {a} and {b}", gap(layout, a, b)) for a, b in expected.gaps]
    empty += [(f"the margin left of {name}", margin(layout, name)) for name in expected.margins]
    for what, strip in empty:
        if strip is None:
            continue  # the layout check said so
        share = picture.drawn_share(strip, layout["clearcolor"])
        if share > 0:
            problems.append(f"{what} {list(strip)}: {share:.1%} of it is drawn on, not empty")
    return problems


def rect_of(layout: dict[str, Any], name: str) -> Rect:
    left, top, width, height = layout["regions"][name]["rect"]
    return (int(left), int(top), int(width), int(height))


def gap(layout: dict[str, Any], left: str, right: str) -> Rect | None:
    """The strip between two regions side by side (a pixel in from every edge)."""
    a, b = rect_of(layout, left), rect_of(layout, right)
    x0, x1 = a[0] + a[2] + 1, b[0] - 1
    y0, y1 = max(a[1], b[1]) + 1, min(a[1] + a[3], b[1] + b[3]) - 1
    return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


def margin(layout: dict[str, Any], name: str) -> Rect | None:
    """The strip from the window's left edge to the region, at its height."""
    left, top, _, height = rect_of(layout, name)
    return (0, top + 1, left - 1, height - 2) if left > 1 and height > 2 else None


def _within(inner: Rect, outer: Rect) -> bool:
    return (
        outer[0] <= inner[0]
        and outer[1] <= inner[1]
        and inner[0] + inner[2] <= outer[0] + outer[2]
        and inner[1] + inner[3] <= outer[1] + outer[3]
    )


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


# decoding


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the RGB(A) rows of an 8-bit PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    offset, chunks, header = 8, [], b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        header = body if kind == b"IHDR" else header
        chunks += [body] if kind == b"IDAT" else []
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), f"{path}: unexpected PNG format {depth}/{colour}"
    step = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * step
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)  # each row: its filter type, then its bytes
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 0:  # no filter (what Kivy's screenshots write): the bytes as they are
            rows.append(bytes(line))
            previous = line
            continue
        for i in range(stride):
            left = line[i - step] if i >= step else 0
            up, corner = previous[i], previous[i - step] if i >= step else 0
            line[i] = (line[i] + _predict(kind, left, up, corner)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def _predict(kind: int, left: int, up: int, corner: int) -> int:
    if kind == 0:
        return 0
    if kind == 1:
        return left
    if kind == 2:
        return up
    if kind == 3:
        return (left + up) // 2
    guess = left + up - corner  # Paeth
    near = min((abs(guess - left), 0), (abs(guess - up), 1), (abs(guess - corner), 2))[1]
    return (left, up, corner)[near]


def real_render_problems(picture: Picture) -> list[str]:
    """A picture, not a blank window: many colours, none covering nearly everything."""
    colours: Counter[bytes] = Counter()
    for row in picture.rows[::2]:
        colours.update(row[x : x + 3] for x in range(0, len(row), picture.step * 2))
    commonest = colours.most_common(1)[0][1] / sum(colours.values())
    problems = [f"only {len(colours)} colours: a blank window?"] if len(colours) < 16 else []
    if commonest >= 0.95:
        problems.append(f"one colour covers {commonest:.0%} of the window")
    return problems
