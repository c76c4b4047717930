# SPDX-License-Identifier: Apache-2.0
"""From a generator's figures to what ``load.json`` says: series, warm-up, steady RED, drift,
coordinated omission (docs/contract.md "Benchmarks: steady state").

    generator rows + metrics.jsonl (CPU, RSS) + --probe samples ─► series (t since the run's start)
    --warmup 0 | DURATION | auto  ─► warmup_s (profkit.loadgen.steady)
    steady rows ─► top-level rate, errors, latency_ms (whole run's under whole_run)
    steady rows ─► drift;  closed loop ─► coordinated_omission evidence + a warning
"""
from __future__ import annotations

import copy
from typing import Dict, List, Sequence

from profkit.loadgen import ERROR_KINDS
from profkit.loadgen.series import LatencyHistogram, join, public_rows
from profkit.loadgen.steady import co_evidence, drift, resolve_warmup

__all__ = ["WHOLE_RUN_KEYS", "analyse", "steady_figures"]

NO_SERIES = "the generator reports no per-interval figures"
WHOLE_RUN_KEYS = ("requests", "duration_s", "rate", "errors", "error_count", "error_pct", "latency_ms", "distribution")


def steady_figures(fig: Dict, rows: Sequence[dict], warmup_s: float) -> Dict:
    """The RED figures over ``rows`` from ``warmup_s`` on (``fig`` is the whole run's).

    Rate and errors come from the rows; latency percentiles from the rows' histograms where the
    generator saw every request (vegeta), else the whole run's (marked in ``latency_basis``) with
    the steady part's ``mean`` where the rows have it."""
    steady = [r for r in rows if r["t"] >= warmup_s - 1e-6 and r.get("requests") is not None]
    out = {k: copy.deepcopy(fig.get(k)) for k in WHOLE_RUN_KEYS}
    if not steady:
        out["latency_basis"] = "whole run"
        return out
    seconds = sum(r.get("dt", 1.0) for r in steady)
    n = sum(r["requests"] for r in steady)
    bad = sum(round((r.get("errors") or 0) * r.get("dt", 1.0)) for r in steady)
    out["requests"], out["duration_s"] = n, round(seconds, 3)
    out["rate"] = round(n / seconds, 2) if seconds else None
    out["errors"] = {k: None for k in ERROR_KINDS}
    out["error_count"] = bad
    out["error_pct"] = round(100.0 * bad / n, 4) if n else 0.0
    hists = [r["_hist"] for r in steady if r.get("_hist") is not None]
    if hists:
        merged = LatencyHistogram()
        for h in hists:
            merged.merge(h)
        out["latency_ms"], out["distribution"] = merged.figures(), merged.distribution()
        out["latency_basis"] = "steady part"
    else:
        lat = dict(fig.get("latency_ms") or {})
        means = [(r["mean"], r["requests"]) for r in steady if r.get("mean") is not None and r["requests"]]
        if means:
            lat["mean"] = round(sum(m * k for m, k in means) / sum(k for _, k in means), 3)
        out["latency_ms"] = lat
        out["latency_basis"] = "percentiles: whole run (the generator keeps one histogram); mean: steady part"
    return out


def analyse(fig: Dict, *, t0_epoch: float, duration: float, warmup: str, metrics: Sequence[dict] = (),
            probes: Sequence[Sequence[dict]] = (), warn=None) -> Dict:
    """``fig`` (a generator's parse) completed in place: ``series``, ``warmup_s``, ``warmup``,
    ``whole_run``, steady top-level figures, ``drift``, ``coordinated_omission``. ``warn`` gets
    each warning for the run record."""
    warn = warn or (lambda _msg: None)
    gen_rows = fig.pop("series", None) or []
    rows = join(gen_rows, t0_epoch, metrics=metrics, duration=duration if not gen_rows else 0.0, probes=probes)
    fig["whole_run"] = {k: copy.deepcopy(fig.get(k)) for k in WHOLE_RUN_KEYS}
    if any(r.get("rate") is not None for r in rows):
        wu = resolve_warmup(rows, warmup, duration)
    elif warmup == "0":
        wu = {"mode": "none", "warmup_s": 0.0, "reached": True, "reason": "no warm-up excluded (--warmup 0)"}
    else:
        wu = {"mode": "auto" if warmup == "auto" else "fixed", "warmup_s": 0.0, "reached": False,
              "reason": NO_SERIES}
    if not wu["reached"]:
        what = "run too short to reach steady state" if wu["reason"] != NO_SERIES else "no warm-up left out"
        warn(f"{what}: {wu['reason']}; the figures are the whole run's (run longer, or give --warmup SECONDS)")
    fig["warmup"], fig["warmup_s"] = wu, wu["warmup_s"]
    if wu["warmup_s"] > 0:
        fig.update(steady_figures(fig, rows, wu["warmup_s"]))
    else:
        fig["latency_basis"] = "whole run"
    steady = [r for r in rows if r["t"] >= wu["warmup_s"] - 1e-6]
    fig["drift"] = drift(steady)
    for d in fig["drift"]:
        warn(f"drift over the steady part: {d['metric']} {'falls' if d['slope'] < 0 else 'rises'} by "
             f"{d['slope']:+.3g} {d['unit']} (95% interval {d['ci95'][0]:+.3g} … {d['ci95'][1]:+.3g}; "
             f"{d['change_pct']:+.0f}% of its median over the steady part)")
    if fig.get("closed_loop", True) and fig.get("requests"):
        ev = co_evidence(fig.get("latency_ms") or {}, steady)
        fig["coordinated_omission"] = ev
        warn(co_warning(fig.get("generator") or "?", ev))
    if fig.get("rate_sustained") is False:
        warn(f"{fig.get('generator')} could not sustain --request-rate {fig.get('requested_rate'):g}/s: it sent "
             f"{fig.get('sent_rate')}/s with a send lag of {fig['send_lag_ms']['p99']:.0f} ms (p99); the latencies "
             "count that lag from each request's intended send time")
    fig["series"] = public_rows(rows)
    return fig


def co_warning(generator: str, ev: Dict) -> str:
    """The summary's coordinated-omission warning with its evidence."""
    parts = []
    if ev.get("max_over_p99"):
        parts.append(f"max latency {ev['max_ms']:.4g} ms is {ev['max_over_p99']:g}× its p99 {ev['p99_ms']:.4g} ms")
    if ev.get("dip_seconds"):
        worst = ", ".join(f"{d['rate']:.0f}/s at {d['t']:.0f} s" for d in ev["dips"][:3])
        parts.append(f"throughput fell below half its median {ev['median_rate']:.0f}/s in {ev['dip_seconds']} "
                     f"second(s) ({worst})")
    evidence = "; ".join(parts) if parts else "no dips seen in this run"
    return (f"{generator} is closed-loop, so its latencies suffer from coordinated omission: while the service "
            f"stalls it sends less, and the queueing delay open traffic would meet is missing from its percentiles "
            f"(evidence: {evidence}); measure tail latency with an open-loop generator (--load vegeta --request-rate R)")


def probe_rows(samplers) -> List[List[dict]]:
    """The per-second rows of every ``--probe`` sampler of the run."""
    return [list(s.rows) for s in samplers or () if getattr(s, "rows", None)]

