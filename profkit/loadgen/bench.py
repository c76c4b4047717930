# SPDX-License-Identifier: Apache-2.0
"""``profkit bench``: a load generator against a URL while a live session profiles the service.

    validate: loopback URL, SLO grammar (exit 2), generator installed (exit 1 + hint), URL answers
    RUN_DIR/raw/ made first, so the generator's own output lands in the run directory
    start the generator (profkit's child) ─┐
    run_session(targets) for --duration   ├─ same wall-clock window
    wait for the generator (bounded)      ┘
    parse its raw output → RED figures; SLO verdicts → load.json; [--baseline: overhead pairs]
    render the run again (summary.md and report.html gain the load section)
    zero successful requests → exit 1; an SLO missed → exit 4 (after everything is written)

The session, run directory, outputs and overhead method are the live-profiling ones
(:mod:`profkit.session`, :mod:`profkit.outputs`, :func:`profkit.overhead.alternate`).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence

from profkit.errors import CollectorNotInstalled, EnvironmentProblem, ProfkitError
from profkit.loadgen import LoadGenerator, LoadRequest, loopback_only
from profkit.rundir import RunDir, default_run_path
from profkit.slo import SLOMissed, missed_message, parse_objective, verdicts

__all__ = ["check_reachable", "load_of", "measure_overhead", "run_bench", "write_load_json"]


def check_reachable(url: str, timeout: float = 3.0) -> None:
    """One GET to the (loopback) URL before any load: any HTTP answer will do, even an error
    status; a refused connection or a timeout is an environment problem (exit 1)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only, checked before
            resp.read(1)
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise EnvironmentProblem(f"{url} is unreachable: {reason}",
                                 hint="start the service first; profkit bench does not start it") from None


def write_load_json(run_path: str, load: Dict) -> str:
    """Write ``RUN_PATH/load.json`` atomically; returns its path."""
    path = os.path.join(run_path, "load.json")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(load, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def _run_load(gen: LoadGenerator, req: LoadRequest, during: Callable[[], object], stop: threading.Event,
              grace: float = 15.0, on_done: Optional[Callable[[Dict], None]] = None):
    """Start the generator, call ``during()`` (the profiling), then let the generator end by itself
    (it was told the duration) or stop it. Returns (figures, during's result, commands, stderr,
    early): ``early`` when ``on_done(figures)`` already ran while ``during()`` was still busy."""
    handle = gen.start(req)
    box: Dict = {}

    def watch() -> None:
        # The generator ends at the duration, usually before the session has stopped its
        # collectors, parsed and rendered: handing the figures over then (on_done writes
        # load.json) lets the session's own render include the load section — one render, not two.
        if handle.wait(req.duration + grace) is None or stop.is_set():
            return
        try:
            figures = gen.parse(handle.raw, req)
            on_done(figures)
            box["figures"] = figures
        except Exception:  # the main path parses again and reports properly
            box.clear()

    watcher = threading.Thread(target=watch, name="profkit-load-watch", daemon=True) if on_done else None
    if watcher:
        watcher.start()
    result = None
    try:
        result = during()
        deadline = time.monotonic() + grace
        while handle.poll() is None and time.monotonic() < deadline and not stop.is_set():
            handle.wait(0.2)
    finally:
        handle.stop()
        if watcher:
            watcher.join(grace)
        err = handle.close()
    early = "figures" in box
    figures = box["figures"] if early else gen.parse(handle.raw, req)
    return figures, result, handle.commands, err, early


def _rendered_with_load(run: RunDir) -> bool:
    """Whether summary.md and report.html already carry the load section."""
    try:
        with open(run.file("summary.md"), encoding="utf-8", errors="replace") as fh:
            summary = fh.read()
        with open(run.file("report.html"), encoding="utf-8", errors="replace") as fh:
            report = fh.read()
    except OSError:
        return False
    return "## Load" in summary and 'id="load"' in report


def run_bench(targets, session_options, gen: LoadGenerator, load: LoadRequest, slos: Sequence[str], *,
              stop: Optional[threading.Event] = None, progress=None, baseline_pairs: int = 0,
              baseline_seconds: float = 5.0) -> RunDir:
    """Profile ``targets`` while ``gen`` loads ``load.url``; returns the run directory.

    Raises (after writing everything) EnvironmentProblem when no request succeeded and
    :class:`~profkit.slo.SLOMissed` when an objective was missed."""
    from profkit.outputs import render_run
    from profkit.session import run_session

    stop = stop or threading.Event()
    loopback_only(load.url)
    for text in slos:
        parse_objective(text)  # exit 2 before anything runs
    avail = gen.check()
    if not avail.ok:
        raise CollectorNotInstalled(f"load generator {gen.id}: {avail.reason}", hint=avail.hint or None)
    check_reachable(load.url)
    first = targets[0]
    path = session_options.output or default_run_path(first.pid, first.name)
    raw = RunDir.prepare(path)
    req = replace(load, raw_dir=raw, duration=session_options.duration)
    opts = replace(session_options, output=path)
    commands_box: List = []

    def finalize(figures: Dict) -> None:
        figures.update({"version": avail.version, "commands": commands_box or None, "closed_loop": gen.closed_loop})
        figures["slo"] = verdicts(slos, figures)
        write_load_json(path, figures)

    def during():
        return run_session(targets, opts, stop=stop, progress=progress)

    figures, run, commands, err, early = _run_load(gen, req, during, stop, on_done=finalize)
    commands_box.extend(commands)
    if not early:
        finalize(figures)
    figures["commands"] = commands
    rerender = not early or not _rendered_with_load(run)
    if stop.is_set():
        run.warn("the load was stopped early (Ctrl-C); its figures cover the time until then")
        rerender = True
    if baseline_pairs:
        figures["overhead"] = measure_overhead(targets, session_options, gen, req, baseline_pairs, baseline_seconds)
        rerender = True
    run.manifest["load"] = {"generator": gen.id, "version": avail.version, "url": load.url, "commands": commands}
    ok = (figures.get("requests") or 0) - ((figures.get("errors") or {}).get("status") or 0)
    warnings = []
    if figures.get("requests") is None:
        warnings.append(f"the load generator ({gen.id}) reported no figures; the report has no RED panel"
                        + (f" (stderr: {' '.join(err.split())[:200]})" if err.strip() else ""))
    elif ok <= 0:
        warnings.append(f"zero successful requests to {load.url}")
    unknown = [o["text"] for o in figures["slo"]["objectives"] if o["status"] == "unknown"]
    if unknown:
        warnings.append(f"SLO not checked, the generator did not report the figure: {', '.join(unknown)}")
    for w in warnings:
        run.warn(w)
    write_load_json(path, figures)
    run.save()
    if rerender or warnings:
        render_run(run)
    if figures.get("requests") is not None and ok <= 0:
        detail = f"{figures.get('error_count') or 0} errors" + (f"; {' '.join(err.split())[:200]}" if err.strip() else "")
        raise EnvironmentProblem(f"zero successful requests to {load.url} ({detail}); the run is in {path}/",
                                 hint="check the URL path and that the service answers 2xx/3xx")
    missed = missed_message(figures["slo"])
    if missed:
        raise SLOMissed(f"{missed}; the run is in {path}/")
    return run


def measure_overhead(targets, session_options, gen: LoadGenerator, req: LoadRequest, pairs: int,
                     seconds: float) -> Dict:
    """The profiler's cost to the service: ``pairs`` alternating pairs of fixed loads without and
    with a profiling session (:func:`profkit.overhead.alternate`, as benchmarks/bench_overhead.py)."""
    from profkit.overhead import alternate
    from profkit.session import run_session

    tmp = tempfile.mkdtemp(prefix="profkit-baseline-")
    never = threading.Event()

    def one(profiled: bool) -> float:
        d = tempfile.mkdtemp(dir=tmp)
        r = replace(req, raw_dir=d, duration=seconds)
        opts = replace(session_options, duration=seconds, output=os.path.join(d, "run"))
        during = (lambda: run_session(targets, opts, stop=never)) if profiled else (lambda: None)
        fig, _, _, _, _ = _run_load(gen, r, during, never, grace=seconds + 15)
        return float(fig.get("rate") or 0.0)

    try:
        res = alternate(pairs, lambda: one(False), lambda: one(True))
    except ProfkitError as e:
        return {"error": e.message}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"pairs": pairs, "seconds": seconds, "baseline_rate": res.baseline, "profiled_rate": res.profiled,
            "losses_pct": [round(x, 2) for x in res.losses], "median_loss_pct": round(res.median_loss, 2),
            "spread_pct": round(res.spread, 2), "method": "alternating pairs (profkit.overhead.alternate)"}


def load_of(run: RunDir) -> Optional[Dict]:
    """``load.json`` of a run, or None."""
    path = run.file("load.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


