# SPDX-License-Identifier: Apache-2.0
"""Reading JDK Flight Recorder recordings through the JDK's ``jfr print --json``.

Input is either a ``.jfr`` recording (magic ``FLR\\0``; read by running
``jfr print --json --stack-depth N --events EVENT FILE``) or text that ``jfr print --json``
already wrote (``{"recording": {"events": [...]}}``; ``shared/FORMATS.md`` §5), so that parsing
needs no JDK. Either is read incrementally: one event object at a time is decoded from a
bounded buffer, so the (often huge) JSON is never held whole.

* ``event=cpu``: ``jdk.ExecutionSample`` events, weight 1 each, unit ``samples``.
* ``event=alloc``: ``jdk.ObjectAllocationSample`` events weighted by their ``weight`` field
  (bytes allocated by the thread since its previous sample: sum it, don't count events),
  unit ``bytes``. The allocated class becomes the leaf frame, named as async-profiler names
  allocated classes (``byte[]``, ``java.lang.String``) and of plain kind: the event does not
  say whether the object went into a TLAB, so neither TLAB kind would be honest.

Frames are named ``class.method`` with the class in the JVM's internal slash form
(``java/lang/String.format``), which is async-profiler's default, so JFR and async-profiler
profiles of one program compare function by function. ``stackTrace.frames[0]`` is the leaf;
stacks are reversed to root → leaf. The frame ``type`` becomes the kind: ``Interpreted`` →
INTERPRETED, ``JIT compiled`` → JIT, ``Inlined`` → INLINED, ``Native`` → NATIVE, and in the
recordings async-profiler writes (``-e cpu -o jfr``) also ``C1 compiled`` → C1, ``C++`` →
NATIVE, ``Kernel`` → KERNEL; their native frames are named by symbol alone, as async-profiler's
``jfrconv`` names them. A stack that JFR truncated, or that has more than ``stack_depth`` frames
(``jfr print`` cuts those silently), gets a ``[truncated]`` frame at its root.

The collector and live recording (:class:`~collectors.jfr.JfrCollector`) are in
:mod:`collectors.jfr`, which re-exports this module's public names.
"""
from __future__ import annotations

import codecs
import json
import os
import re
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from typing import IO, Callable, Dict, Iterator, List, Optional, Tuple

from profkit.errors import CaptureFormatError, CollectorFailed, CollectorNotInstalled, Diagnostics, InputError, UsageError
from profkit.inputs import Source
from profkit.model import Frame, FrameKind, Profile, ProfileMeta
from profkit.timeline import Timeline, epoch_of_iso

from collectors.base import option
from collectors.jvm import INSTALL_HINT, find_jdk_tool

__all__ = ["CHUNK", "EVENT_TYPES", "JFR_MAGIC", "MAX_EVENT", "JfrOptions", "check_recording", "find_jfr",
           "iter_events", "parse", "parse_events"]

#: profkit event name → the JFR event type it reads.
EVENT_TYPES = {"cpu": "jdk.ExecutionSample", "alloc": "jdk.ObjectAllocationSample"}
JFR_MAGIC = b"FLR\0"
#: Bytes read from the JSON per step, and the largest single event object accepted.
CHUNK = 1 << 20
MAX_EVENT = 64 << 20

# "C++", "Kernel" and "C1 compiled" are async-profiler's own frame types in the JFR files it
# writes (async-profiler:src/flightRecorder.cpp, the jdk.types.FrameType constants).
_FRAME_KINDS = {"Interpreted": FrameKind.INTERPRETED, "JIT compiled": FrameKind.JIT,
                "Inlined": FrameKind.INLINED, "Native": FrameKind.NATIVE, "C++": FrameKind.NATIVE,
                "Kernel": FrameKind.KERNEL, "C1 compiled": FrameKind.C1}
# async-profiler writes native code as a "method" whose class is the library (libjvm.so, or ""
# for kernel and unknown code), with these descriptors, which no Java method can have.
_NATIVE_CODE = frozenset(("C++", "Kernel"))
_NATIVE_DESCRIPTORS = frozenset(("()L;", "(Lk;)L;"))
_PRIMITIVES = {"B": "byte", "C": "char", "D": "double", "F": "float", "I": "int", "J": "long",
               "S": "short", "Z": "boolean"}
_JSON_START = re.compile(r'\s*\{\s*"recording"\s*:\s*\{\s*"events"\s*:\s*\[')
_SPACE = re.compile(r"\s*")
_TRUNCATED = Frame("[truncated]", FrameKind.SYNTHETIC)


@dataclass(frozen=True)
class JfrOptions:
    """Options for reading JFR recordings."""

    event: str = option("cpu", "which samples to read: cpu (jdk.ExecutionSample, samples) or alloc "
                               "(jdk.ObjectAllocationSample, bytes)", choices=tuple(EVENT_TYPES))
    threads: bool = option(False, "add a root frame per thread, [NAME tid=N] as async-profiler -t writes it")
    stack_depth: int = option(64, "frames kept per stack, leaf first; a deeper stack gets a [truncated] root "
                                  "frame (jfr print's own default, 5, is too shallow)")


# -- finding and running the JDK's jfr tool ----------------------------------------------------

def find_jfr() -> str:
    """The path of the JDK's ``jfr`` tool: on PATH, else in ``$JAVA_HOME/bin``."""
    path = find_jdk_tool("jfr")
    if path:
        return path
    raise CollectorNotInstalled("jfr (the JDK's Flight Recorder tool) is not on PATH nor in $JAVA_HOME/bin",
                                hint=INSTALL_HINT)


def check_recording(path: str, name: str) -> None:
    """Walk a recording's chunk headers; a truncated or foreign file raises :class:`InputError`.

    Each chunk starts with ``FLR\\0``, a u16 major and minor version and an i64 chunk size
    (big-endian); a chunk still being written declares size 0.
    """
    size = os.path.getsize(path)
    offset = 0
    with open(path, "rb") as f:
        while offset < size:
            f.seek(offset)
            header = f.read(16)
            if len(header) < 16 or header[:4] != JFR_MAGIC:
                what = "truncated" if len(header) < 16 and header == JFR_MAGIC[:len(header)] else "corrupt"
                raise CaptureFormatError(f"{what} JFR recording: no chunk header at byte {offset}", location=name)
            major, _minor, chunk = struct.unpack(">HHq", header[4:16])
            if major not in (1, 2):
                raise CaptureFormatError(f"not a JFR recording this tool reads (version {major})", location=name)
            if chunk <= 0:
                raise CaptureFormatError("incomplete JFR recording: a chunk is still being written "
                                         "(dump the recording with JFR.dump or JFR.stop first)", location=name)
            if offset + chunk > size:
                raise CaptureFormatError(f"truncated JFR recording: a chunk at byte {offset} declares "
                                         f"{chunk} bytes, the file has {size - offset}", location=name)
            offset += chunk


def _spool(source: Source) -> str:
    """The source's (decompressed) bytes in a temporary file, for ``jfr`` to read by path."""
    fd, path = tempfile.mkstemp(prefix="profkit-", suffix=".jfr")
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                block = source.read_bytes(CHUNK)
                if not block:
                    break
                out.write(block)
    except BaseException:
        os.unlink(path)
        raise
    return path


def _run_jfr(path: str, name: str, options: JfrOptions, diag: Diagnostics, meta: ProfileMeta) -> Profile:
    jfr = find_jfr()
    # One frame more than kept: jfr print cuts deeper stacks without setting "truncated" (only the
    # recorder sets that), so a stack longer than stack_depth is how a cut shows.
    cmd = [jfr, "print", "--json", "--stack-depth", str(options.stack_depth + 1),
           "--events", EVENT_TYPES[options.event], path]
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        except OSError as e:
            raise CollectorFailed(cmd, 127, str(e), hint=INSTALL_HINT) from None
        assert proc.stdout is not None
        try:
            try:
                profile = parse_events(iter_events(proc.stdout.read, name), options, diag, meta)
            except InputError:
                # A jfr that failed half-way leaves truncated JSON, and its own message says more;
                # drain the pipe so that it can finish, then ask it.
                while proc.stdout.read(CHUNK):
                    pass
                rc = proc.wait()
                if rc:
                    raise _jfr_failure(cmd, rc, err, name) from None
                raise
            rc = proc.wait()
            if rc:
                raise _jfr_failure(cmd, rc, err, name)
            return profile
        finally:
            proc.stdout.close()
            if proc.poll() is None:  # only ever our own child
                proc.kill()
                proc.wait()


def _jfr_failure(cmd: List[str], rc: int, err: IO[bytes], name: str) -> Exception:
    err.seek(0)
    text = err.read(64 * 1024).decode("utf-8", "replace")
    first = text.strip().splitlines()[0] if text.strip() else ""
    if "could not read recording" in first or "Not a Flight Recorder file" in first:
        # jfr's own message already says what is wrong with the file, in one line
        return CaptureFormatError(first.replace("jfr print: ", ""), location=name)
    return CollectorFailed(cmd, rc, text)


# -- reading jfr print --json output, one event at a time ------------------------------------------

def iter_events(read: Callable[[int], bytes], name: str) -> Iterator[Tuple[int, dict]]:
    """Yield ``(line number, event object)`` for each element of ``recording.events``.

    ``read(n)`` returns the next bytes of ``jfr print --json`` output (``b""`` at the end).
    Only one event (plus one read chunk) is held at a time. Truncated or invalid JSON raises
    :class:`CaptureFormatError` naming the line.
    """
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8")()
    buf = ""
    pos = 0
    line = 1
    eof = False

    def more() -> None:
        nonlocal buf, pos, eof
        data = read(CHUNK)
        try:
            chunk = text.decode(data, final=not data)
        except UnicodeDecodeError as e:
            raise CaptureFormatError(f"jfr JSON is not valid UTF-8 ({e.reason})", location=f"{name}:{line}") from None
        eof = not data
        buf = buf[pos:] + chunk
        pos = 0

    while True:
        m = _JSON_START.match(buf)
        if m:
            line += buf.count("\n", 0, m.end())
            pos = m.end()
            break
        if eof or len(buf) > 4096:
            raise CaptureFormatError('not `jfr print --json` output (no {"recording": {"events": [ at its start)',
                                     location=name)
        more()

    first = True
    while True:
        end = _SPACE.match(buf, pos).end()
        line += buf.count("\n", pos, end)
        pos = end
        if pos >= len(buf):
            if eof:
                raise CaptureFormatError("truncated jfr JSON: the events array never closes", location=f"{name}:{line}")
            more()
            continue
        c = buf[pos]
        if c == "]":
            return
        if not first:
            if c != ",":
                raise CaptureFormatError(f"invalid jfr JSON: expected ',' or ']' between events, found {c!r}",
                                         location=f"{name}:{line}")
            pos += 1
            first = True
            continue
        try:
            obj, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError as e:
            if eof:
                raise CaptureFormatError(f"truncated or invalid jfr JSON: {e.msg}",
                                         location=f"{name}:{line + buf.count(chr(10), pos, e.pos)}") from None
            if len(buf) - pos > MAX_EVENT:
                raise CaptureFormatError(f"a jfr JSON event longer than {MAX_EVENT >> 20} MiB",
                                         location=f"{name}:{line}") from None
            more()
            continue
        start_line = line
        line += buf.count("\n", pos, end)
        pos = end
        first = False
        if isinstance(obj, dict):
            yield start_line, obj
        else:
            raise CaptureFormatError("invalid jfr JSON: an event is not an object", location=f"{name}:{start_line}")


def _class_name(cls: Optional[dict]) -> str:
    """A method's class in internal slash form; unknown classes get a bracketed placeholder."""
    name = cls.get("name") if isinstance(cls, dict) else None
    return name if isinstance(name, str) and name else "[unknown class]"


def _method_key(frame: dict) -> Tuple[str, str, Optional[str]]:
    """(class, method, frame type) of a printed stack frame; text is ``class.method``, or the
    class alone when the method is ``""``.

    Native code is named by its symbol alone, without its library, as async-profiler's own
    converter names it (``resolveMethodName`` in async-profiler:src/converter/one/convert/JfrConverter.java):
    frames of type C++ or Kernel, Native frames with async-profiler's descriptors, and methods of a
    class without a name. A JDK recording's Native frames are Java native methods and keep their class.
    """
    ftype = frame.get("type")
    method = frame.get("method")
    if not isinstance(method, dict):
        return ("[unknown native]", "", ftype or "Native")
    name = str(method.get("name"))
    cls = method.get("type")
    if (ftype in _NATIVE_CODE or (ftype == "Native" and method.get("descriptor") in _NATIVE_DESCRIPTORS)
            or (isinstance(cls, dict) and cls.get("name") == "")):
        return (name or "[unknown native]", "", ftype)
    return (_class_name(cls), name, ftype)


def _allocated_class(cls: Optional[dict]) -> str:
    """An allocated class as async-profiler names it: ``[J`` → ``long[]``, ``[Ljava/lang/Object;``
    → ``java.lang.Object[]``, ``java/lang/String`` → ``java.lang.String``."""
    name = cls.get("name") if isinstance(cls, dict) else None
    if not isinstance(name, str) or not name:
        return "[unknown class]"
    dims = len(name) - len(name.lstrip("["))
    base = name[dims:]
    if dims:
        if base.startswith("L") and base.endswith(";"):
            base = base[1:-1]
        else:
            base = _PRIMITIVES.get(base, base)
    return base.replace("/", ".") + "[]" * dims


def _thread_key(t: Optional[dict]) -> Tuple[str, int]:
    """(name, OS thread id) of an event's thread."""
    t = t or {}
    tid = t.get("osThreadId")
    return str(t.get("javaName") or t.get("osName") or ""), tid if isinstance(tid, int) else -1


def _thread_frame(key: Tuple[str, int]) -> Frame:
    """The thread root frame, written as async-profiler -t writes it: ``[NAME tid=N]``."""
    label = f"[{key[0]} tid={key[1]}]" if key[0] else f"[tid={key[1]}]"
    return Frame(label.replace(";", "|"), FrameKind.THREAD)


def parse_events(events: Iterator[Tuple[int, dict]], options: JfrOptions, diag: Diagnostics,
                 meta: Optional[ProfileMeta] = None) -> Profile:
    """Build a profile from ``(line, event)`` pairs of ``jfr print --json`` output.

    Events of other types are skipped; events of the chosen type without a usable stack (or,
    for alloc, without a weight) are counted as malformed. Stacks longer than
    ``options.stack_depth`` keep their leaf end under a ``[truncated]`` root.
    """
    alloc = options.event == "alloc"
    wanted = EVENT_TYPES[options.event]
    profile = Profile("bytes" if alloc else "samples", meta)
    intern = profile.intern
    # frame ids are the profile's interned tokens (strings)
    method_ids: Dict[Tuple[str, str, Optional[str]], str] = {}
    class_ids: Dict[str, str] = {}
    thread_ids: Dict[Tuple[str, int], str] = {}
    truncated_id: Optional[str] = None
    seen = 0
    first_time = None
    thread_key = "eventThread" if alloc else "sampledThread"
    timeline, thread_names = Timeline(0.0, 1000), {}  # the events' times and threads
    for lineno, event in events:
        if event.get("type") != wanted:
            continue
        values = event.get("values")
        try:
            trace = values["stackTrace"]
            frames = trace["frames"]
            cut = len(frames) > options.stack_depth
            if cut:  # frames[0] is the leaf: keep the leaf end
                frames = frames[:options.stack_depth]
            ids: List[str] = []
            if options.threads:
                key = _thread_key(values.get(thread_key))
                fid = thread_ids.get(key)
                if fid is None:
                    fid = thread_ids[key] = intern(_thread_frame(key))
                ids.append(fid)
            if cut or trace.get("truncated"):
                if truncated_id is None:
                    truncated_id = intern(_TRUNCATED)
                ids.append(truncated_id)
            for f in reversed(frames):
                key3 = _method_key(f)
                fid = method_ids.get(key3)
                if fid is None:
                    text = f"{key3[0]}.{key3[1]}" if key3[1] else key3[0]
                    fid = method_ids[key3] = intern(Frame(text.replace(";", "|"),
                                                          _FRAME_KINDS.get(key3[2], FrameKind.UNKNOWN)))
                ids.append(fid)
            if alloc:
                weight = values["weight"]
                if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
                    raise TypeError("weight")
                cname = _allocated_class(values.get("objectClass"))
                fid = class_ids.get(cname)
                if fid is None:
                    fid = class_ids[cname] = intern(Frame(cname.replace(";", "|")))
                ids.append(fid)
            else:
                weight = 1
        except (KeyError, TypeError, AttributeError):
            diag.malformed(lineno, f"{wanted} event without a usable stack trace" + (" or weight" if alloc else ""))
            continue
        if not frames:
            diag.malformed(lineno, f"{wanted} event with an empty stack trace")
            continue
        first_time = first_time or (values["startTime"] if isinstance(values.get("startTime"), str) else None)
        seen += 1
        if weight:
            profile.add_ids(tuple(ids), weight)
            if timeline is not None:
                timeline = _timed(timeline, values, tuple(ids), weight, thread_names, thread_key)
    profile.timeline = timeline if timeline is not None and len(timeline) else None
    if not seen:
        diag.warn(f"no {wanted} events with stack traces in the recording")
    profile.meta.extra["events"] = seen
    if first_time and profile.meta.start is None:
        profile.meta.start = first_time
    return profile


def _timed(timeline, values: dict, key: tuple, weight: int, names: Dict[Tuple[str, int], str], thread_key: str):
    """Add one event to the timeline (its ``startTime`` and thread); None once an event has no time."""
    epoch = epoch_of_iso(values.get("startTime"))
    if epoch is None:
        return None
    tkey = _thread_key(values.get(thread_key))
    name = names.get(tkey)
    if name is None:
        name = names[tkey] = f"{tkey[0]} [{tkey[1]}]" if tkey[0] else f"[tid={tkey[1]}]"
    timeline.append_absolute(epoch, key, name, weight)
    return timeline


def parse(source: Source, options: JfrOptions = JfrOptions(), diag: Optional[Diagnostics] = None) -> Profile:
    """Read a ``.jfr`` recording (through ``jfr print``) or ``jfr print --json`` text into a Profile."""
    diag = diag if diag is not None else source.diag
    if options.stack_depth < 1:
        raise UsageError(f"--stack-depth must be at least 1, not {options.stack_depth}")
    meta = ProfileMeta(collector="jfr", extra={"event": EVENT_TYPES[options.event]})
    head = source.head()
    if head[:4] == JFR_MAGIC:
        spooled = None
        path = source.path
        if path is None or source.compressed:
            path = spooled = _spool(source)
        try:
            check_recording(path, source.name)
            return _run_jfr(path, source.name, options, diag, meta)
        finally:
            if spooled:
                os.unlink(spooled)
    if head.lstrip()[:1] == b"{":
        return parse_events(iter_events(source.read_bytes, source.name), options, diag, meta)
    raise CaptureFormatError("neither a JFR recording (no FLR magic) nor `jfr print --json` output",
                             location=source.name)
