# SPDX-License-Identifier: Apache-2.0
"""``perf``: the text of ``perf script``, collapsed exactly as FlameGraph's ``stackcollapse-perf.pl``.

A capture is a run of samples, each an event header followed by one frame line per stack
entry (leaf first) and a blank line::

    java 12688/12764 [002] 6544038.708352:   10101010 cpu-clock:
            7f722d142778 Ljava/io/PrintStream;::print (/tmp/perf-19982.map)
            ffffffff8103ce3b native_safe_halt+0x1b ([kernel.kallsyms])

Each sample adds its period (the number before the event name, else 1) to the stack
``comm;root;…;leaf``. The naming rules are the Perl script's, as of FlameGraph commit 41fee1f
(the version that produced ``shared/conformance/flamegraph-perf/results``):

* the root frame is the comm with spaces turned into ``_``; ``pid`` makes it ``comm-PID`` and
  ``tid`` ``comm-PID/TID``, with ``?`` for a PID the capture does not show;
* only samples of one event type are kept: ``event_filter``, else the first one seen;
* a symbol loses its ``+0x…`` offset and, unless it looks like a Go method, everything from
  its first ``(`` (C++ argument lists); ``;`` becomes ``:`` and quote characters go; a symbol
  that starts with ``(`` gives no frame at all (perf's ``(comm)``, but ``(anonymous
  namespace)::f`` too);
* ``[unknown]`` symbols are named after their module (``[libc.so.6]``), with the address
  too under ``addrs``; in processes named ``java…`` a name with a ``/`` loses a leading ``L``;
* ``a->b->c`` (perf-map-agent's inlined Java frames) becomes ``a;b_[i];c_[i]``; ``kernel``
  adds ``_[k]`` to frames of modules that start with ``[`` or end in ``vmlinux`` and do not
  mention ``unknown``, and ``jit`` adds ``_[j]`` to ``/tmp/perf-PID.map`` frames (neither
  ``_[i]`` nor ``_[j]`` goes on a name that already holds it).

One difference is deliberate: a last sample without the blank line after it still counts (the
Perl script drops it; inferno keeps it).

The parser reads the capture a block at a time, works on bytes and remembers the folded
frame of each distinct frame line (perf repeats them heavily, so most lines cost one dict
lookup). Nothing is held per sample but the current stack; memory is bounded by the number of
distinct stacks and a cap on the remembered lines.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from profkit.errors import CollectorNotInstalled, Diagnostics
from profkit.inputs import MAX_LINE, Source
from profkit.model import Profile, ProfileMeta

from collectors.base import option
from collectors.perf_timed import TimedSamples

__all__ = ["EVENT_HEADER", "PerfOptions", "collapse", "parse"]


@dataclass(frozen=True)
class PerfOptions:
    """Options of the ``perf script`` parser, named after ``stackcollapse-perf.pl``'s flags."""

    pid: bool = option(False, "include the PID with the process name (comm-PID)")
    tid: bool = option(False, "include the PID and TID with the process name (comm-PID/TID)")
    kernel: bool = option(False, "annotate kernel frames with _[k]")
    jit: bool = option(False, "annotate JIT frames (/tmp/perf-PID.map) with _[j]")
    all: bool = option(False, "all annotations (kernel and jit)")
    addrs: bool = option(False, "include raw addresses where symbols cannot be found")
    event_filter: str = option("", "keep only samples of this event type (default: the first one seen)")
    inline: bool = option(False, "un-inline user-space frames with addr2line (slow; needs binutils)")
    context: bool = option(False, "with inline, add file:line source context to each frame")


# -- the line grammar (Perl regex semantics; bytes patterns keep \s \d \w ASCII, as Perl's are) --
#: An event header: comm (which may contain spaces), then PID or PID/TID, then whitespace.
_EVENT = re.compile(rb"(\S.+?)\s+(\d+)/*(\d+)*\s+")
#: The period and event name at the end of a header (``…: 10101010 cpu-clock:``).
_PERIOD_EVENT = re.compile(rb":\s*(\d+)*\s+(\S+):\s*$")
#: The event-header pattern, for format sniffing (:class:`collectors.perf.PerfCollector`).
EVENT_HEADER = _EVENT
#: A frame line: address, symbol, `` (module)``. The greedy symbol makes the module start at
#: the last `` (`` that some later ``)`` closes, and the module runs to the last ``)`` on the
#: line, spaces and all: ``f (/opt/my app/x.so)`` is in module ``/opt/my app/x.so``, while
#: ``f (/lib/x.so (deleted))`` is symbol ``f (/lib/x.so`` in module ``deleted)``.
_FRAME = re.compile(rb"\s*(\w+)\s*(.+) \((.*)\)")
_OFFSET = re.compile(rb"\+0x[\da-f]+$")
_GO_METHOD = re.compile(rb"\.\(.*\)\.")                     # net/http.(*Client).Do keeps its parens
_ARGUMENTS = re.compile(rb"\((?!anonymous namespace\)).*")  # C++ "(anonymous namespace)" is a name
_JIT_MODULE = re.compile(rb"/tmp/perf-\d+\.map")
_NOT_INLINABLE = re.compile(rb"(perf-\d+.map|kernel\.|\[[^\]]+\])")
_DISCRIMINATOR = re.compile(r" \(discriminator \S+\)")

#: Frame lines whose folded form is cached; past this many the cache starts afresh.
CACHE_LIMIT = 200_000
#: Lines handed to the collapser at a time when it is given a plain iterable.
_BATCH = 4096
_BLOCK = 1 << 22


def _decode(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


class _Naming:
    """The per-line rules: how one frame line becomes folded frames."""

    def __init__(self, options: PerfOptions, diag: Diagnostics):
        self.kernel = options.kernel or options.all
        self.jit = options.jit or options.all
        self.addrs = options.addrs
        self.inline = options.inline
        self.context = options.context
        self.diag = diag
        self._a2l: Dict[Tuple[bytes, bytes], str] = {}
        self._nm: Dict[bytes, str] = {}

    def frames(self, m: "re.Match[bytes]", java: bool) -> List[str]:
        """The folded frames of a matched frame line, root first (none for a line perf names
        only by its process)."""
        pc, rawfunc, mod = m.groups()
        if self.inline and not _NOT_INLINABLE.search(mod):
            res = self._addr2line(pc, rawfunc, mod)
            # An empty or "??" answer (missing or stripped binary) falls back to the symbol.
            if res not in ("", "??", "??:??:0"):
                return res.split(";")
        rawfunc = _OFFSET.sub(b"", rawfunc, 1)
        if rawfunc[:1] == b"(":
            return []
        parts = rawfunc.split(b"->")
        while parts and not parts[-1]:
            parts.pop()  # Perl's split drops trailing empty fields
        kernel = self.kernel and (mod[:1] == b"[" or mod.endswith(b"vmlinux")) and b"unknown" not in mod
        jit = self.jit and _JIT_MODULE.search(mod) is not None
        out: List[str] = []
        for func in parts:
            if func == b"[unknown]":
                name = mod.rpartition(b"/")[2] if mod != b"[unknown]" else b"unknown"
                func = b"[" + name + b" <" + pc + b">]" if self.addrs else b"[" + name + b"]"
            func = func.replace(b";", b":")
            if not _GO_METHOD.search(func):
                func = _ARGUMENTS.sub(b"", func, 1)
            func = func.replace(b'"', b"").replace(b"'", b"")
            if java and func[:1] == b"L" and b"/" in func:
                func = func[1:]
            # An inlined or JIT annotation already in the name (some JIT maps write their own) is
            # not added twice; _[k] is, as the Perl script appends it unconditionally.
            if out:
                if b"_[i]" not in func:
                    func += b"_[i]"
            elif kernel:
                func += b"_[k]"
            elif jit:
                if b"_[j]" not in func:
                    func += b"_[j]"
            out.append(_decode(func))
        return out

    # -- --inline ---------------------------------------------------------------------------
    def _addr2line(self, pc: bytes, rawfunc: bytes, mod: bytes) -> str:
        key = (pc, mod)
        res = self._a2l.get(key)
        if res is None:
            res = self._a2l[key] = self._resolve(_decode(pc), _decode(rawfunc), _decode(mod))
        return res

    def _resolve(self, pc: str, rawfunc: str, mod: str) -> str:
        out = self._run(["addr2line", "-a", pc, "-e", mod, "-i", "-f", "-s", "-C"], mod)
        out = out.split("\n", 1)[1] if "\n" in out else ""  # the first line echoes the address
        if "??\n??:0" in out:
            # addr2line knows nothing of this address; if perf gave symbol+offset, ask again at
            # the symbol's own address from nm.
            m = re.match(r"(.+)\+0x([0-9a-f]+)\Z", rawfunc)
            if m:
                if mod not in self._nm:
                    self._nm[mod] = self._run(["nm", mod], mod)
                sym = re.search(r"^([0-9a-f]+) . " + re.escape(m.group(1)) + r"$", self._nm[mod], re.M)
                if sym:
                    return self._resolve("0x%x" % (int(sym.group(1), 16) + int(m.group(2), 16)), "", mod)
        frames: List[str] = []
        lines = [_DISCRIMINATOR.sub("", l, 1) for l in out.split("\n")[:-1]]
        for func, where in zip(lines[0::2], lines[1::2]):
            frames.append(f"{func}:{where}" if self.context else func)
        return ";".join(reversed(frames))  # addr2line lists the innermost function first

    def _run(self, argv: List[str], mod: str) -> str:
        # Like the Perl script, a tool that fails only loses the un-inlining of that module
        # (its frames keep perf's symbol); say so once per module.
        try:
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        except OSError as e:
            self.diag.warn(f"{argv[0]} failed: {e}")
            return ""
        if done.returncode:
            err = _decode(done.stderr).strip().splitlines()
            self.diag.warn(f"{argv[0]} failed on {mod}" + (f": {err[0]}" if err else ""))
        return _decode(done.stdout)


_SPACE = b" \t\n\r\x0b\x0c"  # \s in a bytes pattern
_COLON = ord(":")


def _header_fields(line: bytes) -> Optional[Tuple[Tuple[bytes, bytes, Optional[bytes]], Optional[bytes],
                                                   Optional[bytes]]]:
    """``((comm, pid, tid), period, event)`` of an event header, None if the line is not one.

    Exactly what ``_EVENT`` and ``_PERIOD_EVENT`` read (period and event are None where the
    latter finds nothing); the usual shapes are read from the line's words instead:

    * a one-word comm of two characters or more, then ``PID`` or ``PID/TID``: the lazy comm
      cannot end inside that word (the pattern wants whitespace next) and ends at it (what
      follows is a valid PID field, then whitespace);
    * the endings ``…: 1234 cycles:`` and ``…: cycles:``: no colon left of the one used can
      start a match, since between that colon and the event name the pattern allows only
      whitespace and one run of digits.
    """
    words = line.split()
    ids = None
    if len(words) >= 3 and len(words[0]) > 1 and line[0] not in _SPACE:
        pid = words[1]
        if pid.isdigit():
            ids = (words[0], pid, None)
        else:
            pid, slash, tid = pid.partition(b"/")
            tid = tid.lstrip(b"/")
            if slash and pid.isdigit() and (tid.isdigit() or not tid):
                ids = (words[0], pid, tid or None)
    if ids is None:
        m = _EVENT.match(line)
        if m is None:
            return None
        ids = m.group(1, 2, 3)
    if len(words) >= 3:
        event = words[-1]
        if event[-1] == _COLON and len(event) > 1:
            p = words[-2]
            if p[-1] == _COLON:
                return ids, None, event[:-1]
            if words[-3][-1] == _COLON and p.isdigit():
                return ids, p, event[:-1]
    m = _PERIOD_EVENT.search(line)
    return (ids, m.group(1), m.group(2)) if m is not None else (ids, None, None)


class _Collapser:
    """One collapse in progress: the line tables, the event filter and the stacks so far.

    It is fed lines and runs the Perl script's line-by-line state machine. Frames are
    interned in the profile being built as they are first seen, so most lines cost one dict
    lookup and a stack is a tuple of frame ids, gathered leaf first.
    """

    def __init__(self, options: PerfOptions, diag: Diagnostics):
        self.naming = _Naming(options, diag)
        self.diag = diag
        self.with_tid, self.with_pid = options.tid, options.pid
        self.event_filter = options.event_filter.encode()
        self.defaulted = not self.event_filter
        self.warned = False
        self.profile = Profile("samples", ProfileMeta(collector="perf"))
        # Per java-ness (java names are tidied differently): frame line -> the id of its
        # folded frame, for lines that fold to one (nearly all), and frame line -> its frame
        # ids leaf first, for the rest.
        self.tables: Dict[bool, Tuple[Dict[bytes, int], Dict[bytes, Tuple[int, ...]]]] = {
            False: ({}, {}), True: ({}, {})}
        self.names: Dict[Tuple[bytes, bytes, Optional[bytes]], Tuple[Tuple[int, ...], bool]] = {}
        # root-first stacks (the profile's keys) -> their index in ``weights`` (and the timeline's stack id)
        self.counts: Dict[Tuple[int, ...], int] = {}
        self.weights: List[int] = []
        self.lineno = 0  # lines consumed so far
        # the open sample
        self.stack: List[int] = []
        self.pname: Optional[Tuple[int, ...]] = None
        self.period = 1
        self.java = False
        self.saw_period = False
        self.timed: Optional[TimedSamples] = TimedSamples()  # the samples' times and threads

    def header(self, ids: Tuple[bytes, bytes, Optional[bytes]], p: Optional[bytes], event: Optional[bytes]
               ) -> Optional[Tuple[Tuple[int, ...], int, bool]]:
        """The sample an event header opens: (process name frames, period, java?), or None when
        its event type is filtered out."""
        period = 1
        if event is not None:
            if event != self.event_filter:
                if self.event_filter:
                    if self.defaulted and not self.warned:
                        self.diag.warn(f"several event types: only {_decode(self.event_filter)} samples were "
                                       f"kept (choose one with --event-filter)")
                        self.warned = True
                    # Filtered out. Like the Perl script, this opens no sample and closes
                    # none: a sample still open (no blank line yet) gets the frames that follow.
                    return None
                self.event_filter = event
            # The Perl script's truth test: no period, or "0", weighs 1. ("00" is true there and
            # weighs 0; write_folded leaves such a stack out, where the script prints it with 0.)
            if p and p != b"0":
                period = int(p)
                self.saw_period = True
        named = self.names.get(ids)
        if named is None:
            if len(self.names) >= CACHE_LIMIT:
                self.names.clear()
            named = self.names[ids] = self._name(*ids)
        return named[0], period, named[1]

    def _name(self, comm: bytes, pid: bytes, tid: Optional[bytes]) -> Tuple[Tuple[int, ...], bool]:
        # perf prints "comm TID" unless asked for the PID too; the Perl script's truth test
        # treats a TID of 0 the same way.
        if not tid or tid == b"0":
            pid, tid = b"?", pid
        if self.with_tid:
            name = comm + b"-" + pid + b"/" + tid
        elif self.with_pid:
            name = comm + b"-" + pid
        else:
            name = comm
        frames = _decode(name.replace(b" ", b"_")).split(";")
        # The Perl script tidies Java names in any process whose *name* (as it will print it,
        # PID and TID included) begins with "java": "java", but also "javac", "java_x" or a
        # comm "java worker". That name always begins with the comm, so the comm decides.
        return tuple(map(self.profile.intern, reversed(frames))), comm.startswith(b"java")

    def lines(self, chunk: Sequence[bytes]) -> None:
        """Feed lines (bytes, without newlines) through the line-by-line state machine."""
        naming, header, tables, intern = self.naming, self.header, self.tables, self.profile.intern
        counts, weights = self.counts, self.weights
        counts_get = counts.get
        stack = self.stack
        append, extend = stack.append, stack.extend
        pname, period, java = self.pname, self.period, self.java
        cache, other = tables[java]
        get, other_get = cache.get, other.get
        bad = None
        timed = self.timed
        for line in chunk:
            g = get(line)
            if g is not None:
                # A frame line seen before. Frames that arrive while no sample is open are
                # dropped with the stack when the next one opens.
                append(g)
                continue
            t = other_get(line)
            if t is not None:
                extend(t)
                continue
            if not line:
                # End of a sample. As in the Perl script, frames without a (kept) header count
                # for nothing, and a header without frames counts as just its process name.
                if pname is not None:
                    extend(pname)
                    key = tuple(reversed(stack))
                    i = counts_get(key)
                    if i is None:
                        i = counts[key] = len(weights)
                        weights.append(0)
                    weights[i] += period
                    if timed is not None:
                        timed.add(i, period)
                    pname = None
                stack.clear()
                continue
            if line[:1] == b"#":
                continue
            fields = _header_fields(line)
            if fields is not None:
                opened = header(*fields)
                if opened is not None:
                    if pname is None:
                        stack.clear()
                    pname, period, java = opened
                    if timed is not None:
                        timed = self.timed = timed.open(line, fields[0])
                    cache, other = tables[java]
                    get, other_get = cache.get, other.get
                continue
            m = _FRAME.match(line)
            if m is not None:
                frames = naming.frames(m, java)
                if len(frames) == 1:
                    if len(cache) >= CACHE_LIMIT:
                        cache.clear()
                    g = cache[line] = intern(frames[0])
                    append(g)
                else:
                    if len(other) >= CACHE_LIMIT:
                        other.clear()
                    t = other[line] = tuple(map(intern, reversed(frames)))
                    extend(t)
                continue
            if bad is None:
                bad = set()
            bad.add(line)
        if bad:
            # Unrecognised lines are rare; number them afterwards instead of counting every
            # line in the loop above.
            for i, line in enumerate(chunk, self.lineno + 1):
                if line in bad:
                    self.diag.malformed(i, line)
        self.lineno += len(chunk)
        self.pname, self.period, self.java = pname, period, java

    def blocks(self, blocks: Iterable[bytes], name: str = "<input>") -> None:
        """Feed raw text a block at a time.

        A line longer than ``MAX_LINE`` is counted as malformed and skipped (it stands as a
        ``#`` line, so that it neither ends a sample nor shifts later line numbers).
        """
        rest = b""
        overlong = False
        for block in blocks:
            if overlong:
                nl = block.find(b"\n")
                if nl < 0:
                    continue
                block, overlong = block[nl + 1:], False
            data = rest + block if rest else block
            lines = data.split(b"\n")
            rest = lines.pop()
            self.lines(lines)
            if len(rest) >= MAX_LINE:
                where = self.lineno + 1
                self.diag.malformed(where, rest[:80])
                self.diag.warn(f"{name}:{where}: line longer than {MAX_LINE >> 20} MiB skipped")
                self.lines([b"#"])
                rest, overlong = b"", True
        if rest:
            self.lines([rest])

    def finish(self) -> Profile:
        """The profile of every sample fed.

        A sample still open at the end (the capture does not end with a blank line) is kept,
        as if that blank line were there. The Perl script loses it, because only a blank line
        makes it count a sample; inferno keeps it, and so do we.
        """
        if self.pname is not None:
            self.lines([b""])
        add, weights = self.profile.add_ids, self.weights
        for key, i in self.counts.items():
            add(key, weights[i])
        if self.timed is not None and len(self.timed.timeline.t):
            self.profile.timeline = self.timed.finish(self.counts)
            self.profile.meta.extra["clock"] = "monotonic"
        self.counts, self.weights = {}, []
        return self.profile


def collapse(lines: Iterable[bytes], options: PerfOptions = PerfOptions(),
             diag: Optional[Diagnostics] = None) -> Iterator[Tuple[List[str], int]]:
    """Collapse ``perf script`` lines (bytes, newline optional) into ``(frames root→leaf, weight)``.

    The first frame is the process name. Each distinct stack is yielded once, after the
    whole input has been read.
    """
    c = _Collapser(options, diag if diag is not None else Diagnostics())
    it = iter(lines)
    while True:
        batch = [l[:-1] if l[-1:] == b"\n" else l for l in islice(it, _BATCH)]
        if not batch:
            break
        c.lines(batch)
    profile = c.finish()
    frame = profile.frame
    for key, weight in profile.items():
        yield [frame(fid).token for fid in key], weight


def parse(source: Source, options: PerfOptions = PerfOptions(), diag: Optional[Diagnostics] = None) -> Profile:
    """Read a ``perf script`` capture into a Profile; weights are event periods, in
    ``nanoseconds`` for cpu-clock/task-clock, else ``samples`` (as FlameGraph counts them)."""
    diag = diag if diag is not None else source.diag
    if options.inline and shutil.which("addr2line") is None:
        raise CollectorNotInstalled("addr2line not found", hint="apt-get install binutils")
    c = _Collapser(options, diag)
    if not getattr(source, "timed", False):  # `profkit collapse` and friends: no time wanted, none kept
        c.timed = None
    c.blocks(iter(partial(source.read_bytes, _BLOCK), b""), source.name)
    profile = c.finish()
    event = _decode(c.event_filter) if c.event_filter else ""
    if event:
        profile.meta.extra["event"] = event
    # cpu-clock and task-clock periods are nanoseconds of CPU time; other events' periods are
    # counts of that event, which stay "samples" as FlameGraph labels them.
    if c.saw_period and event.split(":")[0] in _TIME_EVENTS:
        profile.unit = "nanoseconds"
    return profile


_TIME_EVENTS = ("cpu-clock", "task-clock")
