# SPDX-License-Identifier: Apache-2.0
"""The run record: ``manifest.json`` as typed data, with one load / validate / save path.

    RunRecord            schema 2: what ran, on what, how it ended (``docs/contract.md``)
    ├── owner            OwnerRecord: the profkit process recording it (a dead owner = interrupted)
    ├── targets          [TargetRecord]: pid, name, runtime, cmdline, exe, dir (several: targets/<pid>-<name>/)
    ├── probes           [ProbeRecord]: every profiler, sampler, load generator and heap tool of the run,
    │                    with version, exact commands, raw captures, parse options, status and error
    ├── profile          ProfileRecord: primary collector, unit, samples, unique stacks
    └── load             the load generator (bench): id, version, url, commands

:func:`from_json` reads schema 2 and schema 1 (profkit 0.1's manifests); anything else, or a
manifest whose fields have the wrong types, is :class:`~profkit.errors.RunRecordError` (exit 2)
naming the field. Every file name a record holds must resolve inside its run directory: run
directories from pull-request artifacts are untrusted. Command lines and tool commands are
redacted (:mod:`profkit.secrets`) when they are set, so a secret never reaches the file.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Sequence

from profkit.errors import RunRecordError
from profkit.secrets import redact, redact_argv

__all__ = ["OwnerRecord", "PROBE_KINDS", "ProbeRecord", "ProfileRecord", "RunRecord", "SCHEMA", "STATUSES",
           "TargetRecord", "from_json", "owner_of_self"]

SCHEMA = 2
#: A run's status: ``running`` until it ends, then one of the other three (``shared/CONTRACT.md``).
STATUSES = ("running", "complete", "interrupted", "collector-error")
#: What a probe is: a stack profiler, the process-metrics sampler, a load generator, a memory
#: tool of ``profkit heap``, or the command ``profkit run`` launched.
PROBE_KINDS = ("profiler", "metrics", "load", "heap", "command")
#: ``partial``: it recorded, but lost part of the run (``detail.lost`` says what; ``engine/losses.py``)
PROBE_STATUSES = ("running", "ok", "partial", "failed")


@dataclass
class OwnerRecord:
    """The profkit process that records the run: a run left ``running`` by an owner that is gone
    was interrupted (``profkit render`` recovers it)."""

    pid: int
    start_ticks: int          #: field 22 of /proc/PID/stat, so a reused PID is not mistaken for it
    host: str

    def alive(self) -> bool:
        """Whether that very process still runs (on this host)."""
        if self.host != socket.gethostname():
            return True  # another machine's run: not ours to judge
        return _start_ticks(self.pid) == self.start_ticks


@dataclass
class TargetRecord:
    """One profiled process."""

    pid: int
    name: str = ""
    runtime: str = "native"
    cmdline: List[str] = field(default_factory=list)
    exe: str = ""
    dir: Optional[str] = None  #: ``targets/<pid>-<name>`` in a run of several targets
    #: ``--label service=NAME``: what this process is called in keys and comparisons (else its name)
    service: Optional[str] = None
    #: this target's timed samples in a run of several: ``{"file": "targets/…/timeline.bin", "samples", …}``
    timeline: Optional[Dict[str, Any]] = None

    @property
    def process_name(self) -> str:
        """The name this target's process frame and comparisons use: its service label, else its name."""
        return self.service or self.name or "process"

    @property
    def command(self) -> str:
        """The command line as one string (or the name)."""
        return " ".join(self.cmdline) if self.cmdline else self.name


@dataclass
class ProbeRecord:
    """One probe of a run, as it was started and as it ended."""

    id: str
    kind: str = "profiler"
    version: str = ""
    commands: List[List[str]] = field(default_factory=list)
    raw: List[str] = field(default_factory=list)          #: capture files, relative to the run directory
    status: str = "running"
    error: Optional[str] = None
    parse: Dict[str, Any] = field(default_factory=dict)   #: the parse options its captures need
    detail: Dict[str, Any] = field(default_factory=dict)  #: anything else worth keeping (attach time, event)

    def set_commands(self, commands: Sequence[Sequence[str]]) -> None:
        """Record the exact commands run, secrets masked."""
        self.commands = [redact_argv(c) for c in commands]

    def fail(self, message: str) -> None:
        """Mark this probe failed, keeping the first error."""
        self.status = "failed"
        self.error = self.error or redact(message)


@dataclass
class ProfileRecord:
    """The run's primary profile (``profile.folded``)."""

    primary: Optional[str] = None
    unit: str = "samples"
    samples: float = 0
    unique_stacks: int = 0
    #: the timed samples beside it: ``{"file": "timeline.bin", "samples", "threads", "bytes", "seconds"}``
    #: (``docs/contract.md``), None when the collector's capture has no times
    timeline: Optional[Dict[str, Any]] = None


@dataclass
class RunRecord:
    """``manifest.json``: what a run did. See the module docstring."""

    status: str = "running"
    schema: int = SCHEMA
    profkit: str = ""
    argv: List[str] = field(default_factory=list)
    owner: Optional[OwnerRecord] = None
    start: str = ""
    end: Optional[str] = None
    duration: Optional[float] = None
    duration_requested: Optional[float] = None
    mode: str = "cpu"
    rate: Optional[float] = None
    interval: Optional[float] = None
    targets: List[TargetRecord] = field(default_factory=list)
    probes: List[ProbeRecord] = field(default_factory=list)
    profile: Optional[ProfileRecord] = None
    load: Optional[Dict[str, Any]] = None
    #: ``--app``/``--lib`` patterns the run's conclusions attribute with: ``{"app": [...], "lib": [...]}``
    attribution: Dict[str, List[str]] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    #: outputs that could not be written (a full disk), each with the reason
    not_written: List[str] = field(default_factory=list)
    #: a window of ``profkit agent``: start, end, labels, sequence (``docs/contract.md``)
    window: Optional[Dict[str, Any]] = None
    #: where ``profkit pull`` read the profile from: store kind, URL (redacted), query, type, range
    source: Optional[Dict[str, Any]] = None

    # -- what the reports ask ----------------------------------------------------------------
    @property
    def target(self) -> TargetRecord:
        """The first target (the run's name and title come from it)."""
        return self.targets[0] if self.targets else TargetRecord(pid=0, name="?", runtime="?")

    @property
    def pids(self) -> List[int]:
        """Every target's PID."""
        return [t.pid for t in self.targets]

    def process_names(self) -> Dict[int, str]:
        """pid → the name of its process root frame (its ``service`` label, else its process name)."""
        return {t.pid: t.process_name for t in self.targets}

    @property
    def profilers(self) -> List[ProbeRecord]:
        """The stack profilers (``collectors`` in schema 1), in the order they were asked for."""
        return [p for p in self.probes if p.kind == "profiler"]

    @property
    def primary(self) -> Optional[str]:
        """The collector whose profile is ``profile.folded``."""
        return self.profile.primary if self.profile else None

    @property
    def unit(self) -> str:
        """The primary profile's unit."""
        return self.profile.unit if self.profile else "samples"

    def probe(self, pid: str, kind: str = "profiler") -> ProbeRecord:
        """The record of probe ``pid`` (made on first use)."""
        for p in self.probes:
            if p.id == pid:
                return p
        p = ProbeRecord(pid, kind)
        self.probes.append(p)
        return p

    def warn(self, message: str) -> None:
        """Record a warning (once; secrets masked)."""
        message = redact(str(message))
        if message not in self.warnings:
            self.warnings.append(message)

    def set_argv(self, argv: Sequence[str]) -> None:
        """Record profkit's own command line, secrets masked."""
        self.argv = redact_argv(argv)

    def files(self) -> List[str]:
        """Every run-directory file this record names (raw captures, target directories)."""
        out = [r for p in self.probes for r in p.raw]
        out += [t.dir for t in self.targets if t.dir]
        if self.profile is not None and self.profile.timeline and isinstance(self.profile.timeline.get("file"), str):
            out.append(self.profile.timeline["file"])
        out += [t.timeline["file"] for t in self.targets if t.timeline and isinstance(t.timeline.get("file"), str)]
        return out

    def to_json(self) -> Dict[str, Any]:
        """The record as JSON-ready data (schema 2): new containers all the way down, like
        :func:`dataclasses.asdict`, without its deep copies (a manifest is written at every step)."""
        data = _plain(self)
        data["schema"] = SCHEMA
        return data


_FIELDS: Dict[type, tuple] = {}


def _plain(value: Any) -> Any:
    """A dataclass as a dict of its fields, lists/tuples as lists, dicts copied, recursively."""
    cls = type(value)
    if cls in (str, int, float, bool) or value is None:
        return value
    names = _FIELDS.get(cls)
    if names is None and hasattr(cls, "__dataclass_fields__"):
        names = _FIELDS[cls] = tuple(f.name for f in fields(value))
    if names is not None:
        return {n: _plain(getattr(value, n)) for n in names}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def owner_of_self() -> OwnerRecord:
    """The OwnerRecord of this process."""
    return OwnerRecord(os.getpid(), _start_ticks(os.getpid()) or 0, socket.gethostname())


def _start_ticks(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    rest = stat[stat.rindex(")") + 2:].split()
    if rest[0] == "Z":
        return None
    return int(rest[19])


# -- reading and validating ------------------------------------------------------------------------

class _Check:
    """Type checks that name the field (``probes[1].raw[0]``) of the first problem."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, path: str, what: str, value: Any) -> RunRecordError:
        shown = type(value).__name__ if not isinstance(value, (str, int, float)) or isinstance(value, bool) \
            else repr(value)[:40]
        return RunRecordError(f"{self.where}: field '{path}' must be {what}, not {shown}",
                              hint="the run directory is damaged or not from profkit; re-create it")

    def obj(self, d: Any, path: str) -> Dict[str, Any]:
        if not isinstance(d, dict):
            raise self.fail(path, "an object", d)
        return d

    def get(self, d: Dict[str, Any], key: str, kind: str, path: str, default: Any = None, *,
            optional: bool = True) -> Any:
        value = d.get(key, default)
        if value is None and optional:
            return default
        where = f"{path}.{key}" if path else key
        ok = {
            "str": lambda v: isinstance(v, str),
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "num": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
            "list": lambda v: isinstance(v, list),
            "dict": lambda v: isinstance(v, dict),
            "strs": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
            "cmds": lambda v: isinstance(v, list) and all(isinstance(c, list) and all(isinstance(x, str) for x in c)
                                                          for c in v),
        }[kind]
        if not ok(value):
            what = {"str": "a string", "int": "an integer", "num": "a number", "list": "a list",
                    "dict": "an object", "strs": "a list of strings", "cmds": "a list of commands (lists of strings)"}
            raise self.fail(where, what[kind], value)
        return value


def _target(c: _Check, d: Any, path: str) -> TargetRecord:
    d = c.obj(d, path)
    pid = c.get(d, "pid", "int", path, optional=False)
    return TargetRecord(pid=pid, name=c.get(d, "name", "str", path, ""), runtime=c.get(d, "runtime", "str", path, "native"),
                        cmdline=c.get(d, "cmdline", "strs", path, []) or [], exe=c.get(d, "exe", "str", path, ""),
                        dir=c.get(d, "dir", "str", path), service=c.get(d, "service", "str", path),
                        timeline=_timeline(c, d, path))


def _probe(c: _Check, d: Any, path: str, kind: Optional[str] = None) -> ProbeRecord:
    d = c.obj(d, path)
    p = ProbeRecord(id=c.get(d, "id", "str", path, optional=False))
    p.kind = kind or c.get(d, "kind", "str", path, "profiler")
    if p.kind not in PROBE_KINDS:
        raise c.fail(f"{path}.kind", f"one of {', '.join(PROBE_KINDS)}", p.kind)
    p.version = str(c.get(d, "version", "str", path, "") or "")
    p.commands = c.get(d, "commands", "cmds", path, []) or []
    p.raw = c.get(d, "raw", "strs", path, []) or []
    status = c.get(d, "status", "str", path, "ok")
    p.status = status if status in PROBE_STATUSES else "ok"
    p.error = c.get(d, "error", "str", path)
    p.parse = c.get(d, "parse", "dict", path, {}) or {}
    p.detail = c.get(d, "detail", "dict", path, {}) or {}
    if "attach_seconds" in d:
        p.detail["attach_seconds"] = d["attach_seconds"]
    return p


def _common(c: _Check, d: Dict[str, Any], r: RunRecord) -> None:
    status = c.get(d, "status", "str", "", "running")
    if status not in STATUSES:
        raise c.fail("status", f"one of {', '.join(STATUSES)}", status)
    r.status = status
    r.profkit = c.get(d, "profkit", "str", "", "")
    r.argv = c.get(d, "argv", "strs", "", []) or []
    r.start = c.get(d, "start", "str", "", "")
    r.end = c.get(d, "end", "str", "")
    r.duration = c.get(d, "duration", "num", "")
    r.duration_requested = c.get(d, "duration_requested", "num", "")
    r.mode = c.get(d, "mode", "str", "", "cpu")
    r.rate = c.get(d, "rate", "num", "")
    r.interval = c.get(d, "interval", "num", "")
    r.warnings = [str(w) for w in (c.get(d, "warnings", "strs", "", []) or [])]
    r.not_written = c.get(d, "not_written", "strs", "", []) or []
    r.load = c.get(d, "load", "dict", "")
    r.window = c.get(d, "window", "dict", "")
    r.source = c.get(d, "source", "dict", "")
    att = c.get(d, "attribution", "dict", "", {}) or {}
    r.attribution = {k: c.get(att, k, "strs", "attribution", []) or [] for k in ("app", "lib") if att.get(k)}


def _from_schema1(c: _Check, d: Dict[str, Any]) -> RunRecord:
    r = RunRecord()
    _common(c, d, r)
    t = c.obj(d.get("target") or {}, "target")
    pids = c.get(t, "pids", "list", "target", []) or []
    for i, pid in enumerate(pids):
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise c.fail(f"target.pids[{i}]", "an integer", pid)
    first = {"name": c.get(t, "name", "str", "target", ""), "runtime": c.get(t, "runtime", "str", "target", "native"),
             "cmdline": c.get(t, "cmdline", "strs", "target", []) or [], "exe": c.get(t, "exe", "str", "target", "")}
    r.targets = [TargetRecord(pid, **first) if i == 0 else TargetRecord(pid, runtime=first["runtime"])
                 for i, pid in enumerate(pids)]
    kinds = {"psutil": "metrics", "jcmd": "heap", "jstat": "heap", "memray": "heap" if r.mode == "heap" else "profiler"}
    for i, e in enumerate(c.get(d, "collectors", "list", "", []) or []):
        cid = c.obj(e, f"collectors[{i}]").get("id")
        r.probes.append(_probe(c, e, f"collectors[{i}]", kinds.get(cid if isinstance(cid, str) else "", "profiler")))
    if d.get("primary") is not None or d.get("samples") is not None:
        r.profile = ProfileRecord(primary=c.get(d, "primary", "str", ""), unit=c.get(d, "unit", "str", "", "samples"),
                                  samples=c.get(d, "samples", "num", "", 0), unique_stacks=c.get(d, "unique_stacks", "int", "", 0))
    return r


def _from_schema2(c: _Check, d: Dict[str, Any]) -> RunRecord:
    r = RunRecord()
    _common(c, d, r)
    o = c.get(d, "owner", "dict", "")
    if o is not None:
        r.owner = OwnerRecord(pid=c.get(o, "pid", "int", "owner", optional=False),
                              start_ticks=c.get(o, "start_ticks", "int", "owner", 0), host=c.get(o, "host", "str", "owner", ""))
    r.targets = [_target(c, t, f"targets[{i}]") for i, t in enumerate(c.get(d, "targets", "list", "", []) or [])]
    r.probes = [_probe(c, p, f"probes[{i}]") for i, p in enumerate(c.get(d, "probes", "list", "", []) or [])]
    p = c.get(d, "profile", "dict", "")
    if p is not None:
        r.profile = ProfileRecord(primary=c.get(p, "primary", "str", "profile"), unit=c.get(p, "unit", "str", "profile", "samples"),
                                  samples=c.get(p, "samples", "num", "profile", 0),
                                  unique_stacks=c.get(p, "unique_stacks", "int", "profile", 0),
                                  timeline=_timeline(c, p, "profile"))
    return r


def _timeline(c: _Check, p: Dict[str, Any], path: str) -> Optional[Dict[str, Any]]:
    t = c.get(p, "timeline", "dict", path)
    if t is None:
        return None
    where = f"{path}.timeline"
    out: Dict[str, Any] = {"file": c.get(t, "file", "str", where, optional=False)}
    for key in ("samples", "threads", "bytes"):
        out[key] = c.get(t, key, "int", where, 0)
    out["seconds"] = c.get(t, "seconds", "num", where, 0)
    return out


def from_json(data: Any, run_path: str, where: str = "manifest.json") -> RunRecord:
    """A validated RunRecord from a manifest's JSON data (schema 1 or 2) of the run at ``run_path``."""
    c = _Check(where)
    if not isinstance(data, dict):
        raise RunRecordError(f"{where}: not a run record (a JSON object)", hint="re-create the run with profkit")
    schema = data.get("schema")
    if schema == 2:
        record = _from_schema2(c, data)
    elif schema == 1:
        record = _from_schema1(c, data)
    else:
        raise RunRecordError(f"{where}: run record schema {schema!r} is not one this profkit reads (1 or 2)",
                             hint="re-create it with this version of profkit, or use the profkit that made it")
    if record.unit not in ("samples", "nanoseconds", "bytes", "objects"):
        raise c.fail("profile.unit" if schema == 2 else "unit", "samples, nanoseconds, bytes or objects", record.unit)
    inside(run_path, record, where)
    return record


def inside(run_path: str, record: RunRecord, where: str = "manifest.json") -> None:
    """Refuse a record that names a file outside its run directory (``../``, absolute, symlinks out)."""
    root = os.path.realpath(run_path)
    for name in record.files():
        full = os.path.realpath(os.path.join(root, name))
        if os.path.isabs(name) or not (full == root or full.startswith(root + os.sep)):
            raise RunRecordError(f"{where}: {name!r} is outside the run directory",
                                 hint="refusing to read it: the run directory is damaged or crafted")


def field_names() -> List[str]:
    """The top-level fields of schema 2 (for docs and tests)."""
    return [f.name for f in fields(RunRecord)]
