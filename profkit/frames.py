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

__all__ = ["Frame", "FrameKind", "IDLE_PATTERN", "function_key", "key_folded_stack", "key_token", "normal_token",
           "split_kind", "strip_folded_lines"]


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
    """(name, file, line) of a frame's text without its annotation; a py-spy thread or process
    frame (``thread (12): Thread-1 (worker)``) is a name, never split."""
    if text[-1:] != ")" or " (" not in text or _special_kind(text) is not None:
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
        """The function key: name and file, without the line, the name normalised
        (``handle (app.py)``; see :func:`function_key`)."""
        return function_key(self.text)

    def keyed(self) -> "Frame":
        """This frame named by its key (line dropped, name normalised), its kind kept: the frame
        whose :attr:`token` is :func:`key_token` of this one's."""
        k = function_key(self.text)
        if self.file is None:
            return self if k == self.name else Frame(k, self.kind)
        loc = f" ({self.file})"
        if k.endswith(loc) and len(k) > len(loc):
            return self._replace(name=k[:-len(loc)], line=None)
        return Frame(k, self.kind)  # a name normalisation reached into an odd location: the key as text

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
        special = _special_kind(text)
        if special is not None:
            return cls(text, kind or special)
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


def _strip_line(text: str) -> str:
    """``handle (app/views.py:42)`` → ``handle (app/views.py)``: the text without its line number."""
    if not text.endswith(")"):
        return text
    m = _LINE_NUMBER.match(text)
    return f"{m.group(1)} ({m.group(2)})" if m else text


def function_key(name: str) -> str:
    """The key that identifies a function across profiles: the name and file without the line
    (``handle (app/views.py:42)`` → ``handle (app/views.py)``, ``shared/CONTRACT.md``), the name
    normalised so that the same code has the same key in every run and from every collector:

    * JVM classes spelled with dots (``java/lang/Thread.run`` → ``java.lang.Thread.run``);
    * lambda and hidden-class counters and addresses removed
      (``Foo$$Lambda$18.0x00007fcb0000d000.handle`` → ``Foo$$Lambda.handle``);
    * gcc clone suffixes removed (``memcpy.constprop.0``, ``f.isra.0``, ``g.part.3``, ``h.cold`` → the function);
    * process and thread frames named, never numbered: profkit's process root ``name [pid]``
      and py-spy's ``process PID:"cmd"`` → ``[process name]``; py-spy's ``thread (TID): name``
      and async-profiler's ``[name tid=N]`` → ``[thread name]`` (``[thread]`` without a name).
    """
    return _normalise(_strip_line(name))


#: profkit's process root frame of a multi-target profile: ``name [pid]``.
_PROCESS_ROOT = re.compile(r"\A(.*\S) \[(\d+)\]\Z", re.S)
#: py-spy --subprocesses: ``process 1234:"python3 app.py"``.
_PYSPY_PROCESS = re.compile(r'\Aprocess \d+:"(.*)"\Z', re.S)
#: py-spy --threads: ``thread (0x7f12)``, ``thread (1234): MainThread``.
_PYSPY_THREAD = re.compile(r"\Athread \((?:0x[0-9a-fA-F]+|\d+)\)(?:: (.*))?\Z", re.S)
#: async-profiler -t (and profkit's JFR reader): ``[main tid=1234]``, ``[tid=1234]``.
_AP_THREAD = re.compile(r"\A\[(?:(.*) )?tid=\d+\]\Z", re.S)
#: Keyed process and thread frames.
_KEYED_PROCESS = re.compile(r"\A\[process(?: .*)?\]\Z", re.S)
_KEYED_THREAD = re.compile(r"\A\[thread(?: .*)?\]\Z", re.S)

_LAMBDA_COUNTER = re.compile(r"\$\$Lambda\$\d+")
_HIDDEN_ADDRESS = re.compile(r"(?<=[\w$])[./+]0x[0-9a-fA-F]+(?=[.\[]|\Z)")
_JVM_SLASHED = re.compile(r"\A[A-Za-z_$][\w$]*(?:/[\w$]+)+(?:\.[\w$<>]+)?(?:\[\])*\Z")
_GCC_CLONE = re.compile(r"(?<=.)(?:\.(?:constprop|isra|part|lto_priv|localalias)\.\d+|\.cold)+\Z", re.S)
#: What a name normalisation may change (a superset: every JVM class path has a '/').
_NAME_TRIGGER = re.compile(r"\$\$Lambda\$|0x|/|\.(?:constprop|isra|part|lto_priv|localalias)\.|\.cold")


def _special(text: str) -> Optional[Tuple[FrameKind, str]]:
    """``(kind, key)`` of the frames tools and profkit make up (processes, threads, ``[self]``…),
    else None. The key names a process or thread, never its number."""
    last = text[-1:]
    if last == "]":
        if text[:1] == "[":
            m = _AP_THREAD.match(text)
            if m is not None:
                return FrameKind.THREAD, f"[thread {m.group(1)}]" if m.group(1) else "[thread]"
            if _KEYED_THREAD.match(text):
                return FrameKind.THREAD, text
            return (FrameKind.PROCESS if _KEYED_PROCESS.match(text) else FrameKind.SYNTHETIC), text
        m = _PROCESS_ROOT.match(text)
        if m is not None:
            return FrameKind.PROCESS, f"[process {m.group(1)}]"
    if text[:7] == "thread ":
        m = _PYSPY_THREAD.match(text)
        if m is not None:
            return FrameKind.THREAD, f"[thread {m.group(1)}]" if m.group(1) else "[thread]"
    if text[:8] == "process " and last == '"':
        m = _PYSPY_PROCESS.match(text)
        if m is not None:
            return FrameKind.PROCESS, f"[process {m.group(1)}]"
    return None


def _special_kind(text: str) -> Optional[FrameKind]:
    """PROCESS, THREAD or SYNTHETIC for the frames tools and profkit make up, else None."""
    sp = _special(text)
    return sp[0] if sp is not None else None


def _normal_name(name: str) -> str:
    """A function name as keys spell it (see :func:`function_key`)."""
    if "$$Lambda$" in name:
        name = _LAMBDA_COUNTER.sub("$$Lambda", name)
    if "0x" in name:
        name = _HIDDEN_ADDRESS.sub("", name)
    if "/" in name and _JVM_SLASHED.match(name):
        name = name.replace("/", ".")
    if "." in name:
        name = _GCC_CLONE.sub("", name)
    return name


def _normalise(k: str) -> str:
    """A key text without a line number, normalised (see :func:`function_key`)."""
    sp = _special(k)
    if sp is not None:
        return sp[1]
    last = k[-1:]
    if not _NAME_TRIGGER.search(k):
        return k
    m = _FILE_ONLY.match(k) if last == ")" else None
    if m is not None and not _NOT_A_FILE.match(m.group(2)):
        name = m.group(1)
        return _normal_name(name) + k[len(name):]
    return _normal_name(k)


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


#: A JVM class path starts a frame with ``word/`` (searched on ``";" + stack``).
_JVM_FRAME_START = re.compile(r";[A-Za-z_$][\w$]*/")


def _may_normalise(stack: str) -> bool:
    """Whether a (line-stripped) stack may hold a frame that :func:`_normalise` changes: a cheap
    superset of its cases (substring tests, then one regex with a literal start)."""
    return ("]" in stack or "0x" in stack or "$$Lambda$" in stack or "thread (" in stack or "process " in stack
            or ".constprop." in stack or ".isra." in stack or ".part." in stack or ".cold" in stack
            or ".lto_priv." in stack or ".localalias." in stack
            or ("/" in stack and _JVM_FRAME_START.search(";" + stack) is not None))


def strip_folded_lines(stack: str) -> str:
    """A folded stack with the line number of every frame dropped, annotations kept:
    ``a (m.py:3);b (n.py:9)_[j]`` → ``a (m.py);b (n.py)_[j]`` (one pass of the regex engine over
    the whole text: a million frames in about a quarter of a second). Readers that key as they
    read use it per line and then :func:`normal_token` once per distinct frame."""
    if ":" not in stack:
        return stack
    text = _KEY_PLAIN.sub(";)", ";" + stack[::-1])
    if "_[" in stack:
        text = _KEY_ANNOTATED.sub(r";\1)", text)
    return text[:0:-1]


def key_folded_stack(stack: str) -> str:
    """A folded stack (frames joined by ``;``) with every frame named by its function key,
    annotations kept: ``a (m.py:3);b (n.py:9)_[j]`` → ``a (m.py);b (n.py)_[j]``.

    The same as applying :func:`function_key` to each frame's name (:func:`key_token`), many
    times faster on long stacks: line numbers go in one pass over the whole text
    (:func:`strip_folded_lines`), and only a stack that may hold a name to normalise is taken
    apart frame by frame.
    """
    stack = strip_folded_lines(stack)
    if not _may_normalise(stack):
        return stack
    return ";".join(map(normal_token, stack.split(";")))


def normal_token(token: str) -> str:
    """A token whose line number is gone (:func:`strip_folded_lines`) with its name normalised,
    its annotation kept: ``java/lang/Thread.run_[j]`` → ``java.lang.Thread.run_[j]``."""
    text, kind = split_kind(token)
    return _normalise(text) + kind


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
