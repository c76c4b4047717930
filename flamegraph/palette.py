# SPDX-License-Identifier: Apache-2.0
"""Frame colours: deterministic, derived from the function's name, so that one function has
the same colour in every graph (and in every run: no dependence on Python's ``hash()`` seed).

The frame is keyed by its function key (``Frame.key``: the line number dropped), so a
function keeps its colour when its code moves. The schemes follow FlameGraph's ``--colors``:
``hot`` (red/orange/yellow), ``mem`` (green), ``io`` (blue), ``wakeup`` (aqua), ``java``
(green JIT, aqua inlined, yellow C++, orange kernel, red other native) and ``python``
(py-spy style: application, standard-library and third-party Python code and native code
each get their own hue). Frame kinds (kernel, JIT, synthetic, …) override the scheme where
that helps in every palette.
"""
from __future__ import annotations

import hashlib
import re
import sys
from typing import Callable, Dict, Tuple

from profkit.frames import Frame, FrameKind

__all__ = ["Palette", "diff_color", "NEUTRAL"]

RGB = Tuple[int, int, int]

#: The colour of frames that carry no function (the root) and of separators.
NEUTRAL = "#c8c8c8"

_JAVA_NAME = re.compile(r"\A[\w$]+(?:[./][\w$<>]+)+\Z")
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) or frozenset(
    "abc argparse ast asyncio base64 collections concurrent contextlib copy csv dataclasses datetime "
    "decimal email enum functools gc glob gzip hashlib heapq http importlib inspect io itertools json "
    "logging math multiprocessing os pathlib pickle queue random re select selectors shutil signal "
    "socket socketserver sqlite3 ssl string struct subprocess sys tempfile threading time traceback "
    "typing unittest urllib uuid warnings weakref xml zipfile zlib".split())


def _hash3(key: str) -> Tuple[float, float, float]:
    """Three numbers in [0, 1) from a keyed, stable hash of ``key``."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=3, key=b"profkit-flamegraph").digest()
    return digest[0] / 256.0, digest[1] / 256.0, digest[2] / 256.0


def _span(lo: int, hi: int, v: float) -> int:
    return lo + int((hi - lo) * v)


def _hex(rgb: RGB) -> str:
    return "#%02x%02x%02x" % rgb


# Each hue: (r range, g range, b range); v1..v3 pick the point inside it.
def _hot(v: Tuple[float, float, float]) -> RGB:
    return _span(205, 255, v[2]), _span(0, 230, v[0]), _span(0, 55, v[1])


def _red(v):  # native code in the java scheme: like hot, without the yellows
    return _span(200, 255, v[2]), _span(40, 100, v[0]), _span(40, 100, v[1])


def _orange(v):
    return _span(215, 255, v[2]), _span(120, 170, v[0]), _span(0, 50, v[1])


def _yellow(v):
    return _span(175, 230, v[0]), _span(175, 230, v[0]), _span(50, 110, v[1])


def _green(v):
    return _span(50, 110, v[0]), _span(165, 230, v[1]), _span(50, 110, v[0])


def _light_green(v):
    return _span(130, 180, v[0]), _span(205, 245, v[1]), _span(110, 160, v[0])


def _mem(v):
    return 0, _span(190, 240, v[1]), _span(0, 210, v[0])


def _io(v):
    return _span(80, 140, v[0]), _span(80, 140, v[0]), _span(190, 245, v[1])


def _aqua(v):
    return _span(50, 110, v[0]), _span(165, 220, v[1]), _span(165, 220, v[1])


def _blue(v):  # application Python code
    return _span(70, 120, v[0]), _span(140, 195, v[1]), _span(215, 250, v[2])


def _lavender(v):  # third-party Python code
    return _span(150, 185, v[0]), _span(130, 165, v[0]), _span(210, 245, v[1])


def _teal(v):  # standard-library Python code
    return _span(100, 140, v[0]), _span(185, 220, v[1]), _span(175, 205, v[1])


def _grey(v):
    g = _span(185, 215, v[0])
    return g, g, g


def _purple(v):  # process and thread frames
    return _span(190, 215, v[0]), _span(175, 200, v[0]), _span(215, 240, v[1])


def _brown(v):
    return _span(175, 210, v[0]), _span(120, 150, v[1]), _span(80, 110, v[1])


Hue = Callable[[Tuple[float, float, float]], RGB]

# Kinds that keep one hue whatever the scheme, because the kind says more than the name.
_KIND_HUE: Dict[FrameKind, Hue] = {
    FrameKind.KERNEL: _orange,
    FrameKind.JIT: _green,
    FrameKind.C1: _light_green,
    FrameKind.INTERPRETED: _light_green,
    FrameKind.INLINED: _aqua,
    FrameKind.SYNTHETIC: _grey,
    FrameKind.PROCESS: _purple,
    FrameKind.THREAD: _purple,
    FrameKind.ALLOC_INSIDE_TLAB: _io,
    FrameKind.ALLOC_OUTSIDE_TLAB: _brown,
}

_SCHEME_HUE: Dict[str, Hue] = {"hot": _hot, "mem": _mem, "io": _io, "wakeup": _aqua}


def _python_hue(frame: Frame) -> Hue:
    if frame.file is None:
        if frame.kind is FrameKind.PYTHON:
            return _blue
        return _hot  # native (C) code under Python: warm, as py-spy shows it
    path = frame.file.replace("\\", "/")
    if "site-packages/" in path or "dist-packages/" in path:
        return _lavender
    if "/lib/python" in path or path.split("/", 1)[0].rsplit(".", 1)[0] in _STDLIB:
        return _teal
    return _blue


def _java_hue(name: str, kind: FrameKind) -> Hue:
    if "::" in name:
        return _yellow  # C++ (HotSpot itself)
    if _JAVA_NAME.match(name):
        return _green
    return _red


class Palette:
    """Colours for one scheme; ``color(frame)`` is ``#rrggbb`` and is cached per frame."""

    def __init__(self, scheme: str = "hot"):
        if scheme not in _SCHEME_HUE and scheme not in ("java", "python"):
            raise ValueError(f"unknown colour scheme {scheme!r}")
        self.scheme = scheme
        self._cache: Dict[Frame, str] = {}

    def color(self, frame: Frame) -> str:
        """The fill of ``frame``, from its kind and a stable hash of its function key."""
        c = self._cache.get(frame)
        if c is None:
            c = self._cache[frame] = self._compute(frame)
        return c

    def _compute(self, frame: Frame) -> str:
        name, kind = frame.name, frame.kind
        if frame.file is None and name in ("-", "--", ""):
            return NEUTRAL  # FlameGraph's user/kernel and chain separators
        hue = _KIND_HUE.get(kind)
        if hue is None:
            if self.scheme == "java":
                hue = _java_hue(name, kind)
            elif self.scheme == "python":
                hue = _python_hue(frame)
            elif name[:1] == "[" and name[-1:] == "]":
                hue = _grey
            else:
                hue = _SCHEME_HUE[self.scheme]
        return _hex(hue(_hash3(frame.key)))


def diff_color(delta: float, scale: float) -> str:
    """Red for growth, blue for shrinkage, paler the smaller ``|delta|`` is against ``scale``.

    A frame that did not change is a light grey, so "unchanged" and "barely changed" differ.
    """
    if scale <= 0 or abs(delta) < scale * 1e-9:
        return "#e8e8e8"
    i = min(1.0, abs(delta) / scale)
    # Even the smallest change is visibly tinted (the floor), the largest is saturated.
    strength = 0.15 + 0.85 * i
    if delta > 0:
        fade = int(round(215 * (1.0 - strength)))
        return _hex((255, fade, fade))
    # Blue keeps a lighter floor: black labels on pure blue are unreadable (contrast < 3:1),
    # on (100, 100, 255) they are about as legible as on pure red.
    fade = int(round(100 + 115 * (1.0 - strength)))
    return _hex((fade, fade, 255))
