# SPDX-License-Identifier: Apache-2.0
"""A run's outputs: folded profiles, then everything derived from what is on disk.

:func:`write_profiles` writes ``profile.folded`` (the primary collector's profile — never a sum
of several collectors), ``profile-ID.folded`` when several ran and, for several targets,
``targets/<pid>-<name>/profile[-ID].folded``. :func:`render_run`, which ``profkit render
RUN_DIR`` also uses, reads the run directory alone and rebuilds ``flamegraph.svg``,
``summary.md`` and ``report.html``. A run left ``running`` by a profkit that died, or one whose
``profile.folded`` is missing, is first recovered from its raw captures (:func:`recover_profiles`).
"""
from __future__ import annotations

import io
import os
from typing import Dict, List, Mapping, Optional, Sequence

from profkit.errors import Diagnostics, DiskFull, EnvironmentProblem, ProfkitError
from profkit.inputs import Source
from profkit.model import Profile, ProfileMeta
from profkit.rundir import RunDir, safe_name
from profkit.runrecord import ProfileRecord

__all__ = ["load_run_profile", "on_cpu_check", "recover_profiles", "render_run", "write_profiles"]


def _target_dir(pid: int, name: str) -> str:
    return f"targets/{pid}-{safe_name(name)}"


def write_profiles(run: RunDir, profiles: Mapping[str, Profile], order: Sequence[str],
                   per_target: Optional[Mapping[str, Mapping[int, Profile]]] = None, *,
                   save: bool = True) -> Optional[Profile]:
    """Write the folded profiles of a finished capture and record the primary one; returns it.
    ``save=False``: the caller saves the record next (the engine, as it sets the status)."""
    record = run.record
    present = [cid for cid in order if cid in profiles] + [cid for cid in profiles if cid not in order]
    primary = present[0] if present else None
    several = len(present) > 1
    for cid in present:
        if several:
            run.write_profile(f"profile-{cid}.folded", profiles[cid])
    names = {t.pid: t.name for t in record.targets}
    for cid, per in (per_target or {}).items():
        for pid, prof in per.items():
            d = _target_dir(pid, names.get(pid, "process"))
            for t in record.targets:
                if t.pid == pid:
                    t.dir = d
            if cid == primary:
                run.write_profile(f"{d}/profile.folded", prof)
                for t in record.targets:
                    if t.pid == pid:
                        t.timeline = write_timeline(run, prof, f"{d}/timeline.bin")
            if several:
                run.write_profile(f"{d}/profile-{cid}.folded", prof)
    if primary is None:
        if save:
            run.save()
        return None
    prof = profiles[primary]
    run.write_profile("profile.folded", prof)
    record.profile = ProfileRecord(primary=primary, unit=prof.unit, samples=prof.total, unique_stacks=len(prof))
    record.profile.timeline = write_timeline(run, prof)
    if not prof:
        record.warn("no samples were collected (an idle target, or one that exited at once)")
    elif prof.unit == "samples" and record.mode in ("cpu", "wall") and record.rate and record.duration:
        expected = record.rate * record.duration * max(1, len(record.targets))
        if prof.total < 0.1 * expected:
            record.warn(f"only {prof.total:g} samples where about {expected:.0f} were possible at {record.rate:g} Hz: "
                        "the target was mostly idle or off-CPU; --mode wall shows where it waits")
        _check_on_cpu(run, prof)
    if save:
        run.save()


def write_timeline(run: RunDir, prof: Profile, name: str = "timeline.bin") -> Optional[dict]:
    """Write ``prof``'s timed samples beside its folded file, offsets counted from the run's
    start; returns the record of it (None when the profile has none)."""
    from profkit.timeline import Timeline, epoch_of_iso, write

    tl = prof.timeline
    if tl is None or not len(tl):
        return None
    start = epoch_of_iso(run.record.start) or tl.start
    if start != tl.start:
        rebased = Timeline(start, tl.tick_us)
        rebased.extend(tl)
        tl = rebased
    path = write(run.file(name), tl, sync=run.durable)
    return {"file": name, "samples": len(tl), "threads": len(tl.threads), "bytes": os.path.getsize(path),
            "seconds": round(tl.duration, 3)}


def load_timeline(run: RunDir, profile: Profile) -> None:
    """Attach the run's ``timeline.bin`` to ``profile`` (read from ``profile.folded``), if the
    run has one; a damaged one is a warning, the reports then go without time."""
    from profkit.timeline import TimelineFormatError, read

    rec = run.record.profile.timeline if run.record.profile else None
    if not rec or not os.path.exists(run.file(rec["file"])):
        return
    try:
        profile.timeline = read(run.file(rec["file"]), profile.intern)
    except (OSError, TimelineFormatError) as e:
        run.record.warn(f"{rec['file']}: {e}; the report shows no time or threads")


def on_cpu_check(run: RunDir, prof: Profile):
    """``(sampled seconds, CPU seconds, run-queue seconds, host CPU pressure %)`` of a cpu-mode
    run in samples, from /proc (``metrics.jsonl``; the last two None where the kernel keeps no
    schedstat or PSI), else None. A sampler's on-CPU time should not exceed what the kernel says
    the targets used, except by the time their threads waited runnable for a CPU, which a sampler
    that reads thread states counts as running."""
    from profkit.metrics import summarise

    r = run.record
    if r.mode != "cpu" or prof.unit != "samples" or not r.rate or not os.path.exists(run.file("metrics.jsonl")):
        return None
    summ = summarise(run.file("metrics.jsonl"))
    if not summ or summ.get("cpu_seconds") is None:
        return None
    return prof.total / r.rate, summ["cpu_seconds"], summ.get("cpu_wait_seconds"), summ.get("host_cpu_pressure_pct")


#: Host CPU pressure (PSI ``some``, % of the run) from which the CPUs count as saturated.
SATURATED_PCT = 25.0


def _over(sampled: float, seconds: float) -> bool:
    return sampled > 1.5 * seconds + 0.5


def _check_on_cpu(run: RunDir, prof: Profile) -> None:
    check = on_cpu_check(run, prof)
    if check is None or not _over(check[0], check[1]):
        return
    sampled, used, waited, pressure = check
    counted = f"the profile counts {sampled:.1f} s on-CPU, the targets used {used:.1f} s of CPU"
    if waited is not None and not _over(sampled, used + waited):
        why = f"their threads waited {waited:.1f} s runnable for a CPU (run queue, /proc schedstat)"
    elif pressure is not None and pressure >= SATURATED_PCT:
        why = (f"some task on the host waited for a CPU in {pressure:.0f}% of the run (PSI; the run queue of "
               "threads that lived less than a metrics interval is not measured)")
    else:
        run.record.warn(f"the profile counts {sampled:.1f} s on-CPU but the targets used only {used:.1f} s of CPU "
                        "(/proc): waiting threads were counted as running; read it as wall time, or record with "
                        "py-spy's default --nonblocking in cpu mode")
        return
    run.record.warn(f"the CPUs were saturated: {counted}, and {why}; py-spy counts a runnable thread as running, "
                    "so part of each hot path's time is waiting for a CPU: give the targets more CPU or profile on "
                    "a quieter host")


def recover_profiles(run: RunDir) -> List[str]:
    """Parse a run's raw captures again (a profkit that died before writing its profiles, or a
    ``profile.folded`` that is missing) and write the profiles; returns what could not be read."""
    import collectors
    from profkit.engine.captures import options_from, parse_captures

    record = run.record
    names = record.process_names()
    profiles: Dict[str, Profile] = {}
    per_target: Dict[str, Dict[int, Profile]] = {}
    problems: List[str] = []
    for entry in record.profilers:
        diag = Diagnostics()
        try:
            c = collectors.get(entry.id)
            listed = [run.file(r) for r in entry.raw]
            if not listed:  # a record from before the capture's name was known
                listed = [os.path.join(run.raw_dir, f) for f in run.raw_files() if f.startswith(entry.id + "-")]
            raws = c.recover(listed, diag)
            if not raws:
                problems.append(f"{entry.id}: no capture on disk ({', '.join(entry.raw) or 'raw/ has none'})")
                continue
            merged, per = parse_captures(c, raws, options_from(c, entry.parse), names, diag)
        except ProfkitError as e:
            problems.append(f"{entry.id}: {e.message}")
            continue
        finally:
            for msg in diag.messages():
                record.warn(f"{entry.id}: {msg}")
        entry.raw = [run.relative(r) for r in raws]
        profiles[entry.id] = merged
        if per:
            per_target[entry.id] = per
    write_profiles(run, profiles, [p.id for p in record.profilers], per_target)
    return problems


def _recover_if_needed(run: RunDir) -> None:
    record = run.record
    if record.status == "running":
        if record.owner is not None and record.owner.alive():
            raise EnvironmentProblem(f"{run.path} is still being recorded by profkit (PID {record.owner.pid})",
                                     hint="wait for that run to end; it renders its reports itself")
        problems = recover_profiles(run)
        record.warn("profkit ended before finishing this run (killed?); its profiles were recovered from raw/ "
                    "by profkit render" + (f"; not recovered: {'; '.join(problems)}" if problems else ""))
        run.finish("interrupted")
    elif not os.path.exists(run.file("profile.folded")) and record.profilers:
        problems = recover_profiles(run)
        if os.path.exists(run.file("profile.folded")):
            record.warn("profile.folded was missing; it was made again from the raw captures in raw/")
        else:
            record.warn("profile.folded is missing and could not be made again from raw/: " + "; ".join(problems))
        run.save()


def load_run_profile(run: RunDir, *, keyed: bool = False) -> Optional[Profile]:
    """``profile.folded`` of a run, with the unit and metadata from its record; None if absent.
    ``keyed`` names frames by function as they are read (for comparisons)."""
    path = run.file("profile.folded")
    if not os.path.exists(path):
        return None
    r = run.record
    meta = ProfileMeta(collector=r.primary, pid=r.pids[0] if r.pids else None, command=r.target.command or None,
                       start=r.start or None, duration=r.duration, sample_rate=r.rate)
    if os.path.getsize(path) == 0:
        return Profile(r.unit, meta, keyed=keyed)
    from profkit.folded import read_folded
    from profkit.loading import gc_paused

    diag = Diagnostics(path)
    with gc_paused():
        return read_folded(Source(path, diag).text_lines(), diag, unit=r.unit, meta=meta, keyed=keyed)


def record_disk_full(run: RunDir, e: DiskFull, status: Optional[str] = "interrupted") -> None:
    """Say in the run record what could not be written (if the record itself still fits), then
    raise (exit 1, naming the path). A recording whose outputs are not all written is not
    complete (``status``); a re-render (``status`` None) keeps the run's status."""
    run.record.not_written.append(e.message)
    run.warn(f"{e.message}; the raw captures in raw/ are kept: free some space and run profkit render")
    try:
        if status is None:
            run.save()
        else:
            run.finish(status)
    except DiskFull:
        pass  # not even the record fits; the error itself still says what failed
    raise e


def render_run(run: RunDir) -> Dict[str, str]:
    """Rebuild ``flamegraph.svg``, ``summary.md`` and ``report.html`` from the run directory."""
    try:
        return _render(run)
    except DiskFull as e:
        record_disk_full(run, e, status=None if run.record.status != "running" else "interrupted")
        raise


def _render(run: RunDir) -> Dict[str, str]:
    from flamegraph import render_svg
    from flamegraph.options import FlameGraphOptions
    from profkit.reports import render_report, summary_markdown

    _recover_if_needed(run)
    written: Dict[str, str] = {}
    profile = load_run_profile(run)
    if profile is not None:
        load_timeline(run, profile)
    svg_text = None
    r = run.record
    if profile:
        title = f"{r.primary or 'profile'}: {r.target.name} ({r.mode})"
        buf = io.StringIO()
        render_svg(profile, FlameGraphOptions(title=title, subtitle=_subtitle(run)), buf)
        svg_text = buf.getvalue()
        written["flamegraph"] = run.write_text("flamegraph.svg", svg_text)
    written["summary"] = run.write_text("summary.md", summary_markdown(run, profile))
    written["report"] = run.write_text("report.html", render_report(run, profile, svg_text))
    return written


def _subtitle(run: RunDir) -> str:
    r = run.record
    parts = [f"pid {', '.join(str(p) for p in r.pids)}"]
    if r.rate and r.mode in ("cpu", "wall"):
        parts.append(f"{r.rate:g} Hz")
    if r.duration is not None:
        parts.append(f"{r.duration:.1f} s")
    if r.status != "running":
        parts.append(r.status)
    return ", ".join(parts)
