# SPDX-License-Identifier: Apache-2.0
"""The report's time view: the timed samples as compact data for ``timeline.js``.

``report.html`` embeds them in a ``<script type="application/json">`` element: frame names
and thread names once each, stacks as lists of frame indices, and the four sample columns
as base64 of their little-endian bytes (``profkit/timeline.py``). The JSON is escaped so that
no name can end the script element (``<``, ``>``, ``&``, U+2028/9 become ``\\uXXXX``), and the
page's script reads it with ``JSON.parse`` and shows names with ``textContent`` only.
Threads whose every sample ends in an idle or blocking function are listed as idle threads,
grouped, not dropped.
"""
from __future__ import annotations

import base64
import json
import re
import sys
from array import array
from importlib import resources
from typing import Dict, Optional

from profkit.frames import IDLE_PATTERN
from profkit.model import Profile
from profkit.textsafe import display_text

__all__ = ["script_json", "timeline_data", "timeline_script"]

_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_UNSAFE = re.compile("[<>&\u2028\u2029]")


def script_json(value) -> str:
    """JSON that is safe inside a ``<script>`` element (nothing in it can close the element)."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return _UNSAFE.sub(lambda m: _ESCAPES[m.group(0)], text)


def _b64(col: array) -> str:
    if sys.byteorder != "little":  # pragma: no cover - the page reads little-endian
        col = array(col.typecode, col)
        col.byteswap()
    return base64.b64encode(col.tobytes()).decode("ascii")


def timeline_data(profile: Profile) -> Optional[Dict[str, object]]:
    """The data ``timeline.js`` draws, or None when the profile has no timed samples."""
    tl = profile.timeline
    if tl is None or not len(tl):
        return None
    tl = tl.sorted()
    index: Dict[str, int] = {}
    frame = profile.frames
    stacks = [[index.setdefault(f, len(index)) for f in key] for key in tl.stacks]
    names = [display_text(frame[f].text) if f in frame else display_text(f) for f in index]
    idle_rx = re.compile(IDLE_PATTERN)

    def idle(key) -> bool:  # a waiting leaf (a method's own name counts: Thread._wait_for_tstate_lock)
        name = frame[key[-1]].name if key and key[-1] in frame else (key[-1] if key else "")
        return not key or name == "[no Python frame]" or bool(idle_rx.match(name) or idle_rx.match(name.rsplit(".", 1)[-1]))

    idle_stack = [idle(key) for key in tl.stacks]
    # a thread is idle when nine in ten of its samples wait (its start-up is not work)
    waits, counts = [0] * len(tl.threads), [0] * len(tl.threads)
    for s, h in zip(tl.stack, tl.thread):
        counts[h] += 1
        waits[h] += idle_stack[s]
    busy = {h for h in range(len(counts)) if waits[h] < 0.9 * counts[h]}
    weights = set(tl.weight[:1000])
    constant = len(weights) == 1 and all(w == tl.weight[0] for w in tl.weight)
    return {
        "unit": profile.unit, "tick_ms": tl.tick_us / 1000.0, "samples": len(tl),
        "threads": [display_text(n) or "(no thread name)" for n in tl.threads],
        "idle": [i for i in range(len(tl.threads)) if i not in busy],
        "frames": names, "stacks": stacks,
        "t": _b64(tl.t), "s": _b64(tl.stack), "h": _b64(tl.thread),
        "w": None if constant else _b64(tl.weight), "w1": tl.weight[0] if constant else None,
    }


def timeline_script() -> str:
    """The page script (package data: ``templates/timeline.js``)."""
    return resources.files("profkit.reports").joinpath("templates/timeline.js").read_text(encoding="utf-8")
