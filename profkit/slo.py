# SPDX-License-Identifier: Apache-2.0
"""Service-level objectives: a tiny grammar, and verdicts against a run's load figures.

Grammar (one objective per ``--slo``)::

    METRIC OP VALUE[UNIT]
    METRIC  p50 | p90 | p99 | p99.9 | max     latency; UNIT us, ms (default) or s
            errors                           error rate; UNIT % (default) — 0.1 means 0.1 %
            rate                             requests per second; UNIT /s or rps (optional)
    OP      <  <=  >  >=

``p99<500ms``, ``errors<0.1%``, ``rate>=200``. Values are normalised to milliseconds, percent
and requests per second, the units of ``load.json``. A malformed expression is a usage error
(exit 2); a missed objective is :class:`SLOMissed` (exit 4, ``shared/CONTRACT.md``). An
objective whose figure the load generator did not report is ``unknown``, never silently met.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from profkit.errors import SLOMissed, UsageError

__all__ = ["LATENCY_METRICS", "Objective", "SLOMissed", "evaluate", "figure_of", "parse_objective", "verdicts"]

LATENCY_METRICS = ("p50", "p90", "p99", "p99.9", "max")
METRICS = LATENCY_METRICS + ("errors", "rate")
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_UNITS = {  # unit → factor to the load.json unit of the metric's family
    "latency": {"": 1.0, "ms": 1.0, "us": 0.001, "µs": 0.001, "s": 1000.0},
    "errors": {"": 1.0, "%": 1.0},
    "rate": {"": 1.0, "/s": 1.0, "rps": 1.0},
}
_EXPR = re.compile(r"^\s*(p50|p90|p99\.9|p99|max|errors|rate)\s*(<=|>=|<|>)\s*"
                   r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|us|µs|s|%|/s|rps)?\s*$")


@dataclass(frozen=True)
class Objective:
    """One parsed objective; ``value`` is in ms (latency), percent (errors) or requests/s (rate)."""

    text: str
    metric: str
    op: str
    value: float
    unit: str

    def holds(self, actual: float) -> bool:
        """Whether ``actual`` (in the objective's unit) meets it."""
        return _OPS[self.op](actual, self.value)


def _family(metric: str) -> str:
    return "latency" if metric in LATENCY_METRICS else metric


def parse_objective(text: str) -> Objective:
    """Parse ``METRIC OP VALUE[UNIT]``; a :class:`UsageError` (exit 2) says what is wrong."""
    m = _EXPR.match(text or "")
    if not m:
        raise UsageError(f"malformed SLO {text!r}: expected METRIC OP VALUE[UNIT], e.g. 'p99<500ms' or 'errors<0.1%'",
                         hint=f"METRIC is one of {' '.join(METRICS)}; OP one of < <= > >=")
    metric, op, value, unit = m.group(1), m.group(2), float(m.group(3)), m.group(4) or ""
    table = _UNITS[_family(metric)]
    if unit not in table:
        allowed = ", ".join(u for u in table if u) or "none"
        raise UsageError(f"malformed SLO {text!r}: unit {unit!r} does not fit {metric} (use {allowed})")
    canon = {"latency": "ms", "errors": "%", "rate": "/s"}[_family(metric)]
    return Objective(text.strip(), metric, op, value * table[unit], canon)


def figure_of(load: Dict, metric: str) -> Optional[float]:
    """The figure an objective is checked against, from a ``load.json`` dict (None if absent)."""
    if metric in LATENCY_METRICS:
        v = (load.get("latency_ms") or {}).get(metric)
    elif metric == "errors":
        v = load.get("error_pct")
    else:
        v = load.get("rate")
    return None if v is None else float(v)


def evaluate(objectives: Sequence[Objective], load: Dict) -> List[Dict]:
    """One verdict dict per objective: text, metric, op, value, unit, actual, status
    (``met`` / ``missed`` / ``unknown`` when the generator did not report the figure)."""
    out = []
    for o in objectives:
        actual = figure_of(load, o.metric)
        status = "unknown" if actual is None else ("met" if o.holds(actual) else "missed")
        out.append({"text": o.text, "metric": o.metric, "op": o.op, "value": o.value, "unit": o.unit,
                    "actual": actual, "status": status})
    return out


def verdicts(texts: Sequence[str], load: Dict) -> Dict:
    """``{"objectives": [...], "overall": met|missed|unknown|none}`` for ``--slo`` texts."""
    results = evaluate([parse_objective(t) for t in texts], load)
    statuses = {r["status"] for r in results}
    overall = ("none" if not results else "missed" if "missed" in statuses
               else "unknown" if "unknown" in statuses else "met")
    return {"objectives": results, "overall": overall}


def missed_message(slo: Dict) -> Optional[str]:
    """One line naming the missed objectives with their actual figures, or None when none missed."""
    bad = [r for r in slo.get("objectives", []) if r["status"] == "missed"]
    if not bad:
        return None
    parts = [f"{r['text']} (actual {r['actual']:.4g}{'' if r['unit'] == '/s' else ' '}{r['unit']})" for r in bad]
    return f"SLO missed: {', '.join(parts)}"
