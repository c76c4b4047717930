# SPDX-License-Identifier: Apache-2.0
"""``profkit bench``: a load generator against a URL while the service is profiled, as one run.

    validate: loopback URL, SLO grammar (exit 2), generator installed (exit 1 + hint), URL answers
    [prepare: the generator's set-up (sysbench prepare); a server forking per connection: the
     load starts first and the targets (--name/--children) are resolved once it is connected]
    one run of the recording engine: the load generator is a probe beside the profilers and the
        --probe samplers (it is told the duration and ends by itself; its raw output lands in raw/)
    the load probe's finish: whole-run RED figures + SLO verdicts → load.json
    its analysis: series, warm-up, steady-part figures, drift, coordinated omission → load.json
        (profkit.loadgen.analysis), SLOs judged again over the steady part
    [--baseline: alternating pairs of loads without and with profiling → load.json "overhead"]
    reports rendered once, with the load section
    zero successful requests → exit 1; an SLO missed → exit 4 (after everything is written)
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence

from collectors.base import Availability
from profkit.engine import RunContext
from profkit.engine.probe import Probe
from profkit.errors import EnvironmentProblem, ProfkitError, SLOMissed
from profkit.loadgen import LoadGenerator, LoadRequest, loopback_only
from profkit.rundir import RunDir
from profkit.secrets import redact
from profkit.slo import missed_message, parse_objective, verdicts

__all__ = ["LoadProbe", "check_reachable", "load_of", "measure_overhead", "run_bench"]

#: Seconds a generator may run past the duration before it is stopped (it was told the duration).
GRACE = 15.0


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


class LoadProbe(Probe):
    """A load generator as a probe of the run: its figures are ``ctx.results["load"]``, and,
    with ``write``, ``load.json`` with the SLO verdicts. :meth:`analyse` (an analysis of the run,
    after every probe finished) adds the series, the warm-up, steady figures and drift."""

    kind = "load"
    must_start = True

    def __init__(self, gen: LoadGenerator, availability: Availability, request: LoadRequest,
                 slos: Sequence[str] = (), *, write: bool = True, grace: float = GRACE, warmup: str = "0",
                 prestarted: Optional["Prestarted"] = None):
        super().__init__()
        self.id = gen.id
        self.gen, self.availability, self.request, self.slos = gen, availability, request, list(slos)
        self.write, self.grace, self.warmup = write, grace, warmup
        self.pre = prestarted
        self.handle = prestarted.handle if prestarted is not None else None
        self.interrupted = False

    def start(self, ctx: RunContext) -> None:
        entry = self.attach_record(ctx)
        entry.version = self.availability.version
        if self.pre is None:
            self.request = replace(self.request, raw_dir=ctx.run.raw_dir, duration=ctx.duration,
                                   started_epoch=time.time())
            self.handle = self.gen.start(self.request)
            final = self.handle.raw
        else:  # started before the run (targets resolved once it connected); its files move in at the end
            self.request = self.pre.request
            final = [os.path.join(ctx.run.raw_dir, os.path.basename(p)) for p in self.handle.raw]
            entry.detail["started_before_run_s"] = round(ctx.t0_epoch - (self.request.started_epoch or ctx.t0_epoch), 3)
        ctx.results["load_window"] = [self.request.started_epoch or time.time(), None]  # epoch seconds, for --prometheus
        entry.set_commands(self.handle.commands)
        entry.raw = [ctx.run.relative(p) for p in final]
        ctx.record.load = {"generator": self.gen.id, "version": self.availability.version,
                           "url": redact(self.request.url), "commands": entry.commands}

    def poll(self) -> bool:
        return self.handle is not None and self.handle.poll() is None

    def stop(self, reason: str) -> None:
        # At the duration the generator ends by itself (it was told it); on Ctrl-C it stops now
        # (SIGINT: wrk and locust still write their figures so far).
        if reason == "stop" and self.handle is not None:
            self.interrupted = True
            self.handle.stop()

    def finish(self, ctx: RunContext) -> None:
        assert self.handle is not None
        if not self.interrupted:
            self.handle.wait(self.grace)
        self.handle.stop()
        err = self.handle.close()
        if self.pre is not None:
            self.handle.raw = self.pre.move_into(ctx.run.raw_dir)
        ctx.results.setdefault("load_window", [time.time(), None])[1] = time.time()
        figures = self.gen.parse(self.handle.raw, self.request)
        figures.update({"version": self.availability.version, "commands": self.attach_record(ctx).commands,
                        "closed_loop": self.gen.closed_loop, "loop": "closed" if self.gen.closed_loop else "open",
                        "latency_model": self.gen.latency_model, "url": redact(self.request.url)})
        if self.request.request_rate:
            figures["requested_rate"] = self.request.request_rate
        figures["slo"] = verdicts(self.slos, figures)
        figures["stderr"] = redact(" ".join(err.split()))[:200]
        ctx.results["load"] = figures
        if self.interrupted:
            ctx.warn("the load was stopped early (Ctrl-C); its figures cover the time until then")
        ok = (figures.get("requests") or 0) - ((figures.get("errors") or {}).get("status") or 0)
        if figures.get("requests") is None:
            ctx.warn(f"the load generator ({self.gen.id}) reported no figures; the report has no RED panel"
                     + (f" (stderr: {figures['stderr']})" if figures["stderr"] else ""))
        elif ok <= 0:
            ctx.warn(f"zero successful requests to {redact(self.request.url)}")
        if self.write:
            ctx.run.write_json("load.json", _public(figures))

    def analyse(self, ctx: RunContext) -> None:
        """Series, warm-up, steady figures, drift, coordinated omission; SLOs over the steady part."""
        from profkit.heap.analysis import metrics_series
        from profkit.loadgen.analysis import analyse, probe_rows

        figures = ctx.results.get("load")
        if figures is None:
            return
        analyse(figures, t0_epoch=ctx.t0_epoch, duration=ctx.elapsed, warmup=self.warmup,
                metrics=metrics_series(ctx), probes=probe_rows(ctx.results.get("samplers")), warn=ctx.warn)
        figures["slo"] = verdicts(self.slos, figures)
        unknown = [o["text"] for o in figures["slo"]["objectives"] if o["status"] == "unknown"]
        if unknown:
            ctx.warn(f"SLO not checked, the generator did not report the figure: {', '.join(unknown)}")
        if self.write:
            ctx.run.write_json("load.json", _public(figures))


class Prestarted:
    """A generator started before the run, in a directory of its own (the run directory does not
    exist yet: its targets are resolved once the load is connected)."""

    def __init__(self, gen: LoadGenerator, request: LoadRequest, connect_timeout: float = 30.0):
        self.tmp = tempfile.mkdtemp(prefix="profkit-load-")
        self.request = replace(request, raw_dir=self.tmp)
        self.handle = gen.start(self.request)
        try:
            if not gen.wait_connected(self.handle, connect_timeout):
                raise EnvironmentProblem(f"{gen.id} did not connect within {connect_timeout:g} s")
        except BaseException:
            self.discard()
            raise
        self.request = replace(self.request, started_epoch=time.time())
        self.started = time.monotonic()

    def discard(self) -> None:
        """Stop the load and remove its directory (the run it was started for never began)."""
        self.handle.stop()
        self.handle.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def move_into(self, raw_dir: str) -> List[str]:
        moved = []
        for path in self.handle.raw:
            dest = os.path.join(raw_dir, os.path.basename(path))
            if os.path.exists(path):
                shutil.move(path, dest)
            moved.append(dest)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return moved


def _public(figures: Dict) -> Dict:
    return {k: v for k, v in figures.items() if k != "stderr"}


def _red_analysis(prometheus, gen_id: str):
    """The analysis that adds ``prometheus(start, end, figures)`` (``--prometheus``) to load.json."""

    def red(ctx: RunContext) -> None:
        figures = ctx.results.get("load")
        if prometheus is None or figures is None:
            return
        start, end = ctx.results.get("load_window") or [time.time(), time.time()]
        try:
            figures["prometheus"] = prometheus(start, end, figures)
        except ProfkitError as e:  # the load's own figures are kept
            figures["prometheus"] = {"error": e.message}
            ctx.warn(f"--prometheus: {e.message}")
        prom = figures["prometheus"]
        disagreements = list(prom.get("disagreements") or [])
        if prom.get("warning"):
            ctx.warn(f"--prometheus: {prom['warning']}")
        for text in disagreements:
            ctx.warn(f"Prometheus and {gen_id} disagree: {text}")
        ctx.run.write_json("load.json", _public(figures))

    return red


def _traces_analysis(jaeger):
    """The analysis that compares the load window's slow and fast traces (``--jaeger``)."""

    def traces(ctx: RunContext) -> None:
        if jaeger is None or ctx.results.get("load") is None:
            return
        start, end = ctx.results.get("load_window") or [time.time(), time.time()]
        try:
            for w in jaeger(start, end, ctx.run):
                ctx.warn(f"traces: {w}")
        except ProfkitError as e:  # the profile and the load's figures are kept
            ctx.warn(f"--jaeger: {e.message}")

    return traces


def _traces_analyses(jaeger) -> list:
    """``--jaeger``: the traces comparison, then the top segment's service's profile (focus.json)."""
    if jaeger is None:
        return []
    from profkit.traces.investigate import focus_analysis

    return [_traces_analysis(jaeger), focus_analysis]


def run_bench(targets, session_options, gen: LoadGenerator, load: LoadRequest, slos: Sequence[str], *,
              stop: Optional[threading.Event] = None, progress=None, baseline_pairs: int = 0,
              baseline_seconds: float = 5.0, warmup: str = "0", samplers: Sequence[Probe] = (),
              resolve: Optional[Callable[[], list]] = None, prometheus=None, jaeger=None) -> RunDir:
    """Profile ``targets`` while ``gen`` loads ``load.url``; returns the run directory.

    With ``resolve`` and a generator whose server forks per connection, the load starts first
    and the targets are ``resolve()``-d once it is connected. ``samplers`` (``--probe``) run
    beside the profilers. ``prometheus``, a function (start, end, load figures) → dict, adds the
    server's own RED figures of the load's window to load.json (``prometheus``; profkit/red.py
    ``bench_red``). ``jaeger``, a function (start, end, run) → None, compares the window's slow and
    fast traces into the run directory (traces.json and the span graphs; profkit/traces
    ``run_traces``), then the profile of the service that owns the top segment (focus.json;
    profkit/traces/investigate.py).

    Raises (after writing everything) EnvironmentProblem when no request succeeded and
    :class:`~profkit.errors.SLOMissed` when an objective was missed."""
    from profkit.live import run_session

    loopback_only(load.url, gen.schemes)
    gen.validate(load)
    for text in slos:
        parse_objective(text)  # exit 2 before anything runs
    avail = gen.check()
    if not avail.ok:
        raise avail.error(f"load generator {gen.id}")
    gen.check_target(load.url)
    if progress is not None:
        progress(0.0, load.duration, f"{gen.id}: setting up the load")
    gen.prepare(load)
    pre = None
    if resolve is not None and gen.resolve_after_connect:
        pre = Prestarted(gen, load)
        try:
            targets = resolve()
        except BaseException:
            pre.discard()
            raise
        left = max(1.0, load.duration - (time.monotonic() - pre.started))
        session_options = replace(session_options, duration=left)
    elif resolve is not None:
        targets = resolve()
    probe = LoadProbe(gen, avail, load, slos, warmup=warmup, prestarted=pre)

    def overhead(ctx: RunContext) -> None:
        figures = ctx.results.get("load")
        if baseline_pairs and figures is not None and not ctx.stop.is_set():
            figures["overhead"] = measure_overhead(targets, session_options, gen, avail, load, baseline_pairs,
                                                   baseline_seconds)
            ctx.run.write_json("load.json", _public(figures))

    try:
        run, ctx = run_session(targets, session_options, stop=stop, progress=progress, extra=[probe, *samplers],
                               analyses=[probe.analyse, overhead, _red_analysis(prometheus, gen.id),
                                         *_traces_analyses(jaeger)])
    except BaseException:
        if pre is not None and probe.entry is None:  # the run never began: the early load must not outlive it
            pre.discard()
        raise
    figures = ctx.results.get("load") or {}
    ok = (figures.get("requests") or 0) - ((figures.get("errors") or {}).get("status") or 0)
    if figures.get("requests") is not None and ok <= 0:
        detail = f"{figures.get('error_count') or 0} errors" + (f"; {figures['stderr']}" if figures.get("stderr") else "")
        raise EnvironmentProblem(f"zero successful requests to {redact(load.url)} ({detail}); the run is in {run.path}/",
                                 hint="check the URL path and that the service answers 2xx/3xx")
    missed = missed_message(figures.get("slo") or {})
    if missed:
        raise SLOMissed(f"{missed}; the run is in {run.path}/")
    return run


def measure_overhead(targets, session_options, gen: LoadGenerator, avail: Availability, req: LoadRequest,
                     pairs: int, seconds: float) -> Dict:
    """The profiler's cost to the service: ``pairs`` alternating pairs of fixed loads without and
    with a profiling session (:func:`profkit.overhead.alternate`, as benchmarks/bench_overhead.py).
    Each load is a run of the engine in a temporary directory: the load alone, or load and profilers."""
    from profkit.engine import record
    from profkit.live import new_run, run_session
    from profkit.overhead import alternate

    tmp = tempfile.mkdtemp(prefix="profkit-baseline-")
    opts = replace(session_options, duration=seconds)

    def one(profiled: bool) -> float:
        out = tempfile.mkdtemp(dir=tmp)
        probe = LoadProbe(gen, avail, req, write=False, grace=seconds + 15)
        if profiled:
            _, ctx = run_session(targets, replace(opts, output=os.path.join(out, "run")), extra=[probe], render=False)
        else:
            run = new_run(targets, os.path.join(out, "run"), mode=opts.mode, rate=opts.rate, duration=seconds)
            ctx = record(run, targets, [probe], duration=seconds, render=False)
        return float((ctx.results.get("load") or {}).get("rate") or 0.0)

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
    return run.read_json("load.json")
