# SPDX-License-Identifier: Apache-2.0
"""Frames as structured data: a function name, its file and line where known, and a kind.

This is the one place where a frame's folded text is taken apart (besides the parsers that read
a tool's own capture format and build frames from its fields). Everything downstream — keys,
palettes, exports, reports, comparisons — reads :class:`Frame` fields::

    folded token                          Frame(name, kind, file, line)
    handle (app/views.py:42)         →    ("handle", PYTHON, "app/views.py", 42)
    handle (app/views.py)            →    ("handle", PYTHON, "app/views.py", None)
    Foo.bar (Foo.java:12)_[j]        →    ("Foo.bar", JIT, "Foo.java", 12)
    do_sys_open_[k]                  →    ("do_sys_open", KERNEL, None, None)
    [self]                           →    ("[self]", SYNTHETIC, None, None)

A location is the last `` (…)`` of the text when what is inside names a file (not a bare
number such as py-spy's ``thread (1234)``); a line is the digits after its last colon, read
exactly as :func:`function_key` reads them, so a frame's :attr:`Frame.key` is always the
function key of its text (``shared/CONTRACT.md``, "Comparing profiles": name and file, without
the line). Folded text is unchanged by all this: :attr:`Frame.token` writes a frame back
exactly as it was read.

A leaf module (standard library only).
"""
from __future__ import annotations

import enum
import re
from typing import List, NamedTuple, Optional, Tuple

__all__ = ["Frame", "FrameKind", "IDLE_PATTERN", "function_key", "key_folded_stack", "split_kind"]


class FrameKind(str, enum.Enum):
    """What kind of code a frame is; drives colours and folded annotations."""

    UNKNOWN = "unknown"          #: a plain folded frame with no annotation
    PYTHON = "python"            #: ``func (file.py:line)`` as py-spy writes it
    NATIVE = "native"            #: user-space native code
    KERNEL = "kernel"            #: ``_[k]``
    JIT = "jit"                  #: ``_[j]`` JIT-compiled (JVM C2, V8, …)
    INLINED = "inlined"          #: ``_[i]``
    INTERPRETED = "interpreted"  #: ``_[0]`` (async-profiler ``--ann``)
    C1 = "c1"                    #: ``_[1]`` C1-compiled (async-profiler ``--ann``)
    WAKER = "waker"              #: ``_[w]`` waker stack in chain graphs
    ALLOC_INSIDE_TLAB = "alloc-inside-tlab"    #: allocated class, in TLAB (async-profiler ``_[i]`` on a leaf)
    ALLOC_OUTSIDE_TLAB = "alloc-outside-tlab"  #: allocated class, outside TLAB (``_[k]`` on a leaf)
    PROCESS = "process"          #: a synthetic per-process root frame
    THREAD = "thread"            #: a synthetic per-thread frame
    SYNTHETIC = "synthetic"      #: bracketed constants: ``[self]``, ``[truncated]``, ``[collector error: …]``


# Folded annotations. ALLOC_* share async-profiler's own suffixes, so an allocation profile
# written out and read back decodes them as kernel/inlined unless the reader knows the mode.
SUFFIX_OF = {
    FrameKind.KERNEL: "_[k]",
    FrameKind.JIT: "_[j]",
    FrameKind.INLINED: "_[i]",
    FrameKind.WAKER: "_[w]",
    FrameKind.INTERPRETED: "_[0]",
    FrameKind.C1: "_[1]",
    FrameKind.ALLOC_INSIDE_TLAB: "_[i]",
    FrameKind.ALLOC_OUTSIDE_TLAB: "_[k]",
}
KIND_OF_SUFFIX = {
    "k": FrameKind.KERNEL,
    "j": FrameKind.JIT,
    "i": FrameKind.INLINED,
    "w": FrameKind.WAKER,
    "0": FrameKind.INTERPRETED,
    "1": FrameKind.C1,
}
_KIND_LETTERS = frozenset(KIND_OF_SUFFIX)
#: ``name (file:line)``: the name greedy, the file lazy (so ``f (a:1:2)`` is file ``a:1``, line 2).
_LINE_NUMBER = re.compile(r"\A(.*) \((.+?):([0-9]+)\)\Z", re.S)
#: ``name (file)``: a location without a line (py-spy ``--nolineno``).
_FILE_ONLY = re.compile(r"\A(.*\S) \(([^()]+)\)\Z", re.S)
#: What a location is not: a bare number (``thread (1234)``, ``(0x7f…)``).
_NOT_A_FILE = re.compile(r"\A(?:\d+|0x[0-9a-fA-F]+)\Z")
_PYTHON_FILE = re.compile(r"(?:.+\.pyx?|<[^>]*>)\Z", re.S)


def split_kind(token: str) -> Tuple[str, str]:
    """``(text, annotation)`` of a folded token: ``"read_[k]"`` → ``("read", "_[k]")``."""
    if len(token) > 4 and token[-1] == "]" and token[-4:-2] == "_[" and token[-2] in _KIND_LETTERS:
        return token[:-4], token[-4:]
    return token, ""


def _location(text: str) -> Tuple[str, Optional[str], Optional[int]]:
    """(name, file, line) of a frame's text without its annotation."""
    if text[-1:] != ")" or " (" not in text:
        return text, None, None
    m = _LINE_NUMBER.match(text)
    if m is not None:
        return m.group(1), m.group(2), int(m.group(3))
    m = _FILE_ONLY.match(text)
    if m is not None and not _NOT_A_FILE.match(m.group(2)):
        return m.group(1), m.group(2), None
    return text, None, None


class Frame(NamedTuple):
    """One frame: its name (the function), its kind, and its file and line where known.

    ``Frame("main")`` and ``Frame("read", FrameKind.KERNEL)`` are frames without a location;
    :meth:`parse` (or :meth:`from_token`) reads ``"handle (app.py:42)"`` into name, file and line.
    """

    name: str
    kind: FrameKind = FrameKind.UNKNOWN
    file: Optional[str] = None
    line: Optional[int] = None

    @property
    def text(self) -> str:
        """The frame as profkit shows it and writes it: ``name (file:line)``, ``name (file)`` or ``name``."""
        if self.file is None:
            return self.name
        return f"{self.name} ({self.file}:{self.line})" if self.line is not None else f"{self.name} ({self.file})"

    @property
    def token(self) -> str:
        """The folded text of this frame: its text plus the kind's annotation, if it has one."""
        suffix = SUFFIX_OF.get(self.kind)
        return self.text + suffix if suffix else self.text

    @property
    def key(self) -> str:
        """The function key: name and file, without the line (``handle (app.py)``)."""
        if self.file is None:
            return self.name
        return f"{self.name} ({self.file})"

    @property
    def location(self) -> str:
        """``file:line``, ``file`` or ``""``."""
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    @property
    def synthetic(self) -> bool:
        """True for frames profkit or a tool made up: process and thread roots, ``[self]`` …"""
        return self.kind in (FrameKind.PROCESS, FrameKind.THREAD, FrameKind.SYNTHETIC)

    @classmethod
    def parse(cls, text: str, kind: Optional[FrameKind] = None) -> "Frame":
        """A frame from its text (no annotation): the location split off, the kind inferred
        (PYTHON for ``.py`` files, SYNTHETIC for ``[…]``) unless given."""
        if text[:1] == "[" and text[-1:] == "]":
            return cls(text, kind or FrameKind.SYNTHETIC)
        name, file, line = _location(text)
        if kind is None:
            kind = FrameKind.PYTHON if file is not None and _PYTHON_FILE.match(file) else FrameKind.UNKNOWN
        return cls(name, kind, file, line)

    @classmethod
    def from_token(cls, token: str) -> "Frame":
        """Decode one folded frame: an ``_[x]`` annotation becomes the kind, the text is parsed."""
        text, suffix = split_kind(token)
        if suffix:
            name, file, line = _location(text)
            return cls(name, KIND_OF_SUFFIX[suffix[-2]], file, line)
        return cls.parse(token)


def function_key(name: str) -> str:
    """The key that identifies a function across profiles: the name and file without the line.

    ``handle (app/views.py:42)`` → ``handle (app/views.py)`` (``shared/CONTRACT.md``).
    """
    if not name.endswith(")"):
        return name
    m = _LINE_NUMBER.match(name)
    return f"{m.group(1)} ({m.group(2)})" if m else name


#: Leaf functions that mean "waiting, not working": kernel idle loops, blocking syscalls,
#: and the blocking calls of the Python and Java standard libraries.
IDLE_PATTERN = (
    r"^(?:cpu_idle|default_idle|native_safe_halt|arch_cpu_idle|do_idle|cpu_startup_entry"
    r"|cpuidle_enter_state|cpuidle_enter|intel_idle|acpi_idle_do_entry|mwait_idle|poll_idle"
    r"|schedule|__schedule|schedule_timeout|schedule_hrtimeout_range|futex_wait(?:_queue)?"
    r"|do_nanosleep|ep_poll|do_epoll_wait|__x64_sys_epoll_wait|epoll_wait|poll_schedule_timeout"
    r"|pthread_cond_wait|pthread_cond_timedwait|__futex_abstimed_wait_common|nanosleep|__GI___nanosleep"
    r"|select|poll|wait|accept|_accept|sleep|_wait_for_tstate_lock|recv_into|readinto|serve_forever"
    r"|java/lang/Object\.wait0?|java\.lang\.Object\.wait0?|jdk/internal/misc/Unsafe\.park"
    r"|jdk\.internal\.misc\.Unsafe\.park|java/lang/Thread\.sleep0?|java\.lang\.Thread\.sleep0?"
    r"|sun/nio/ch/EPoll\.wait|sun\.nio\.ch\.EPoll\.wait|sun/nio/ch/Net\.accept|sun\.nio\.ch\.Net\.accept"
    r")$"
)


# Function keys of whole folded stacks at once, with the regex engine instead of a Python
# loop per frame. The text is reversed, so that the end of a frame (``…(file:12)`` plus an
# optional ``_[x]`` annotation) is where a match starts (right after ``;``), and the condition
# that a `` (`` comes before the line number's colon becomes a lookahead. Each pattern is
# :func:`function_key`'s regex read backwards: ``)``, the digits, the last ``:``, then at least
# one character and `` (`` within the same frame. Each repeated class is followed by a character
# it cannot match, so backtracking stays linear (no possessive quantifiers: Python 3.9 lacks them).
_KEY_PLAIN = re.compile(r";\)[0-9]+:(?=[^;][^;(]*(?:\((?! )[^;(]*)*\( )")
_KEY_ANNOTATED = re.compile(r";(\][kjiw01]\[_)\)[0-9]+:(?=[^;][^;(]*(?:\((?! )[^;(]*)*\( )")


def key_folded_stack(stack: str) -> str:
    """A folded stack (frames joined by ``;``) with every frame named by its function key,
    annotations kept: ``a (m.py:3);b (n.py:9)_[j]`` → ``a (m.py);b (n.py)_[j]``.

    The same as applying :func:`function_key` to each frame's name, many times faster on the
    long stacks of a large profile (a million frames in about a quarter of a second).
    """
    if ":" not in stack:
        return stack
    text = _KEY_PLAIN.sub(";)", ";" + stack[::-1])
    if "_[" in stack:
        text = _KEY_ANNOTATED.sub(r";\1)", text)
    return text[:0:-1]


def keyed_tokens(tokens: List[str]) -> List[str]:
    """The keyed token of each of ``tokens``, in order (all keyed as one ``;``-joined text)."""
    text = ";".join(tokens)
    if text.count(";") == max(0, len(tokens) - 1):
        return key_folded_stack(text).split(";") if tokens else []
    # A frame name with a ';' in it (not from folded text): one frame at a time.
    return [key_token(t) for t in tokens]


def key_token(token: str) -> str:
    """One token named by its function key, its annotation kept (the reference for the above)."""
    text, kind = split_kind(token)
    return function_key(text) + kind
