# SPDX-License-Identifier: Apache-2.0
"""``--probe postgres=DSN``: PostgreSQL's background work each second (psycopg 3).

Samples, on one connection of its own (``application_name=profkit-probe``), whichever of these
the server's version has: ``pg_stat_bgwriter`` (≤16: checkpoints, buffers written by
checkpoints, the background writer and backends; 17+: the background writer only),
``pg_stat_checkpointer`` (17+: checkpoint counters) and ``pg_stat_wal`` (14+: WAL records, full
page images, bytes, buffers full, writes, syncs), plus whether the checkpointer is writing now
(its ``wait_event`` in ``pg_stat_activity``). Counters become per-second rates in the series:
``bgwriter.buffers_checkpoint``, ``wal.wal_bytes``, ``checkpoints`` (timed + requested), …

The DSN (``postgresql://user@127.0.0.1:5432/db`` or ``host=… port=… user=… dbname=…``) carries
no password: libpq takes it from ``PGPASSWORD`` or the file ``PGPASSFILE`` names (or
``~/.pgpass``). A DSN with a password is refused (usage error); everything recorded about it
is redacted. Only loopback hosts are sampled, like all of bench's load.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Dict, List

from profkit.engine.probe import RunContext
from profkit.errors import EnvironmentProblem, UsageError
from profkit.probes import SamplerProbe
from profkit.secrets import redact

__all__ = ["PostgresProbe", "check_dsn"]

_VIEWS = ("pg_stat_bgwriter", "pg_stat_checkpointer", "pg_stat_wal")
_SKIP = {"stats_reset"}


def check_dsn(dsn: str) -> None:
    """Refuse a DSN with a password in it, or one for a host that is not loopback."""
    import urllib.parse

    from profkit.loadgen import loopback_only

    if re.search(r"(?i)\bpassword\s*=", dsn):
        raise UsageError("the PostgreSQL DSN has a password in it; put it in PGPASSWORD or the file PGPASSFILE names",
                         hint="e.g. echo '127.0.0.1:5432:db:user:secret' > ~/.pgpass && chmod 600 ~/.pgpass")
    if "://" in dsn:
        parts = urllib.parse.urlsplit(dsn)
        if parts.password:
            raise UsageError(f"the PostgreSQL DSN {redact(dsn)!r} has a password in it; put it in PGPASSWORD or "
                             "the file PGPASSFILE names")
        loopback_only(dsn, ("postgresql", "postgres"))
    else:
        host = re.search(r"\bhost\s*=\s*(\S+)", dsn)
        if host and not host.group(1).startswith("/"):
            loopback_only(f"postgresql://{host.group(1)}/", ("postgresql",))


class PostgresProbe(SamplerProbe):
    """PostgreSQL's bgwriter, checkpointer and WAL statistics each second."""

    id = "postgres"
    without = "no PostgreSQL background-work series"

    def __init__(self, dsn: str):
        super().__init__()
        check_dsn(dsn)
        self.dsn = dsn
        self.conn = None
        self.views: List[str] = []
        self.counters = ()

    def describe(self) -> List[str]:
        return ["psycopg", redact(self.dsn), "every 1 s: " + ", ".join(self.views or _VIEWS)]

    def open(self, ctx: RunContext) -> str:
        try:
            import psycopg
        except ImportError:
            raise EnvironmentProblem("--probe postgres needs psycopg 3", hint="pip install 'psycopg[binary]'") from None
        try:
            self.conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5,
                                        application_name="profkit-probe")
        except psycopg.Error as e:
            raise EnvironmentProblem(f"PostgreSQL at {redact(self.dsn)} refused the probe's connection: "
                                     f"{redact(' '.join(str(e).split()))[:200]}",
                                     hint="check the DSN, that the server runs, and PGPASSFILE/PGPASSWORD") from None
        with self.conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
            self.views = []
            for view in _VIEWS:
                cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"pg_catalog.{view}",))
                if cur.fetchone()[0]:
                    self.views.append(view)
        first = self.sample()
        self.counters = tuple(k for k in first if k != "checkpointer.writing")
        return version

    def sample(self) -> Dict[str, float]:
        out: Dict[str, float] = {}
        assert self.conn is not None
        with self.conn.cursor() as cur:
            for view in self.views:
                cur.execute(f"SELECT * FROM pg_catalog.{view}")  # noqa: S608 - a fixed catalog view name
                row = cur.fetchone()
                short = view.replace("pg_stat_", "")
                for col, val in zip((d.name for d in cur.description), row or ()):
                    # numeric columns (wal_bytes) arrive as Decimal
                    if col not in _SKIP and isinstance(val, (int, float, Decimal)) and not isinstance(val, bool):
                        out[f"{short}.{col}"] = float(val)
            cur.execute("SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
            ev = cur.fetchone()
        timed = out.get("bgwriter.checkpoints_timed", out.get("checkpointer.num_timed"))
        req = out.get("bgwriter.checkpoints_req", out.get("checkpointer.num_requested"))
        if timed is not None and req is not None:
            out["checkpoints"] = timed + req
        out["checkpointer.writing"] = 0.0 if ev is None or ev[0] in (None, "CheckpointerMain") else 1.0
        return out

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self.conn = None

