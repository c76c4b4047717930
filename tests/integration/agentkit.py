# SPDX-License-Identifier: Apache-2.0
"""What the agent tests share: a real Parca (v0.28.0, built by .ci/tools) on loopback with its
storage in a temporary directory, and readers of the agent's JSON log and windows index."""
import json
import os
import pathlib
import sys
import time
import urllib.request

from support import Proc, built_tool, free_port, processes, state_of, wait_until

PARCA_VERSION = "0.28.0"
TARGETS = pathlib.Path(__file__).resolve().parent / "targets"
NS_PER_SAMPLE = 10_000_000  # 100 Hz


def parca_binary():
    path = built_tool("parca", PARCA_VERSION)
    assert path, (f"parca {PARCA_VERSION} is not built: run `bash .ci/tools` (tests/install-tools.sh does), "
                  f"which builds it into ~/.cache/profkit/bin/parca-{PARCA_VERSION}")
    return path


def start_parca(tmp, port=None):
    """A Parca on 127.0.0.1:PORT: in-memory profile storage, debuginfo in ``tmp``, nothing outside."""
    tmp = pathlib.Path(tmp)
    (tmp / "objects").mkdir(parents=True, exist_ok=True)
    config = tmp / "parca.yaml"
    config.write_text(f'object_storage:\n  bucket:\n    type: "FILESYSTEM"\n    config:\n      directory: "{tmp / "objects"}"\n')
    port = port or free_port()
    p = Proc([parca_binary(), f"--config-path={config}", f"--http-address=127.0.0.1:{port}",
              "--debuginfod-upstream-servers=", "--profile-share-server=127.0.0.1:1",
              f"--debuginfo-cache-dir={tmp / 'cache'}", f"--storage-path={tmp / 'data'}", "--log-level=warn"],
             cwd=tmp)
    p.url = f"http://127.0.0.1:{port}"
    p.port = port
    p.wait_for(lambda: _answers(p.url + "/metrics"), 60, "Parca to listen")
    return p


def _answers(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def parca_types(url):
    with urllib.request.urlopen(url + "/api/profiles/types", timeout=10) as r:
        return json.loads(r.read())


def events(proc, kind=None):
    """The agent's JSON log lines (``--log-format json`` on stderr)."""
    out = []
    for line in proc.lines("stderr"):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict) and (kind is None or e.get("event") == kind):
            out.append(e)
    return out


def index(out_dir):
    path = pathlib.Path(out_dir) / "windows.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def agent_argv(*args):
    return [sys.executable, "-m", "profkit", "agent", "--log-format", "json", *map(str, args)]


def py_target(*args):
    return [sys.executable, str(TARGETS / "pyversion.py"), *args]


def tools_of(pid):
    """The processes whose parent is ``pid`` (the agent's py-spy, perf, …)."""
    return [child for child, fields in processes() if int(fields[1]) == pid]


def alive(pid):
    return state_of(pid) not in (None, "Z")


def wait_gone(pids, timeout=10):
    wait_until(lambda: not any(alive(p) for p in pids), timeout, f"processes {pids} to end")


def now():
    return time.time()


def pyspy_of(pid):
    """PIDs of py-spy processes recording ``pid`` (there must be none once the agent ended)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    argv = fh.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"py-spy") and str(pid).encode() in argv and alive(int(entry)):
                found.append(int(entry))
    return found


def compile_jvm_target(out):
    """ProfkitHot compiled into ``out`` (a missing JDK fails: it is not a reason to skip)."""
    import shutil
    import subprocess

    for tool in ("java", "javac", "jcmd"):
        assert shutil.which(tool), f"{tool} is not installed: apt-get install openjdk-17-jdk-headless"
    subprocess.run(["javac", "-d", str(out), str(TARGETS / "ProfkitHot.java")], check=True, timeout=300)
    return ["java", "-Xmx128m", "-cp", str(out), "ProfkitHot", "cpu"]
