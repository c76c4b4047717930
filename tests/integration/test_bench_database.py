# SPDX-License-Identifier: Apache-2.0
"""A write-heavy database benchmark profiled end to end: a real PostgreSQL cluster (started by
examples/database/pgcluster.py as an unprivileged cluster in a temp directory, loopback only),
real sysbench after a small prepare, perf on the backends, the postgres probe's series."""
import json
import os
import pathlib
import re
import shutil
import sys

import pytest

from support import Proc, free_port
from conftest import profkit

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "examples" / "database" / "pgcluster.py"


@pytest.fixture(scope="module")
def postgres():
    assert shutil.which("sysbench"), "sysbench is not installed (apt-get install sysbench)"
    assert any(os.path.exists(f"/usr/lib/postgresql/{v}/bin/initdb") for v in (15, 16, 17)) or shutil.which("initdb"), \
        "PostgreSQL is not installed (apt-get install postgresql)"
    with Proc([sys.executable, CLUSTER, "up"], grace=30) as proc:
        info = json.loads(proc.wait_line(r"^\{", 120).string)
        with open(info["pgpassfile"]) as fh:
            info["password"] = fh.read().strip().rsplit(":", 1)[1]
        yield info


def run_env(info, **extra):
    return dict(os.environ, PGPASSFILE=info["pgpassfile"], **extra)


@pytest.mark.slow
def test_sysbench_on_postgres_with_perf_on_the_backends_and_the_probe_series(postgres, tmp_path):
    run = tmp_path / "run"
    url = postgres["url"]
    # --name: this cluster's postmaster only (other PostgreSQL servers may run on the machine);
    # its backends are its children, found once sysbench has connected
    name = re.escape(os.path.join(postgres["dir"], "data"))
    p = profkit("bench", "--name", name, "--children", "-c", "perf", "--call-graph", "dwarf", "-r", 49,
                "--load", "sysbench", "--url", url, "--load-option", "prepare=yes", "--load-option", "tables=2",
                "--load-option", "table_size=5000", "--load-option", "script=oltp_write_only", "-C", 4, "-d", 30,
                "--probe", f"postgres={url}", "--warmup", "auto", "-o", run, "-q", env=run_env(postgres), timeout=240)
    assert p.returncode == 0, p.stderr
    load = json.loads((run / "load.json").read_text())
    series = load["series"]
    print("RED:", load["rate"], load["latency_ms"], "warm-up:", load["warmup"], "drift:", load["drift"])
    # tps and latency per second from sysbench's own report
    tps_rows = [r for r in series if r.get("tps")]
    assert len(tps_rows) >= 25 and all(r["p99"] > 0 and r["mean"] > 0 for r in tps_rows)
    assert load["generator"] == "sysbench" and load["requests"] > 0 and load["closed_loop"] is True
    # the bgwriter and WAL series from the probe, beside them
    assert sum(1 for r in series if "wal.wal_bytes" in r) >= 20 and any(r.get("wal.wal_bytes", 0) > 0 for r in series)
    assert any("bgwriter.buffers_alloc" in r for r in series) and any("checkpoints" in r for r in series)
    # perf on the backends: they were found after sysbench connected, and PostgreSQL's own functions are there
    rec = json.loads((run / "manifest.json").read_text())
    backends = [t for t in rec["targets"] if "sbtest" in " ".join(t.get("cmdline") or [])]
    assert len(backends) >= 4, [t.get("cmdline") for t in rec["targets"]]
    folded = (run / "profile.folded").read_text()
    ours = {"PostgresMain", "exec_execute_message", "XLogInsert", "XLogFlush", "ExecInsertIndexTuples", "btinsert",
            "heap_insert", "heap_update", "_bt_doinsert", "CommitTransactionCommand"}
    found = {f for f in ours if re.search(rf"(^|;){re.escape(f)}(;| )", folded, re.M)}
    assert len(found) >= 3, found
    # the password never reaches the run directory
    for path in run.rglob("*"):
        if path.is_file() and path.stat().st_size < 50 << 20:
            assert postgres["password"].encode() not in path.read_bytes(), path
    summary = (run / "summary.md").read_text()
    assert "coordinated omission" in summary and "sysbench" in summary
    assert 'aria-label="wal.wal_bytes"' in (run / "report.html").read_text()


@pytest.mark.slow
def test_database_load_errors(postgres, tmp_path):
    url, pm = postgres["url"], postgres["pid"]
    # a password on the command line: refused, redacted
    p = profkit("bench", "--pid", pm, "--load", "sysbench", "--url", url.replace("sbtest@", "sbtest:hunter2@"),
                "-o", tmp_path / "a")
    assert p.returncode == 2 and "PGPASSFILE" in p.stderr and "hunter2" not in p.stderr
    p = profkit("bench", "--pid", pm, "--load", "sysbench", "--url", url, "--probe", "postgres=host=127.0.0.1 password=x",
                "-o", tmp_path / "b")
    assert p.returncode == 2 and "password" in p.stderr
    # nothing listening: server unreachable, exit 1
    dead = re.sub(r":\d+/", f":{free_port()}/", url)
    p = profkit("bench", "--pid", pm, "--load", "sysbench", "--url", dead, "-o", tmp_path / "c", env=run_env(postgres))
    assert p.returncode == 1 and "unreachable" in p.stderr and "Traceback" not in p.stderr
    # the prepare fails (no such database): exit 1 with sysbench's own reason
    p = profkit("bench", "--pid", pm, "--load", "sysbench", "--url", url.rsplit("/", 1)[0] + "/nosuchdb",
                "--load-option", "prepare=yes", "-o", tmp_path / "d", env=run_env(postgres))
    assert p.returncode == 1 and "sysbench cleanup failed" in p.stderr and 'database "nosuchdb" does not exist' in p.stderr
    # the server refuses the password (no PGPASSFILE): exit 1, sysbench's FATAL line
    p = profkit("bench", "--pid", pm, "--children", "--load", "sysbench", "--url", url, "-d", 3, "-o", tmp_path / "e",
                env=dict(os.environ, PGPASSFILE=str(tmp_path / "none"), HOME=str(tmp_path)))
    assert p.returncode == 1 and "could not start its load" in p.stderr and "password" in p.stderr, p.stderr
    # a missing sysbench: how to install it
    p = profkit("bench", "--pid", pm, "--load", "sysbench", "--url", url, "-o", tmp_path / "f",
                env=dict(os.environ, PATH=str(tmp_path)))
    assert p.returncode == 1 and "hint: apt-get install sysbench" in p.stderr
