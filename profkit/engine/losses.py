# SPDX-License-Identifier: Apache-2.0
"""Collector errors as frames: what a partly failed profiler lost, put into its profile.

A run never looks more complete than it was. When a profiler's tool ends before the run does
(it died, was killed, crashed), when a target's capture is missing or empty while the run went
on, or when the tool itself says it lost samples (py-spy's ``Errors: N``, as ``Recording.losses``),
the time lost becomes a ``[collector error: REASON]`` frame in that collector's profile (under
the target's process frame when there are several), weighted as that much time would weigh
at the sampling rate: ``rate × seconds`` samples, ``seconds × 10⁹`` nanoseconds, or for bytes
and objects the profile's own weight per recorded second. Its timeline, if any, gets those
samples over the lost interval (thread ``[collector error]``), so the heatmap shows the gap.
The probe's record says what happened (``status: partial``, ``detail.lost``) and the run's
status is ``collector-error``; everything that was recorded is kept.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

from profkit.engine.probe import Probe, RunContext
from profkit.model import Frame, FrameKind, Profile

__all__ = ["TOLERANCE", "account_losses", "error_frame"]

#: A tool that ends this close to the run's end (seconds) lost nothing worth a frame.
TOLERANCE = 1.5
ERROR_THREAD = "[collector error]"


def error_frame(reason: str) -> Frame:
    """The synthetic frame of a collector error (``;`` and newlines cannot break folded text)."""
    text = " ".join(str(reason).replace(";", ",").split())[:200]
    return Frame(f"[collector error: {text}]", FrameKind.SYNTHETIC)


def _per_second(profile: Optional[Profile], rate: float, recorded_s: float) -> float:
    unit = profile.unit if profile is not None else "samples"
    if unit == "samples":
        return float(rate)
    if unit == "nanoseconds":
        return 1e9
    if profile is not None and profile and recorded_s > 0:
        return float(profile.total) / recorded_s
    return 0.0


def _losses_of(ctx: RunContext, p: Probe, why: str) -> List[Dict[str, object]]:
    """What probe ``p`` lost: ``{"reason", "seconds", "since" (run seconds), "pid"?}`` each."""
    out: List[Dict[str, object]] = []
    rec = getattr(p, "rec", None)
    end = ctx.duration if why == "done" else ctx.elapsed
    ended = getattr(p, "ended_s", None)
    from profkit.targets import process_state

    # a target that exited ended its tool too: that is the run's end for it, not a loss
    alive = {pid for pid in ctx.pids if process_state(pid) not in (None, "Z")}
    if why == "targets-gone" or not alive:
        return [{"since": None, **loss} for loss in getattr(rec, "losses", None) or []]
    missing = []
    if rec is not None:
        for pid, raw in sorted((getattr(rec, "raw", None) or {}).items()):
            if not os.path.exists(raw) and pid in alive:  # an empty capture is an idle target's
                missing.append(pid)
    raws = getattr(rec, "raw", None) or {}
    code = _exit_codes(rec)
    if rec is not None and raws and len(missing) == len(raws):
        why_not = f"ended {ended:.1f} s into the run" if ended is not None else (
            f"failed: {p.entry.error}" if p.entry is not None and p.entry.error else "wrote no capture")
        out.append({"reason": f"{p.id} recorded nothing ({why_not}{', ' + code if code else ''})",
                    "seconds": round(end, 3), "since": 0.0})
        return out
    if ended is not None and why != "stop" and end - ended > TOLERANCE:
        reason = f"{p.id} ended {ended:.1f} s into the run" + (f" ({code})" if code else "")
        out.append({"reason": reason, "seconds": round(end - ended, 3), "since": round(ended, 3)})
    for pid in missing:
        out.append({"reason": f"no capture from {p.id} for pid {pid}", "seconds": round(end, 3),
                    "since": 0.0, "pid": pid})
    for loss in getattr(rec, "losses", None) or []:
        out.append({"since": None, **loss})
    return out


def _exit_codes(rec) -> str:
    codes = []
    for t in getattr(rec, "tools", None) or []:
        tool = t[1] if isinstance(t, tuple) else t
        rc = getattr(getattr(tool, "proc", None), "returncode", None)
        if rc not in (None, 0):
            codes.append(f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}")
    return ", ".join(dict.fromkeys(codes))


def account_losses(ctx: RunContext, probes: Sequence[Probe], why: str, rate: float) -> bool:
    """Add the error frames of every profiler in ``probes``; True when any lost something."""
    from profkit.engine.captures import process_frame

    names = ctx.record.process_names()
    lost_any = False
    for p in probes:
        if p.kind != "profiler":
            continue
        losses = _losses_of(ctx, p, why)
        if not losses:
            continue
        lost_any = True
        prof = ctx.profiles.get(p.id)
        if prof is None:
            prof = ctx.profiles[p.id] = Profile("samples")
        recorded = max(0.0, ctx.elapsed - sum(float(x["seconds"]) for x in losses if x.get("since") is not None))
        per_s = _per_second(prof, rate, recorded)
        for loss in losses:
            seconds = float(loss["seconds"])
            weight = seconds * per_s
            weight = int(round(weight)) if prof.unit in ("samples", "nanoseconds") or weight >= 1 else weight
            loss["weight"] = weight
            pid = loss.get("pid")
            stack = [error_frame(str(loss["reason"]))]
            if len(names) > 1 and isinstance(pid, int) and pid in names:
                stack.insert(0, process_frame(names[pid], pid))
            if weight:
                prof.add(stack, weight)
                _timed(ctx, prof, stack, loss, rate, weight)
            ctx.warn(f"{p.id}: {loss['reason']}: {seconds:.1f} s of samples lost; the profile shows them as a "
                     "[collector error] frame")
        if p.entry is not None:
            p.entry.detail["lost"] = [{k: v for k, v in x.items() if v is not None} for x in losses]
            if p.entry.status != "failed":
                p.entry.status = "partial"
    return lost_any


def _timed(ctx: RunContext, prof: Profile, stack: List[Frame], loss: Dict[str, object], rate: float,
           weight: float) -> None:
    """The lost interval's samples in the timeline (evenly at ``rate``), when it has a place in time."""
    tl, since = prof.timeline, loss.get("since")
    if tl is None or since is None or not rate:
        return
    key = tuple(prof.intern(f) for f in stack)
    n = max(1, int(float(loss["seconds"]) * rate))
    each = max(1, int(weight / n))
    base = (ctx.t0_epoch + float(since)) - tl.start if tl.start else float(since)
    for i in range(n):
        tl.append(base + i / rate, key, ERROR_THREAD, each)
