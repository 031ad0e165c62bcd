"""A screenshot of another process's window, read from the X server (issue 16).

The app's own screenshot (``tests/support/app_control.py``) needs the test control inside
the app; the desktop bundle has none. This reads the window's pixels from the X display
instead, as a screenshot tool would: libX11 through ``ctypes`` (``XQueryTree`` to find the
window by its title, ``XGetImage`` for its pixels), and writes them as a PNG that
``tests/support/screenshots.py`` reads. No image library, no X tool to install: libX11 is
what SDL2 itself draws through.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import zlib
from pathlib import Path

ALL_PLANES = 0xFFFFFFFFFFFFFFFF
Z_PIXMAP = 2
LSB_FIRST = 0


class XImage(ctypes.Structure):
    """The leading fields of Xlib's ``XImage`` (Xlib.h), all this module reads."""

    _fields_ = [
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("xoffset", ctypes.c_int),
        ("format", ctypes.c_int),
        ("data", ctypes.POINTER(ctypes.c_ubyte)),
        ("byte_order", ctypes.c_int),
        ("bitmap_unit", ctypes.c_int),
        ("bitmap_bit_order", ctypes.c_int),
        ("bitmap_pad", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("bytes_per_line", ctypes.c_int),
        ("bits_per_pixel", ctypes.c_int),
        ("red_mask", ctypes.c_ulong),
        ("green_mask", ctypes.c_ulong),
        ("blue_mask", ctypes.c_ulong),
    ]


class XTextProperty(ctypes.Structure):
    _fields_ = [
        ("value", ctypes.c_void_p),
        ("encoding", ctypes.c_ulong),
        ("format", ctypes.c_int),
        ("nitems", ctypes.c_ulong),
    ]


class XError(Exception):
    """The X display or the window cannot be read."""


def _xlib() -> ctypes.CDLL:
    name = ctypes.util.find_library("X11") or "libX11.so.6"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise XError(f"libX11 is missing ({exc}): install libx11-6") from exc
    lib.XOpenDisplay.restype = ctypes.c_void_p
    lib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    lib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    lib.XDefaultRootWindow.restype = ctypes.c_ulong
    lib.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    lib.XQueryTree.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.POINTER(ctypes.c_ulong)),
        ctypes.POINTER(ctypes.c_uint),
    ]
    lib.XGetWMName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(XTextProperty)]
    lib.XFree.argtypes = [ctypes.c_void_p]
    lib.XGetGeometry.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.POINTER(ctypes.c_ulong),
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_uint),
        ctypes.POINTER(ctypes.c_uint),
        ctypes.POINTER(ctypes.c_uint),
        ctypes.POINTER(ctypes.c_uint),
    ]
    lib.XGetImage.restype = ctypes.POINTER(XImage)
    lib.XGetImage.argtypes = [
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_ulong,
        ctypes.c_int,
    ]
    return lib


def window_titles(display: str) -> dict[str, int]:
    """The titled windows on the display, by title (the first of a title)."""
    lib = _xlib()
    connection = lib.XOpenDisplay(display.encode())
    if not connection:
        raise XError(f"cannot open the X display {display}")
    try:
        return _titled(lib, connection)
    finally:
        lib.XCloseDisplay(connection)


def _titled(lib: ctypes.CDLL, connection: int) -> dict[str, int]:
    found: dict[str, int] = {}
    pending = [lib.XDefaultRootWindow(connection)]
    while pending:
        window = pending.pop()
        name = XTextProperty()  # SDL2 names its window in UTF-8: not XFetchName's STRING
        if lib.XGetWMName(connection, window, ctypes.byref(name)) and name.value:
            title = ctypes.string_at(name.value, name.nitems).decode(errors="replace")
            found.setdefault(title, window)
            lib.XFree(name.value)
        root, parent = ctypes.c_ulong(), ctypes.c_ulong()
        children = ctypes.POINTER(ctypes.c_ulong)()
        count = ctypes.c_uint()
        if lib.XQueryTree(
            connection,
            window,
            ctypes.byref(root),
            ctypes.byref(parent),
            ctypes.byref(children),
            ctypes.byref(count),
        ):
            pending += [children[i] for i in range(count.value)]
            if children:
                lib.XFree(children)
    return found


def capture(display: str, title: str, path: Path) -> Path | None:
    """The window titled ``title`` as an RGB PNG at ``path``; None while there is none."""
    lib = _xlib()
    connection = lib.XOpenDisplay(display.encode())
    if not connection:
        raise XError(f"cannot open the X display {display}")
    try:
        window = _titled(lib, connection).get(title)
        if window is None:
            return None
        root = ctypes.c_ulong()
        x, y = ctypes.c_int(), ctypes.c_int()
        width, height, border, depth = (ctypes.c_uint() for _ in range(4))
        if not lib.XGetGeometry(
            connection,
            window,
            ctypes.byref(root),
            ctypes.byref(x),
            ctypes.byref(y),
            ctypes.byref(width),
            ctypes.byref(height),
            ctypes.byref(border),
            ctypes.byref(depth),
        ):
            return None
        image = lib.XGetImage(
            connection, window, 0, 0, width.value, height.value, ALL_PLANES, Z_PIXMAP
        )
        if not image:
            return None  # not mapped (yet): X has no pixels for it
        try:
            rows = _rgb_rows(image.contents)
        finally:
            lib.XFree(image.contents.data)
            lib.XFree(image)
    finally:
        lib.XCloseDisplay(connection)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png(width.value, height.value, rows))
    return path


def _rgb_rows(image: XImage) -> list[bytes]:
    """The image's rows as RGB: Xvfb's 24-bit visual keeps 32 bits a pixel, B G R X."""
    if image.bits_per_pixel != 32 or image.byte_order != LSB_FIRST:
        raise XError(f"an unexpected X image: {image.bits_per_pixel} bits, {image.byte_order}")
    if (image.red_mask, image.green_mask, image.blue_mask) != (0xFF0000, 0xFF00, 0xFF):
        raise XError("an unexpected X visual: not 8 bits a channel in R G B order")
    data = ctypes.string_at(image.data, image.bytes_per_line * image.height)
    rows = []
    for y in range(image.height):
        line = data[y * image.bytes_per_line : y * image.bytes_per_line + image.width * 4]
        rgb = bytearray(image.width * 3)
        rgb[0::3], rgb[1::3], rgb[2::3] = line[2::4], line[1::4], line[0::4]
        rows.append(bytes(rgb))
    return rows


def png(width: int, height: int, rows: list[bytes]) -> bytes:
    """An 8-bit RGB PNG of the rows (each row unfiltered)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
