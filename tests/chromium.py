"""Open a page in Debian's headless Chromium: its DOM after the scripts ran, a screenshot, and
every console message (Chromium logs them to stderr as ``CONSOLE`` lines: errors and uncaught
exceptions alike, so a page that logs nothing has none)."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_CONSOLE = re.compile(r":CONSOLE[^\]]*\] (.*)")


@dataclass(frozen=True)
class Page:
    dom: str
    console: list[str]
    png: bytes

    def html_attribute(self, name: str) -> str | None:
        """An attribute of the <html> element after the scripts ran."""
        tag = re.search(r"<html[^>]*>", self.dom)
        assert tag, self.dom[:500]
        found = re.search(rf'\b{re.escape(name)}="([^"]*)"', tag.group(0))
        return found.group(1) if found else None


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Debian's chromium is installed by make install (deploy/install-system-deps.sh)"
    return found


def open_page(page: Path, work: Path, height: int = 6000) -> Page:
    """Run ``page`` twice (DOM, then screenshot), collecting the console of both runs."""
    common = [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
              "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
              "--hide-scrollbars", f"--window-size=1400,{height}",
              # Half scale: a quarter of the pixels for the pure-Python PNG reader.
              "--force-device-scale-factor=0.5"]  # fmt: skip
    dom = subprocess.run([*common, f"--user-data-dir={work / 'chromium-dom'}", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120)  # fmt: skip
    shot = work / "screenshot.png"
    picture = subprocess.run([*common, f"--user-data-dir={work / 'chromium-shot'}",
                              f"--screenshot={shot}", page.as_uri()],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert shot.exists(), picture.stderr[-2000:]
    console = [m.group(1) for m in _CONSOLE.finditer(dom.stderr + picture.stderr)]
    return Page(dom.stdout, console, shot.read_bytes())


def png_pixels(png: bytes) -> tuple[int, int, Counter[tuple[int, ...]]]:
    """Width, height and a count of each colour of an 8-bit RGB(A) non-interlaced PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, chunks, header = 8, [], b""
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind, body = png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        offset += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    channels = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(b"".join(chunks)), width * channels
    previous, colours = bytearray(stride), Counter[tuple[int, ...]]()
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        colours.update(tuple(line[i : i + 3]) for i in range(0, stride, channels * 4))
        previous = line
    return width, height, colours
