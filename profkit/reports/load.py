# SPDX-License-Identifier: Apache-2.0
"""The load section of a run's reports (``load.json`` present: ``profkit bench``).

RED (rate, errors, duration: latency percentiles), the SLO verdicts, USE from the process
metrics (CPU, memory, threads), a latency-distribution chart (inline SVG, percentiles on a
"nines" axis), the top hotspots of the profile and the profiler's overhead when measured.
Registered through :data:`profkit.reports.SECTIONS`; the flame graph itself is embedded by the
main report, once, above this section.
"""
from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Optional, Tuple

from profkit.markdown import markdown_escape
from profkit.rundir import RunDir

__all__ = ["CLOSED_LOOP_NOTE", "drift_rows", "html_section", "latency_chart", "markdown_section", "steady_lines"]

CLOSED_LOOP_NOTE = ("closed-loop generator: each connection waits for a response before sending the next request, "
                    "so when the service slows down the load drops too and queueing delay that open traffic "
                    "would meet is hidden (coordinated omission); treat tail latencies as a lower bound")


def _load(run: RunDir) -> Optional[Dict]:
    try:
        with open(run.file("load.json"), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _ms(v) -> str:
    if v is None:
        return "n/a"
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.1f} ms" if v >= 10 else f"{v:.2f} ms"


def _num(v, fmt: str = "{:,.0f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def red_rows(load: Dict) -> List[Tuple[str, str]]:
    """(label, value) rows of the RED panel."""
    lat = load.get("latency_ms") or {}
    errs = load.get("errors") or {}
    kinds = ", ".join(f"{k} {v}" for k, v in errs.items() if v)
    rows = [("requests", _num(load.get("requests"))),
            ("rate", _num(load.get("rate"), "{:,.1f}/s")),
            ("errors", (f"{_num(load.get('error_count'))} ({_num(load.get('error_pct'), '{:.3g}')}%)"
                        + (f": {kinds}" if kinds else "")) if load.get("error_count") is not None else "n/a")]
    rows += [(k, _ms(lat.get(k))) for k in ("p50", "p90", "p99", "p99.9", "max")]
    return rows


def _hotspots(run: RunDir, n: int = 5) -> List[Tuple[str, float]]:
    """The heaviest leaf functions of ``profile.folded`` by self share, in one streaming pass
    (cheap: the report must not cost much beyond the flame graph)."""
    from profkit.model import function_key

    path = run.file("profile.folded")
    if not os.path.exists(path):
        return []
    by: Dict[bytes, float] = {}
    total = 0.0
    # Bytes, not text: only each line's leaf frame is decoded (profiles can be hundreds of MB).
    with open(path, "rb") as fh:
        for line in fh:
            stack, _, count = line.rstrip(b"\r\n").rpartition(b" ")
            try:
                w = float(count)
            except ValueError:
                continue
            leaf = stack.rpartition(b";")[2]
            by[leaf] = by.get(leaf, 0.0) + w
            total += w
    keyed: Dict[str, float] = {}
    for leaf, w in by.items():
        k = function_key(leaf.decode("utf-8", "surrogateescape"))
        keyed[k] = keyed.get(k, 0.0) + w
    top = sorted(keyed.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [(k, 100.0 * w / total) for k, w in top] if total else []


def _use(run: RunDir) -> Optional[Dict]:
    from profkit.metrics import summarise

    path = run.file("metrics.jsonl")
    return summarise(path) if os.path.exists(path) else None


def _mib(v) -> str:
    return "n/a" if v is None else f"{v / 2**20:.1f} MiB"


def use_rows(use: Optional[Dict]) -> List[Tuple[str, str]]:
    """(label, value) rows of the USE panel, from the process metrics."""
    if not use:
        return []
    cpu = (f"{use['cpu_mean_pct']:.0f}% mean, {use['cpu_max_pct']:.0f}% max (of one core)"
           if use.get("cpu_mean_pct") is not None else "n/a")
    return [("CPU", cpu), ("memory (RSS)", f"{_mib(use.get('rss_start'))} → {_mib(use.get('rss_end'))} "
                                           f"(peak {_mib(use.get('rss_peak'))})"),
            ("threads (max)", str(use.get("threads_max", "n/a")))]


def _nines(pct: float) -> float:
    """x of a percentile on a "nines" axis: 0 → 0, 90 → 1, 99 → 2, 99.9 → 3."""
    return -math.log10(max(1e-4, 1.0 - pct / 100.0))


def latency_chart(load: Dict, width: int = 560, height: int = 200) -> Optional[Dict]:
    """Coordinates of the latency-by-percentile curve (and SLO lines) for the inline SVG."""
    pts = [(p, v) for p, v in (load.get("distribution") or []) if v is not None and 0 <= p < 100]
    if len(pts) < 2:
        return None
    slo_lines = [o for o in (load.get("slo") or {}).get("objectives", [])
                 if o.get("unit") == "ms" and o.get("metric") != "max"]
    v_max = max([v for _, v in pts] + [o["value"] for o in slo_lines]) or 1.0
    x_max = 4.0
    left, bottom, top, right = 50, height - 25, 12, width - 12

    def xy(p, v):
        return (left + (right - left) * min(_nines(p), x_max) / x_max, bottom - (bottom - top) * v / v_max)

    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(p, v) for p, v in pts))
    ticks = [(f"p{lab}", xy(p, 0)[0]) for lab, p in (("0", 0), ("90", 90), ("99", 99), ("99.9", 99.9), ("99.99", 99.99))]
    slos = [{"text": o["text"], "y": xy(0, o["value"])[1]} for o in slo_lines]
    return {"points": points, "ticks": ticks, "slos": slos, "width": width, "height": height, "left": left,
            "right": right, "top": top, "bottom": bottom, "v_max": v_max}


def steady_lines(load: Dict) -> List[str]:
    """Plain sentences: the loop model, the warm-up (or that steady state was not reached), the
    basis of the percentiles, the rate actually sent (open loop)."""
    out = []
    loop = "closed-loop" if load.get("closed_loop", True) else "open-loop"
    out.append(f"Load model: {loop}; latency {load.get('latency_model') or 'as the generator measures it'}.")
    wu = load.get("warmup") or {}
    if wu and not wu.get("reached", True):
        out.append(f"Too short to reach steady state ({wu.get('reason')}): the figures are the whole run's.")
    elif (load.get("warmup_s") or 0) > 0:
        out.append(f"Warm-up: the first {load['warmup_s']:.1f} s are excluded ({wu.get('mode')}: {wu.get('reason')}); "
                   f"the figures are the steady part's, the whole run's are in load.json whole_run.")
    if load.get("latency_basis") and load.get("latency_basis") not in ("whole run", "steady part"):
        out.append(f"Latency figures: {load['latency_basis']}.")
    if load.get("requested_rate"):
        sent = load.get("sent_rate")
        lag = (load.get("send_lag_ms") or {}).get("p99")
        verdict = "sustained" if load.get("rate_sustained", True) else "NOT sustained"
        out.append(f"Requested rate {load['requested_rate']:g}/s, sent {_num(sent, '{:,.1f}')}/s "
                   f"(send lag p99 {_num(lag, '{:.1f}')} ms): {verdict}.")
    return out


def drift_rows(load: Dict) -> List[Tuple[str, str, str, str]]:
    """(metric, slope, 95% interval, change) of each drifting metric."""
    return [(d["metric"], f"{d['slope']:+.4g} {d['unit']}", f"{d['ci95'][0]:+.3g} … {d['ci95'][1]:+.3g}",
             "n/a" if d.get("change_pct") is None else f"{d['change_pct']:+.0f}%") for d in load.get("drift") or []]


def prometheus_rows(load: Dict) -> List[Tuple[str, str, str]]:
    """(figure, load generator, Prometheus) rows when the bench read Prometheus too (--prometheus)."""
    prom = load.get("prometheus")
    if not isinstance(prom, dict) or "error" in prom:
        return []
    lat = load.get("latency_ms") or {}
    ratio = prom.get("error_ratio")
    rows = [("rate", _num(load.get("rate"), "{:,.1f}/s"), _num(prom.get("rate"), "{:,.1f}/s")),
            ("errors", _num(load.get("error_pct"), "{:.3g}%"), "n/a" if ratio is None else f"{100 * ratio:.3g}%")]
    rows += [(p, _ms(lat.get(p)), _ms(prom.get(f"{p}_ms"))) for p in ("p50", "p90", "p99")]
    return rows


def prometheus_lines(load: Dict, esc) -> List[str]:
    prom = load.get("prometheus")
    if not isinstance(prom, dict):
        return []
    if "error" in prom:
        return [f"> Prometheus: {esc(str(prom['error']))}", ""]
    out = [f"### RED from Prometheus ({esc(str(prom.get('selector')))})", "",
           "| | load generator | Prometheus |", "|---|---:|---:|"]
    out += [f"| {k} | {a} | {b} |" for k, a, b in prometheus_rows(load)] + [""]
    for d in prom.get("disagreements") or []:
        out.append(f"> disagreement: {esc(str(d))}")
    if prom.get("warning"):
        out.append(f"> warning: {esc(str(prom['warning']))}")
    return out + [""]


def markdown_section(run: RunDir, for_terminal: bool = False) -> str:
    """The ``## Load`` section of ``summary.md``."""
    from profkit.reports import plain_text

    esc = plain_text if for_terminal else markdown_escape
    load = _load(run)
    if load is None:
        return "## Load\n\n_load.json is unreadable_\n"
    lines = ["## Load (RED)", "",
             f"{esc(str(load.get('generator')))} against {esc(str(load.get('url')))} with "
             f"{load.get('connections')} connections for {_num(load.get('duration_s'), '{:.1f}')} s.", ""]
    lines += [esc(x) for x in steady_lines(load)] + [""]
    if load.get("requests") is None:
        lines += ["_the load generator reported no figures_", ""]
    else:
        lines += ["| | |", "|---|---:|"] + [f"| {k} | {esc(v)} |" for k, v in red_rows(load)] + [""]
    if load.get("series"):
        drifts = drift_rows(load)
        if drifts:
            lines += ["### Drift over the steady part", "", "| metric | slope | 95% interval | change |", "|---|---:|---|---:|"]
            lines += [f"| {esc(m)} | {esc(sl)} | {esc(ci)} | {ch} |" for m, sl, ci, ch in drifts] + [""]
        elif "drift" in load:
            lines += ["No drift over the steady part (throughput, errors, latency, RSS).", ""]
        lines += [f"Per-second series: {len(load['series'])} intervals in load.json (charts in report.html).", ""]
    lines += prometheus_lines(load, esc)
    slo = load.get("slo") or {}
    if slo.get("objectives"):
        lines += [f"### SLO: {slo.get('overall', '?').upper()}", "", "| objective | actual | verdict |", "|---|---:|---|"]
        for o in slo["objectives"]:
            actual = "n/a" if o.get("actual") is None else f"{o['actual']:.4g} {o['unit']}"
            lines.append(f"| {esc(o['text'])} | {actual} | {o['status']} |")
        lines.append("")
    use = use_rows(_use(run))
    if use:
        lines += ["### USE (process metrics)", "", "| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in use] + [""]
    hot = _hotspots(run)
    if hot:
        lines += ["### Top hotspots (self)", ""] + [f"{i}. {esc(k)} — {pct:.1f}%" for i, (k, pct) in enumerate(hot, 1)] + [""]
    ov = load.get("overhead")
    if ov and "median_loss_pct" in ov:
        lines += [f"Profiler overhead: median throughput loss {ov['median_loss_pct']:.1f}% ± {ov['spread_pct']:.1f} "
                  f"over {ov['pairs']} alternating pairs of {ov['seconds']:g} s.", ""]
    if load.get("closed_loop", True):
        lines.append(f"> note: {CLOSED_LOOP_NOTE}.")
    return "\n".join(lines) + "\n"


def html_section(run: RunDir, env) -> str:
    """The load section of ``report.html`` (``load.html.j2``, autoescaped)."""
    load = _load(run)
    if load is None:
        return ""
    from markupsafe import Markup

    from profkit.reports.series import series_svgs

    # the series charts escape their own texts (profkit.reports.series)
    charts = [Markup(svg) for svg in series_svgs(load)]
    return env.get_template("load.html.j2").render(
        load=load, red=red_rows(load) if load.get("requests") is not None else [], use=use_rows(_use(run)),
        chart=latency_chart(load), hotspots=_hotspots(run), note=CLOSED_LOOP_NOTE, fmt_ms=_ms,
        steady=steady_lines(load), drift=drift_rows(load), series_charts=charts,
        prom=prometheus_rows(load))
