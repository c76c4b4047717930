# SPDX-License-Identifier: Apache-2.0
"""``comment.md`` for a pull request: two bench runs compared (``profkit compare``).

Sections, all plain GitHub Markdown (tables, no raw HTML): the verdict (SLO, regression gate),
RED deltas (rate, errors, p50, p99, p99.9), SLO verdicts of base and head, the top regressed and
improved functions with their self and total shares (keyed as in ``shared/CONTRACT.md``: name and
file without the line, via :func:`profkit.compare.compare_functions`), and where the SVGs are.
Frame names are untrusted: every one goes through :func:`profkit.compare.markdown_escape`, and
file paths in them are shortened (or removed with ``redact``, for public repositories).
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence

from profkit.attribution import NO_APP, AppDelta, Rules, rule_text
from profkit.compare import FunctionDelta, ProcessDelta, improved, regressed, regressions
from profkit.markdown import cap_comment, markdown_escape
from profkit.frames import Frame

__all__ = ["comment_markdown", "compare_runs", "red_deltas", "redact_token", "redacted", "shorten_key"]

_LIB = re.compile(r"^.*/(?:site-packages|dist-packages|lib/python\d+(?:\.\d+)?)/")


def _short_path(path: str) -> str:
    """``/home/ci/.venv/lib/python3.11/site-packages/flask/app.py`` → ``flask/app.py``;
    ``/srv/build/examples/checkout/services.py`` → ``…/checkout/services.py``."""
    m = _LIB.match(path)
    if m:
        return path[m.end():]
    parts = [p for p in path.split("/") if p]
    if len(parts) <= 2:
        return path
    return "…/" + "/".join(parts[-2:])


def shorten_key(key: str, redact: bool = False) -> str:
    """A function key for a comment: its file path shortened, or dropped when ``redact``."""
    f = Frame.from_token(key)
    if f.file is None or ("/" not in f.file and not redact):
        return key
    return f.name if redact else f"{f.name} ({_short_path(f.file)})"


def redact_token(token: str) -> str:
    """A folded frame token without its ``(file:line)`` part (kind annotation kept)."""
    f = Frame.from_token(token)
    return Frame(f.name, f.kind).token if f.file is not None else token


def _pct_change(b: Optional[float], h: Optional[float]) -> str:
    if b is None or h is None:
        return "n/a"
    if b == 0:
        return "±0%" if h == 0 else "new"
    return f"{100.0 * (h - b) / b:+.1f}%"


def _ms(v: Optional[float]) -> str:
    if v is None:
        return "n/a"
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.1f} ms"


def red_deltas(base: Optional[Dict], head: Optional[Dict]) -> List[Dict]:
    """Rows of the RED comparison: metric, base, head (formatted) and change."""
    base, head = base or {}, head or {}
    rows = [{"metric": "rate", "base": base.get("rate"), "head": head.get("rate"), "fmt": lambda v: f"{v:,.1f}/s",
             "change": _pct_change(base.get("rate"), head.get("rate"))}]
    be, he = base.get("error_pct"), head.get("error_pct")
    rows.append({"metric": "errors", "base": be, "head": he, "fmt": lambda v: f"{v:.3g}%",
                 "change": "n/a" if be is None or he is None else f"{he - be:+.3g} pts"})
    for k in ("p50", "p99", "p99.9"):
        b, h = (base.get("latency_ms") or {}).get(k), (head.get("latency_ms") or {}).get(k)
        rows.append({"metric": k, "base": b, "head": h, "fmt": _ms, "change": _pct_change(b, h)})
    for r in rows:
        fmt = r.pop("fmt")
        r["base"] = "n/a" if r["base"] is None else fmt(r["base"])
        r["head"] = "n/a" if r["head"] is None else fmt(r["head"])
    return rows


def comment_markdown(deltas: Sequence[FunctionDelta], *, base_label: str, head_label: str,
                     base_load: Optional[Dict], head_load: Optional[Dict], base_slo: Optional[Dict],
                     head_slo: Optional[Dict], threshold: Optional[float], files: Dict[str, str],
                     top: int = 10, redact: bool = False, unit: str = "samples",
                     processes: Sequence[ProcessDelta] = (), apps: Sequence[AppDelta] = (),
                     rules: Optional[Rules] = None, observed: Sequence[str] = ()) -> str:
    """The whole ``comment.md`` (``observed``: the Prometheus and trace-segment lines, after the
    function tables; profkit/reports/observed.py)."""
    esc = markdown_escape
    bad = regressions(deltas, threshold) if threshold is not None else []
    head_missed = bool(head_slo and head_slo.get("overall") == "missed")
    verdict = []
    if head_slo and head_slo.get("objectives"):
        verdict.append(f"SLO **{head_slo['overall'].upper()}**")
    if threshold is not None:
        verdict.append(f"regression gate ({threshold:g} pts) **{'FAILED' if bad else 'passed'}**")
    icon = "❌" if head_missed or bad else "✅"
    lines = [f"## {icon} profkit: {esc(base_label)} → {esc(head_label)}", ""]
    if verdict:
        lines += ["; ".join(verdict) + ".", ""]
    if base_load or head_load:
        lines += ["### Load (RED)", "", "| | base | head | change |", "|---|---:|---:|---:|"]
        lines += [f"| {r['metric']} | {r['base']} | {r['head']} | {r['change']} |" for r in red_deltas(base_load, head_load)]
        lines.append("")
        if any((load or {}).get("closed_loop") for load in (base_load, head_load)):
            lines += ["_Closed-loop load: tail latencies hide queueing delay; read them as lower bounds._", ""]
    if head_slo and head_slo.get("objectives"):
        base_by = {o["text"]: o for o in (base_slo or {}).get("objectives", [])}
        lines += ["### SLO", "", "| objective | base | head | verdict (head) |", "|---|---:|---:|---|"]
        for o in head_slo["objectives"]:
            b = base_by.get(o["text"], {})

            def fig(x):
                return "n/a" if x is None else f"{x:.4g} {o['unit']}"
            mark = {"met": "✅ met", "missed": "❌ missed"}.get(o["status"], "❔ " + o["status"])
            lines.append(f"| {esc(o['text'])} | {fig(b.get('actual'))} | {fig(o.get('actual'))} | {mark} |")
        lines.append("")
    # Ordered by total (inclusive) share, the measure of --fail-on-regression (CONTRACT.md);
    # process and thread frames are not functions (compare.regressed leaves them out).
    up, down = regressed(deltas, top), improved(deltas, top)

    def table(title: str, rows: Sequence[FunctionDelta]) -> None:
        lines.extend([f"### {title}", ""])
        if not rows:
            lines.extend(["_none_", ""])
            return
        lines.append("| function | self base → head | total base → head | Δ self | Δ total |")
        lines.append("|---|---:|---:|---:|---:|")
        for d in rows:
            flag = " ⚠️" if d in bad else ""
            lines.append(f"| {esc(shorten_key(d.key, redact))}{flag} | {d.before_self:.1f}% → {d.after_self:.1f}% | "
                         f"{d.before_total:.1f}% → {d.after_total:.1f}% | {d.delta_self:+.2f} | {d.delta_total:+.2f} |")
        lines.append("")

    lines += app_lines(apps, rules, top, redact)
    table("Top regressed functions", up)
    table("Top improved functions", down)
    lines += process_lines(processes, redact)
    lines += list(observed)
    lines += [f"Shares are percentages of each profile's total ({esc(unit)}); Δ in percentage points. Functions are "
              "keyed by name and file without the line number.", ""]
    if bad:
        lines += [f"**Regression gate failed:** {len(bad)} function(s) grew by more than {threshold:g} points of total "
                  f"share; worst {esc(shorten_key(bad[0].key, redact))} ({bad[0].delta_total:+.2f}).", ""]
    if files:
        lines += ["### Files", ""] + [f"- {esc(what)}: `{path.replace('`', '')}`" for what, path in files.items()] + [""]
    return cap_comment("\n".join(lines))


def app_lines(apps: Sequence[AppDelta], rules: Optional[Rules], top: int, redact: bool = False) -> List[str]:
    """``Application functions``: each sample at its deepest frame in the application's own
    code, base against head, the biggest growth first (the first table of the comparison)."""
    if not apps:
        return []
    esc = markdown_escape
    rows = [d for d in apps if d.key != NO_APP and (d.before or d.after)]
    up = [d for d in rows if d.delta > 0][:top]
    down = sorted((d for d in rows if d.delta < 0), key=lambda d: (d.delta, d.key))[:max(3, top // 3)]
    lines = ["### Application functions (base → head)", ""]
    if not up and not down:
        return lines + ["_no frame of the application's own code: name it with --app PATTERN_", ""]
    lines += ["| application function | base | head | Δ points |", "|---|---:|---:|---:|"]
    for d in up + down:
        lines.append(f"| {esc(shorten_key(d.key, redact))} | {d.before:.1f}% | {d.after:.1f}% | {d.delta:+.2f} |")
    lines += ["", f"_Attribution: {esc(rule_text(rules or Rules()))}._", ""]
    return lines


def app_summary(apps: Sequence[AppDelta], top: int, redact: bool) -> List[Dict]:
    """``compare.json``'s ``app_regressed``: the application functions whose attributed share grew most."""
    return [{"key": shorten_key(d.key, redact), "base": round(d.before, 3), "head": round(d.after, 3),
             "delta": round(d.delta, 3)} for d in apps if d.key != NO_APP and d.delta > 0][:top]


def process_lines(processes: Sequence[ProcessDelta], redact: bool = False) -> List[str]:
    """The per-process section of a multi-process comparison: each process (by name) of base
    against the same process of head, with the function that regressed most inside it."""
    if not processes:
        return []
    esc = markdown_escape
    lines = ["### Per process (base A against head A, by name)", "",
             "| process | share base → head | most regressed inside it | Δ total (of the process) |",
             "|---|---:|---|---:|"]
    for p in processes:
        if p.deltas is None:
            where = "head only" if p.before_share == 0 else "base only"
            lines.append(f"| {esc(p.name)} ({where}) | {p.before_share:.1f}% → {p.after_share:.1f}% | | |")
            continue
        worst = regressed(p.deltas, 1)
        cell, delta = ((esc(shorten_key(worst[0].key, redact)), f"{worst[0].delta_total:+.2f}") if worst else ("_none_", ""))
        lines.append(f"| {esc(p.name)} | {p.before_share:.1f}% → {p.after_share:.1f}% | {cell} | {delta} |")
    return lines + [""]


def process_summary(processes: Sequence[ProcessDelta], top: int, redact: bool) -> List[Dict]:
    """``compare.json``'s ``processes``: each process's shares and its own top regressed functions."""
    return [{"process": p.name, "base_share": round(p.before_share, 3), "head_share": round(p.after_share, 3),
             "top_regressed": None if p.deltas is None else
             [{"key": shorten_key(d.key, redact), "delta_total": round(d.delta_total, 3),
               "delta_self": round(d.delta_self, 3)} for d in regressed(p.deltas, top)]}
            for p in processes]


def redacted(profile):
    """A copy of ``profile`` whose frame names carry no file paths (``--redact-paths``).

    A keyed profile stays keyed: dropping the ``(file)`` adds no line number to key away."""
    from profkit.model import Profile

    out = Profile(profile.unit, profile.meta, keyed=profile.is_keyed)
    new = {fid: redact_token(fid) for fid in profile.frames}
    get = new.__getitem__
    for key, w in profile.items():
        out.add_tokens(list(map(get, key)), w)
    return out


def compare_runs(base_dir: str, head_dir: str, out_dir: str, *, threshold: Optional[float] = None,
                 slos: Sequence[str] = (), redact: bool = False, top: int = 10,
                 app: Sequence[str] = (), lib: Sequence[str] = ()) -> Dict:
    """Compare two run directories: write ``diff.svg`` and ``comment.md`` (and ``compare.json``)
    into ``out_dir``; returns ``{"files", "regressions", "head_slo", "base_slo", "deltas"}``.

    SLO texts default to those the head run was benched with. Raises nothing for a gate: the
    caller decides the exit code (4 for a missed SLO wins over 3 for a regression)."""
    import io
    import json
    import os

    from flamegraph import render_diff
    from flamegraph.options import FlameGraphOptions
    from profkit.attribution import compare_app_weights
    from profkit.compare import compare_functions, compare_processes
    from profkit.errors import UsageError
    from profkit.loadgen.bench import load_of
    from profkit.rundir import RunDir
    from profkit.slo import parse_objective, verdicts

    for text in slos:
        parse_objective(text)
    base, head = RunDir.open(base_dir), RunDir.open(head_dir)
    rules = _rules(base.record, head.record, app, lib)
    (bp, bw), (hp, hw) = _read_pair(base, head, rules)
    bl, hl = load_of(base), load_of(head)
    texts = list(slos) or [o["text"] for o in ((hl or {}).get("slo") or {}).get("objectives", [])]
    base_slo = verdicts(texts, bl) if bl is not None and texts else None
    head_slo = verdicts(texts, hl) if hl is not None and texts else None
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {out_dir}: {e.strerror or e}") from None
    if rules.type_leaf:  # JVM allocation and lock profiles: their leaves are types, not functions
        from profkit.attribution import without_type_leaf

        bp, hp = without_type_leaf(bp), without_type_leaf(hp)
    deltas = compare_functions(bp, hp)
    per_process = compare_processes(bp, hp)
    apps = compare_app_weights(bw, bp.total, hw, hp.total)
    bad = regressions(deltas, threshold) if threshold is not None else []
    files = {}
    svg_b, svg_h = (redacted(bp), redacted(hp)) if redact else (bp, hp)
    buf = io.StringIO()
    name_b, name_h = os.path.basename(os.path.normpath(base_dir)), os.path.basename(os.path.normpath(head_dir))
    render_diff(svg_b, svg_h, FlameGraphOptions(title=f"Differential flame graph: {name_b} → {name_h}",
                                                subtitle="head's shape; red = grew, blue = shrank (shares)"), buf)
    _write(os.path.join(out_dir, "diff.svg"), buf.getvalue())
    files["differential flame graph (head's shape; red grew, blue shrank)"] = os.path.join(out_dir, "diff.svg")
    for label, run in (("base flame graph", base), ("head flame graph", head)):
        if os.path.exists(run.file("flamegraph.svg")):
            files[label] = run.file("flamegraph.svg")
    from profkit.reports.observed import observed

    seen = observed(base, head, top)
    text = comment_markdown(deltas, base_label=name_b, head_label=name_h, base_load=bl, head_load=hl,
                            base_slo=base_slo, head_slo=head_slo, threshold=threshold, files=files, top=top,
                            redact=redact, unit=hp.unit, processes=per_process, apps=apps, rules=rules,
                            observed=seen["markdown"])
    _write(os.path.join(out_dir, "comment.md"), text)
    summary = {"base": base_dir, "head": head_dir, "threshold": threshold,
               "regressions": [{"key": shorten_key(d.key, redact), "delta_total": round(d.delta_total, 3)} for d in bad],
               "top_regressed": [{"key": shorten_key(d.key, redact), "delta_total": round(d.delta_total, 3),
                                  "delta_self": round(d.delta_self, 3)} for d in regressed(deltas, top)],
               "processes": process_summary(per_process, top, redact),
               "app_regressed": app_summary(apps, top, redact),
               "red": red_deltas(bl, hl), "base_slo": base_slo, "head_slo": head_slo,
               "observed": {"red": seen["red"], "segments": seen["segments"]}}
    _write(os.path.join(out_dir, "compare.json"), json.dumps(summary, indent=2, sort_keys=True) + "\n")
    files["comment"] = os.path.join(out_dir, "comment.md")
    return {"files": files, "regressions": bad, "head_slo": head_slo, "base_slo": base_slo, "deltas": deltas}


def _read_pair(base, head, rules: Rules):
    """Both runs' profiles keyed by function with their application functions' weights (side by
    side when they are big), checked comparable: ``((base, weights), (head, weights))``."""
    from profkit.attribution import app_weights
    from profkit.errors import InputError, UsageError
    from profkit.forked import large_inputs, side_by_side
    from profkit.outputs import load_run_profile

    def keyed_profile(run):
        # Functions are keyed by name and file without the line, as the profile is read; the
        # function table and the attribution are computed on the same side (both sides run at
        # once when they are big).
        prof = load_run_profile(run, keyed=True)
        if prof is None:
            return None, {}
        prof.function_stats()
        return prof, app_weights(prof, rules)

    big = large_inputs(base.file("profile.folded"), head.file("profile.folded"))
    (bp, bw), (hp, hw) = side_by_side(lambda: keyed_profile(base), lambda: keyed_profile(head), parallel=big)
    for run, prof in ((base, bp), (head, hp)):
        if prof is None:
            raise InputError(f"{run.path}: no profile.folded to compare")
    if bp.unit != hp.unit:
        raise UsageError(f"cannot compare a profile in {bp.unit} with one in {hp.unit}")
    if base.record.mode != head.record.mode:
        raise UsageError(f"the runs profiled different modes ({base.record.mode} vs {head.record.mode})",
                         hint="bench both with the same --mode")
    return (bp, bw), (hp, hw)


def _rules(base, head, app: Sequence[str], lib: Sequence[str]) -> Rules:
    """The attribution rules of a comparison: ``--app``/``--lib``, else the head run's, else the base's."""
    from profkit.attribution import parse_rules
    from profkit.reports.conclusions import rules_for

    if app or lib:
        given = parse_rules(app, lib)
        return rules_for(head, given.app, given.lib)
    return rules_for(head) if head.attribution else rules_for(base)


def _write(path: str, text: str) -> None:
    from profkit.atomic import atomic_write

    atomic_write(path, text)
