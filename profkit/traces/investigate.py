# SPDX-License-Identifier: Apache-2.0
"""``bench --jaeger`` over a service chain: from the top trace segment to its service's profile.

After the run's slow and fast traces were compared (``traces.json``), this analysis of the run

* maps every target to its service: ``--target SERVICE=PID`` (or ``--label service=PID:NAME``)
  first, else the OpenTelemetry resource attribute ``process.pid`` the service's spans reported
  (``traces.json`` ``services``; Jaeger keeps resource attributes), else none;
* takes the segment that grew most (the first of ``segments`` with ``delta_ms`` > 0) and the
  targets of its service, and their profile from the primary collector (each target's own, not
  the merge of the run);
* focuses that profile on the frames under the segment's operation
  (:mod:`profkit.traces.focus`), or, where no frame matches, keeps the whole service's profile
  with a note saying why;
* writes ``focus.json``, ``focus.folded`` and ``focus.svg`` into the run directory; the reports'
  *Code* section (profkit/reports/focus.py) reads them.

Nothing here stops the run: a problem becomes ``focus.json``'s ``note`` and a warning.
"""
from __future__ import annotations

import io
from typing import Dict, List, Optional, Tuple

from profkit.model import Profile
from profkit.traces.focus import focus, top_functions

__all__ = ["focus_analysis", "service_map"]


def service_map(record, services: Dict[str, Dict[str, object]]) -> List[Dict[str, object]]:
    """Every target's ``{pid, name, service, mapped_by}``: by its service label (``--target``,
    ``--label``), else by the ``process.pid`` a traced service reported, else ``service`` null."""
    by_pid: Dict[int, str] = {}
    for svc, attrs in sorted((services or {}).items()):
        pids = list((attrs or {}).get("process.pids") or []) + [(attrs or {}).get("process.pid")]
        for pid in pids:
            if isinstance(pid, int) and pid > 0:
                by_pid.setdefault(pid, svc)
    out = []
    for t in record.targets:
        if t.service:
            out.append({"pid": t.pid, "name": t.name, "service": t.service, "mapped_by": "--target"})
        elif t.pid in by_pid:
            out.append({"pid": t.pid, "name": t.name, "service": by_pid[t.pid], "mapped_by": "process.pid"})
        else:
            out.append({"pid": t.pid, "name": t.name, "service": None, "mapped_by": None})
    return out


def _service_profile(ctx, pids: List[int]) -> Tuple[Optional[str], Optional[Profile]]:
    """(primary collector, the profile of the targets ``pids``): each target's own profile."""
    present = [c for c in ctx.profiler_order if c in ctx.profiles] + [c for c in ctx.profiles if c not in ctx.profiler_order]
    if not present:
        return None, None
    cid = present[0]
    per = ctx.per_target.get(cid) or {}
    if not per and len(ctx.targets) == 1 and ctx.targets[0].pid in pids:
        return cid, ctx.profiles[cid]
    parts = [per[p] for p in pids if p in per]
    if not parts:
        return cid, None
    return cid, parts[0].merge(*parts[1:]) if len(parts) > 1 else parts[0]


def _svg(profile: Profile, title: str, subtitle: str) -> str:
    from flamegraph import render_svg
    from flamegraph.options import FlameGraphOptions

    buf = io.StringIO()
    render_svg(profile, FlameGraphOptions(title=title, subtitle=subtitle, name_prefix="focus"), buf)
    return buf.getvalue()


def _owner(doc: Dict, targets: List[Dict]) -> Tuple[Optional[Dict], List[Dict], Optional[str]]:
    """(top segment, its service's targets, a note when there is nothing to profile)."""
    top = next((s for s in doc.get("segments") or [] if (s.get("delta_ms") or 0) > 0), None)
    if top is None:
        return None, [], "no critical-path segment grew from the fast to the slow traces: no service to look at"
    owners = [t for t in targets if t["service"] == top.get("service")]
    if not owners:
        known = ", ".join(f"{t['service'] or '?'} [{t['pid']}]" for t in targets)
        return top, [], (f"the top segment's service {top.get('service')!r} is not one of the profiled targets "
                         f"({known}); profile it (--target {top.get('service')}=PID) to see its code")
    return top, owners, None


def focus_analysis(ctx) -> None:
    """The analysis (after the traces one): ``focus.json``, ``focus.folded``, ``focus.svg``."""
    run = ctx.run
    doc = run.read_json("traces.json")
    if doc is None:
        return
    targets = service_map(run.record, doc.get("services") or {})
    top, owners, note = _owner(doc, targets)
    out: Dict[str, object] = {"schema": 1, "segment": top, "service": (top or {}).get("service"), "targets": targets,
                              "owners": [t["pid"] for t in owners], "collector": None, "mode": run.record.mode,
                              "focused": False, "rule": None, "match": None, "frames": [], "unit": None,
                              "service_total": None, "focused_total": None, "share": None, "top": [], "note": note}
    if owners:
        cid, prof = _service_profile(ctx, [t["pid"] for t in owners])
        out["collector"] = cid
        if prof is None or not prof:
            out["note"] = f"no samples of {top['service']} were collected (pids {', '.join(str(t['pid']) for t in owners)})"
        else:
            focused, info = focus(prof, str(top.get("operation") or ""))
            out.update(info)
            out["unit"] = prof.unit
            out["focused"] = focused is not None
            shown = focused if focused is not None else prof
            if focused is None:
                out["note"] = (f"no frame of {top['service']}'s profile matches the operation {top.get('operation')!r} "
                               f"({info['match']}): this is the whole service's profile")
            out["top"] = top_functions(shown)
            run.write_profile("focus.folded", shown)
            where = f"{top['service']} [{', '.join(str(t['pid']) for t in owners)}]"
            sub = (f"{cid}, {run.record.mode} mode; " + (f"frames under {top['operation']} ({info['rule']})"
                                                         if focused is not None else "the whole service (no frame matched)"))
            run.write_text("focus.svg", _svg(shown, f"{where}: {top['service']}: {top.get('operation')}", sub))
    if out["note"]:
        ctx.warn(f"code: {out['note']}")
    run.write_json("focus.json", out)
