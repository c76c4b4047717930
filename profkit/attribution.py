# SPDX-License-Identifier: Apache-2.0
"""Application-level attribution: where in *our* code the time (or the memory) goes.

Each sample is attributed to its deepest frame in the target's own code, so that "where in our
code" is answered even when the time is spent in a library call or a blocking read: the
application function that calls ``json.dumps`` is charged with the encoder's time, the one that
calls ``socket.recv`` with the wait. Pure functions over a :class:`~profkit.model.Profile`, used
by ``summary.md``, ``report.html`` and ``comment.md`` (``docs/contract.md``, "Application
functions").

A frame is *library* code, not the application's, when it is (first rule that applies):

1. matched by a ``--lib PATTERN`` (a regex searched in the frame's text);
2. matched by an ``--app PATTERN``: application code, whatever the rules below say;
3. synthetic (process, thread, ``[self]``, ``[unknown]``): skipped, neither;
4. kernel code (``_[k]``);
5. Python: a file in ``site-packages``/``dist-packages``, under ``lib/pythonX.Y/``, frozen or
   generated (``<frozen …>``, ``<string>``), or whose first path part is a standard-library module
   (py-spy shortens paths: ``json/encoder.py``, ``socketserver.py``) or one of
   :data:`PYTHON_FRAMEWORKS` (``gunicorn/…``, ``flask/…``);
6. JVM: a class in the JDK (``java.``, ``javax.``, ``jdk.``, ``sun.``, ``com.sun.``) or one of
   :data:`JVM_FRAMEWORKS`; native frames of a JVM (``JavaThread::run``) are library code;
7. native: libc, the dynamic loader, CPython's C API (``_PyEval_EvalFrameDefault``), C++'s
   ``std::``; other native functions are the application's.
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from profkit.frames import split_kind
from profkit.model import Frame, FrameKind, Number, Profile

__all__ = ["APP", "AppDelta", "AppRow", "JVM_FRAMEWORKS", "LIB", "NO_APP", "PYTHON_FRAMEWORKS", "Rules", "SKIP",
           "SiteRow", "allocated_types", "allocation_sites", "app_functions", "frame_classes", "app_weights", "compare_app_functions",
           "compare_app_weights", "parse_rules", "rule_text", "without_type_leaf"]

APP, LIB, SKIP, TYPE = "app", "lib", "skip", "type"
#: The row of samples with no application frame at all (runtime and library threads).
NO_APP = "[no application frame]"

#: Python packages counted as frameworks (library code), by their first path component.
PYTHON_FRAMEWORKS = frozenset(
    "gunicorn uvicorn waitress gevent eventlet greenlet tornado twisted flask werkzeug django starlette fastapi "
    "aiohttp anyio sniffio h11 httptools uvloop jinja2 markupsafe click sqlalchemy psycopg2 psycopg pymysql "
    "redis celery kombu requests urllib3 httpx httpcore certifi idna charset_normalizer pydantic pydantic_core "
    "numpy pandas simplejson ujson orjson yaml grpc google protobuf opentelemetry sentry_sdk newrelic ddtrace "
    "pytest _pytest pluggy setuptools pkg_resources pip memray".split())
#: JVM packages counted as frameworks (library code), as class-name prefixes.
JVM_FRAMEWORKS = ("java.", "javax.", "jdk.", "sun.", "com.sun.", "kotlin.", "kotlinx.", "scala.", "org.springframework.",
                  "org.apache.", "io.netty.", "org.eclipse.jetty.", "io.undertow.", "com.fasterxml.", "org.slf4j.",
                  "ch.qos.logback.", "org.hibernate.", "reactor.", "io.micrometer.", "com.google.", "okhttp3.",
                  "io.grpc.", "io.vertx.", "io.quarkus.", "org.glassfish.", "com.zaxxer.", "net.bytebuddy.",
                  "one.profiler.")
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | {"__future__", "_pydevd_bundle"}
_NATIVE_LIB = re.compile(
    r"\A(?:_?_?libc_|__GI_|_dl_|_IO_|__x64_|__sys_|_Py|Py[A-Z_]|__pthread|pthread_|start_thread|clone3?\Z|_start\Z"
    r"|__clone|malloc|calloc|realloc|free\Z|_int_|mem(?:cpy|move|set|cmp|chr)|str(?:len|cmp|ncmp|chr|dup)"
    r"|__memcpy|__memset|__strlen|epoll_|poll\Z|select\Z|read\Z|write\Z|recv|send|accept|futex|syscall"
    r"|std::|__gnu_cxx::|operator new|operator delete|__cxa_|__libc|_Unwind|do_syscall|entry_SYSCALL"
    r"|jni_|JNI_|JVM_|Java_[a-z]|Unsafe_|thread_native_entry|call_stub|Interpreter\Z|AsyncGetCallTrace"
    r"|\[)")
_JAVA_CLASS = re.compile(r"\A[\w$]+(?:\.[\w$]+)+(?:\.<(?:init|clinit)>)?\Z")


def _python_is_lib(path: str) -> bool:
    path = path.replace("\\", "/")
    if path[:1] == "<" or "site-packages/" in path or "dist-packages/" in path:
        return True
    if re.search(r"/lib/python\d", path) or path.startswith("/usr/lib/python"):
        return True
    first = path.lstrip("./").split("/", 1)[0]
    first = first[:-3] if first.endswith(".py") else first
    return first in _STDLIB or first in PYTHON_FRAMEWORKS


def _builtin_class(frame: Frame) -> str:
    """APP, LIB or SKIP by the built-in rules (see the module docstring)."""
    if frame.synthetic:
        return SKIP
    if frame.kind is FrameKind.KERNEL:
        return LIB
    if frame.file is not None and (frame.kind is FrameKind.PYTHON or frame.file.endswith((".py", ".pyx"))):
        return LIB if _python_is_lib(frame.file) else APP
    name = frame.name
    if "::" not in name and _JAVA_CLASS.match(name):
        return LIB if name.startswith(JVM_FRAMEWORKS) else APP
    if frame.file is not None and frame.file.endswith((".java", ".kt", ".scala")):
        return LIB if name.startswith(JVM_FRAMEWORKS) else APP
    return LIB if ("::" in name or _NATIVE_LIB.match(name)) else APP


@dataclass(frozen=True)
class Rules:
    """How frames are told apart: the built-in rules plus ``--app``/``--lib`` patterns.

    ``type_leaf``: the leaf of every stack is not code but what was sampled (async-profiler's
    and JFR's allocated class in alloc mode, the lock's class in lock mode): it is never an
    application function and is reported as the stack's *type*."""

    app: Tuple[str, ...] = ()
    lib: Tuple[str, ...] = ()
    type_leaf: bool = False
    _cache: Dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "_app_rx", [re.compile(p) for p in self.app])
        object.__setattr__(self, "_lib_rx", [re.compile(p) for p in self.lib])

    def classify(self, frame: Frame) -> str:
        """APP, LIB or SKIP for one frame."""
        if frame.synthetic:
            return SKIP
        text = frame.text
        if any(rx.search(text) for rx in self._lib_rx):  # type: ignore[attr-defined]
            return LIB
        if any(rx.search(text) for rx in self._app_rx):  # type: ignore[attr-defined]
            return APP
        return _builtin_class(frame)


def rule_text(rules: Rules) -> str:
    """One sentence for the reports: what counts as the application."""
    extra = "".join([f"; --app {', '.join(rules.app)}" if rules.app else "",
                     f"; --lib {', '.join(rules.lib)}" if rules.lib else ""])
    return ("each sample counted at its deepest frame in the target's own code (not the standard library, "
            "site-packages, the JDK, framework packages, libc or the kernel" + extra + "; see docs/contract.md)")


@dataclass(frozen=True)
class AppRow:
    """One application function: the weight attributed to it (its own time plus the library
    calls below it), its share, and where most of that weight went (the heaviest leaf below it)."""

    key: str
    weight: Number
    share: float
    spent_in: Optional[str]     #: the heaviest leaf below it; None when it is its own leaf
    spent_in_share: float       #: that leaf's part of this row, in %


def _classes(profile: Profile, rules: Rules) -> Tuple[Dict[str, bool], Dict[str, bool]]:
    """(frame id → is application code, frame id → is skipped) for every frame of a keyed profile.
    Python frames are classified once per file (the rule reads the file only, without patterns)."""
    frames = profile.frames
    by_file: Dict[str, str] = {}
    plain = not rules.app and not rules.lib
    is_app: Dict[str, bool] = {}
    skip: Dict[str, bool] = {}
    for fid in frames:
        f = frames[fid]
        if plain and f.file is not None and f.kind is FrameKind.PYTHON:
            c = by_file.get(f.file)
            if c is None:
                c = by_file[f.file] = rules.classify(f)
        else:
            c = rules.classify(f)
        is_app[fid] = c == APP
        skip[fid] = c == SKIP
    return is_app, skip


#: (frame id → application code, frame id → skipped) of a keyed profile's frames, for other analyses.
frame_classes = _classes


def _attribute(profile: Profile, rules: Rules, below: bool = True) -> Tuple[Dict[str, Number], Counter]:
    """(app key → weight, Counter of (app key, leaf key) → weight) over a keyed profile (the
    Counter only with ``below``: the summaries' "mostly in" column)."""
    keyed = profile if profile.is_keyed else profile.keyed()
    app_of, skip = _classes(keyed, rules)
    is_app = app_of.__getitem__
    weights: Dict[str, Number] = {}
    leaves: Counter = Counter()
    type_leaf = rules.type_leaf
    for key, w in keyed.items():
        code = key[:-1] if type_leaf and key else key
        app = next(filter(is_app, reversed(code)), None)
        name = NO_APP if app is None else app
        weights[name] = weights.get(name, 0) + w
        if below and code:
            leaf = code[-1] if not skip[code[-1]] else next((f for f in reversed(code) if not skip[f]), None)
            if leaf is not None:
                leaves[(name, leaf)] += w
    return weights, leaves


def _text(fid: str) -> str:
    """The key text of a keyed frame id (its annotation dropped)."""
    return split_kind(fid)[0]


def app_functions(profile: Optional[Profile], rules: Rules = Rules(), n: int = 10) -> Tuple[List[AppRow], float]:
    """The ``n`` heaviest application functions, and the share (%) of samples that have no
    application frame at all (threads of the runtime or of a library only)."""
    if not profile:
        return [], 0.0
    weights, below = _attribute(profile, rules)
    total = profile.total or 1
    leaf_of: Dict[str, Tuple[str, Number]] = {}
    for (app, leaf), w in below.items():
        if app not in leaf_of or w > leaf_of[app][1]:
            leaf_of[app] = (leaf, w)
    rows = []
    for app, w in sorted(((a, w) for a, w in weights.items() if a != NO_APP and w), key=lambda x: (-x[1], x[0]))[:n]:
        leaf, lw = leaf_of.get(app, (app, w))
        rows.append(AppRow(_text(app), w, 100.0 * w / total, None if leaf == app else _text(leaf),
                           100.0 * lw / w if w else 0.0))
    return rows, 100.0 * weights.get(NO_APP, 0) / total


def app_weights(profile: Profile, rules: Rules = Rules()) -> Dict[str, Number]:
    """Application function key → attributed weight (``NO_APP`` for stacks without one)."""
    weights, _ = _attribute(profile, rules, below=False)
    return {(_text(k) if k != NO_APP else k): w for k, w in weights.items()}


@dataclass(frozen=True)
class AppDelta:
    """An application function's attributed share (%) before and after."""

    key: str
    before: float
    after: float

    @property
    def delta(self) -> float:
        """Change in percentage points."""
        return self.after - self.before


def compare_app_functions(before: Profile, after: Profile, rules: Rules = Rules()) -> List[AppDelta]:
    """Every application function of either profile with its attributed shares, the biggest
    growth first (the samples without an application frame are one row, ``NO_APP``)."""
    return compare_app_weights(app_weights(before, rules), before.total, app_weights(after, rules), after.total)


def compare_app_weights(b: Dict[str, Number], b_total: Number, a: Dict[str, Number], a_total: Number) -> List[AppDelta]:
    """:func:`compare_app_functions` of weights already attributed (:func:`app_weights`, which
    a comparison computes beside reading each profile)."""
    bt, at = b_total or 1, a_total or 1
    out = [AppDelta(k, 100.0 * b.get(k, 0) / bt, 100.0 * a.get(k, 0) / at) for k in set(b) | set(a)]
    return sorted(out, key=lambda d: (-d.delta, d.key))


def parse_rules(app: Sequence[str] = (), lib: Sequence[str] = (), *, type_leaf: bool = False) -> Rules:
    """Rules from ``--app``/``--lib`` patterns, each checked to be a regular expression."""
    from profkit.errors import UsageError

    for flag, patterns in (("--app", app), ("--lib", lib)):
        for p in patterns:
            try:
                re.compile(p)
            except re.error as e:
                raise UsageError(f"{flag} {p!r} is not a valid regular expression: {e}") from None
    return Rules(tuple(app), tuple(lib), type_leaf)


@dataclass(frozen=True)
class SiteRow:
    """One allocation site: the frame that allocates (the leaf's caller when the leaf is the
    allocated type), the application function above it, the weight, and the types allocated there."""

    site: str
    app: Optional[str]
    weight: Number
    share: float
    types: List[Tuple[str, float]]  #: (type, % of this site's weight), heaviest first


def allocation_sites(profile: Optional[Profile], rules: Rules = Rules(), n: int = 10) -> List[SiteRow]:
    """The ``n`` heaviest allocation sites (by the profile's weight, bytes for allocation
    profiles), each with the application function above it and, when the leaf is the allocated
    type (``rules.type_leaf``), the types allocated there."""
    if not profile:
        return []
    keyed = profile if profile.is_keyed else profile.keyed()
    app_of, skip = _classes(keyed, rules)
    is_app = app_of.__getitem__
    sites: Dict[Tuple[str, Optional[str]], Number] = {}
    types: Dict[Tuple[str, Optional[str]], Counter] = {}
    for key, w in keyed.items():
        code = key[:-1] if rules.type_leaf else key
        site = next((f for f in reversed(code) if not skip[f]), None)
        if site is None:
            continue
        app = next(filter(is_app, reversed(code)), None)
        k = (site, app)
        sites[k] = sites.get(k, 0) + w
        if rules.type_leaf and key:
            types.setdefault(k, Counter())[key[-1]] += w
    total = profile.total or 1
    rows = []
    for (site, app), w in sorted(sites.items(), key=lambda x: (-x[1], x[0][0], x[0][1] or ""))[:n]:
        kinds = [(_text(t), 100.0 * tw / w) for t, tw in (types.get((site, app)) or Counter()).most_common(3)]
        rows.append(SiteRow(_text(site), None if app is None or app == site else _text(app), w, 100.0 * w / total, kinds))
    return rows


def without_type_leaf(profile: Profile) -> Profile:
    """A profile of the allocating code only: every stack's leaf (the allocated type) dropped."""
    out = Profile(profile.unit, profile.meta, keyed=profile.is_keyed)
    for key, w in profile.items():
        if len(key) > 1:
            out.add_tokens(key[:-1], w)
    return out


def allocated_types(profile: Optional[Profile], n: int = 10) -> List[Tuple[str, Number, float]]:
    """``(type, weight, share %)`` of the leaf frames of a profile whose leaves are types."""
    if not profile:
        return []
    keyed = profile if profile.is_keyed else profile.keyed()
    by: Counter = Counter()
    for key, w in keyed.items():
        if key:
            by[key[-1]] += w
    total = profile.total or 1
    return [(_text(t), w, 100.0 * w / total) for t, w in sorted(by.items(), key=lambda x: (-x[1], x[0]))[:n]]
