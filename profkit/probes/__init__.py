# SPDX-License-Identifier: Apache-2.0
"""``--probe ID=ARG``: samplers of a service's own statistics, beside the profilers of a run.

Registered, like collectors and load generators, as entry points of the ``profkit.probes`` group
(``postgres = profkit.probes.postgres:PostgresProbe``); a plugin's class is called with ARG (a
DSN, a URL …) and returns a :class:`SamplerProbe`. A sampler is a probe of the run (kind
``metrics``): every ``interval`` seconds its ``sample()`` returns a flat dict of numbers, which
is appended to ``raw/probe-ID.jsonl`` as read and, as per-second figures (counters turned into
rates by :meth:`SamplerProbe.rates`), to :attr:`SamplerProbe.rows`; ``profkit bench`` puts the
rows into the series of ``load.json``. A sampler never raises from its thread: a failed sample
is counted and its first error becomes a warning of the run. Anything a sampler records passes
through :func:`profkit.secrets.redact`.
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Dict, List, Optional, Tuple

from profkit.engine.probe import Probe, RunContext
from profkit.errors import EnvironmentProblem, UsageError
from profkit.secrets import redact

__all__ = ["GROUP", "SamplerProbe", "available_ids", "make", "parse_spec"]

GROUP = "profkit.probes"


def parse_spec(spec: str) -> Tuple[str, str]:
    """``ID=ARG`` → (id, arg); a usage error otherwise (the spec is redacted in the message)."""
    pid, eq, arg = spec.partition("=")
    if not eq or not pid.strip() or not arg.strip():
        raise UsageError(f"--probe {redact(spec)!r}: expected ID=ARG, e.g. postgres=postgresql://user@127.0.0.1:5432/db")
    return pid.strip(), arg.strip()


def available_ids() -> List[str]:
    from profkit.plugins import entry_points_of

    return sorted(entry_points_of(GROUP))


def make(spec: str) -> "SamplerProbe":
    """The sampler of ``--probe ID=ARG``."""
    from profkit.plugins import entry_points_of

    pid, arg = parse_spec(spec)
    ep = entry_points_of(GROUP).get(pid)
    if ep is None:
        raise UsageError(f"unknown --probe {pid!r}; known: {', '.join(available_ids()) or 'none'}")
    try:
        cls = ep.load()
    except Exception as e:  # a broken plugin must not take profkit down
        raise EnvironmentProblem(f"probe {pid!r} ({ep.value}) failed to load: {type(e).__name__}: {e}") from None
    return cls(arg)


class SamplerProbe(Probe):
    """Base of ``--probe`` samplers; subclasses set ``id`` and implement ``open``/``sample``/``close``."""

    kind = "metrics"
    interval = 1.0
    #: keys of ``sample()`` that are cumulative counters (turned into per-second rates in ``rows``)
    counters: Tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.rows: List[dict] = []
        self.samples = 0
        self.failures = 0
        self.first_error: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._prev: Optional[Tuple[float, dict]] = None

    # -- for subclasses -----------------------------------------------------------------------
    def open(self, ctx: RunContext) -> str:
        """Connect (raise ProfkitError when that fails); returns the version of what is sampled."""
        raise NotImplementedError

    def sample(self) -> Dict[str, float]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection."""

    def describe(self) -> List[str]:
        """The 'command' of this probe for the run record (redacted)."""
        return [self.id]

    # -- the probe lifecycle --------------------------------------------------------------------
    def start(self, ctx: RunContext) -> None:
        entry = self.attach_record(ctx)
        entry.version = self.open(ctx)
        entry.set_commands([[redact(a) for a in self.describe()]])
        self._raw = os.path.join(ctx.run.raw_dir, f"probe-{self.id}.jsonl")
        entry.raw = [ctx.run.relative(self._raw)]
        self._t0 = ctx.t0
        ctx.results.setdefault("samplers", []).append(self)
        self._thread = threading.Thread(target=self._run, name=f"profkit-probe-{self.id}", daemon=True)
        self._thread.start()

    def rates(self, t: float, values: Dict[str, float]) -> dict:
        """The row of one sample: counters as per-second rates since the previous sample."""
        row: dict = {"t": round(t, 3)}
        prev = self._prev
        for k, v in values.items():
            if k in self.counters:
                if prev is not None and k in prev[1] and t > prev[0]:
                    row[k] = round(max(0.0, v - prev[1][k]) / (t - prev[0]), 3)
            else:
                row[k] = v
        self._prev = (t, values)
        return row

    def _run(self) -> None:
        with open(self._raw, "a", encoding="utf-8") as fh:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    values = self.sample()
                except Exception as e:  # noqa: BLE001 - a sampler thread never dies of a bad sample
                    self.failures += 1
                    self.first_error = self.first_error or redact(f"{type(e).__name__}: {e}")[:200]
                else:
                    t = time.monotonic() - self._t0
                    fh.write(json.dumps({"t": round(t, 3), **values}, sort_keys=True) + "\n")
                    fh.flush()
                    row = self.rates(t, values)
                    if len(row) > 1 and self.samples:
                        self.rows.append(row)
                    self.samples += 1
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def poll(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, reason: str) -> None:
        self._stop.set()

    def status(self) -> str:
        return f"{self.id} {self.samples} samples" if self.samples else ""

    def finish(self, ctx: RunContext) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.close()
        entry = self.attach_record(ctx)
        entry.detail.update({"samples": self.samples, "failures": self.failures})
        if self.failures:
            ctx.warn(f"{self.id}: {self.failures} of {self.samples + self.failures} samples failed "
                     f"(first: {self.first_error})")
