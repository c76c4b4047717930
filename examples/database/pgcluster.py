#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A throw-away PostgreSQL cluster for benchmarks: unprivileged, loopback only, in a temp directory.

    python3 pgcluster.py up [--port N] [--shared-buffers 32MB]

initdb refuses to run as root, so as root the cluster is made and run as the ``postgres`` user
(``runuser -u postgres``); as any other user, as that user. The server listens on 127.0.0.1 only
(its Unix socket in the temp directory, never /var/run), on a free port unless --port is given.
A role ``sbtest`` with a random password and a database ``sbtest`` are created; the password is
written to a ``pgpass`` file (mode 600) in the temp directory, never printed or put on a command
line. One JSON line on stdout says where everything is::

    {"pid": POSTMASTER, "port": N, "url": "postgresql://sbtest@127.0.0.1:N/sbtest",
     "pgpassfile": ".../pgpass", "dir": "...", "version": "15.x"}

then it waits; SIGTERM or SIGINT stops the server (pg_ctl stop -m fast) and removes the directory.
"""
import argparse
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

BINDIRS = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin")


def bindir():
    for d in BINDIRS:
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    sys.exit("pgcluster: PostgreSQL is not installed (apt-get install postgresql)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_owner(argv, owner, **kw):
    if os.geteuid() == 0:
        argv = ["runuser", "-u", owner, "--"] + argv
    return subprocess.run(argv, check=True, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["up"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--shared-buffers", default="32MB")
    args = ap.parse_args()
    owner = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    bins = bindir()
    top = tempfile.mkdtemp(prefix="profkit-pg-")
    if os.geteuid() == 0:
        shutil.chown(top, owner)
    data, sock = os.path.join(top, "data"), top
    password = secrets.token_urlsafe(18)
    pwfile = os.path.join(top, "pw")
    with open(os.open(pwfile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
        fh.write(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, owner)
    port = args.port or free_port()
    try:
        as_owner([f"{bins}/initdb", "-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                  f"--pwfile={pwfile}"], owner, stdout=subprocess.DEVNULL)
        opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c shared_buffers={args.shared_buffers} "
                "-c max_wal_size=256MB -c checkpoint_timeout=30s -c log_checkpoints=on")
        as_owner([f"{bins}/pg_ctl", "-D", data, "-l", os.path.join(top, "server.log"), "-o", opts, "-w", "start"],
                 owner, stdout=subprocess.DEVNULL)
        sql = (f"CREATE ROLE sbtest LOGIN PASSWORD '{password}'; CREATE DATABASE sbtest OWNER sbtest; "
               "GRANT pg_monitor TO sbtest;")
        as_owner([f"{bins}/psql", "-h", sock, "-p", str(port), "-U", "postgres", "-q", "-v", "ON_ERROR_STOP=1",
                  "-f", "-"], owner, input=sql.encode(), stdout=subprocess.DEVNULL)
        os.unlink(pwfile)
        passfile = os.path.join(top, "pgpass")
        with open(os.open(passfile, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
            fh.write(f"127.0.0.1:{port}:*:sbtest:{password}\n")
        with open(os.path.join(data, "postmaster.pid")) as fh:
            pid = int(fh.readline())
        out = subprocess.run([f"{bins}/postgres", "--version"], capture_output=True, text=True).stdout
        version = (re.search(r"\(PostgreSQL\) (\S+)", out) or re.search(r"(\S+)$", out.strip())).group(1)
        print(json.dumps({"pid": pid, "port": port, "url": f"postgresql://sbtest@127.0.0.1:{port}/sbtest",
                          "pgpassfile": passfile, "dir": top, "version": version}), flush=True)
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        done.wait()
    finally:
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            as_owner([f"{bins}/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], owner, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
