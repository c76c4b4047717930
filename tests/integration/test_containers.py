# SPDX-License-Identifier: Apache-2.0
"""Profiling targets in containers made by ``unshare`` (tests/integration/namespaced.py: new PID
and mount namespaces, a pivoted root of bind mounts and a private tmpfs /tmp; no container
runtime): a JVM (async-profiler and JFR, spoken to over the HotSpot attach protocol, files
placed inside and read back), a Python process (py-spy, profkit heap with memray) and a native
program whose binary exists only inside the container (perf). Each time: the hot function is
found, nothing of profkit's is left inside, the target runs on, and ``profkit doctor --pid``
prints the namespace facts.
"""
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import TARGETS, folded_shares, manifest, profkit
from namespaced import nspid_of, start_in_container, start_jvm_in_container, start_python_in_container
from support import assert_running

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: what a JVM itself keeps in its /tmp: the attach socket, hsperfdata, JFR's repository (named by date)
JVM_OWN = ("hsperfdata_", ".java_pid", "20")


def frame(f):
    return f[:-4] if f[-4:-2] == "_[" and f.endswith("]") else f


def inclusive_share(path, function):
    rows = [line.rstrip("\n").rsplit(" ", 1) for line in open(path)]
    total = sum(float(n) for _, n in rows)
    assert total > 0, f"{path} is empty"
    return sum(float(n) for s, n in rows if function in (frame(f).split(" (")[0] for f in s.split(";"))) / total


def nothing_of_profkit_left(container, allowed=()):
    left = [n for n in container.tmp_entries() if not n.startswith(allowed)]
    assert not left, f"left inside the container's /tmp: {left}"
    assert not any(n.startswith((".attach_pid", "profkit")) for n in os.listdir(container.inside("/app")))


def doctor_facts(pid):
    p = profkit("doctor", "--no-trials", "--pid", pid, timeout=120)
    out = p.stdout
    assert f"pid {pid} namespaces: pid=other, mnt=other" in out, out
    assert "PID 1 inside its own" in out, out
    assert f"pid {pid} container: namespaces of its own" in out, out
    assert f"pid {pid} file system: readable through /proc/{pid}/root" in out, out
    return out


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    for tool in ("java", "javac"):
        assert shutil.which(tool), f"{tool} is not installed: apt-get install openjdk-17-jdk-headless"
    out = tmp_path_factory.mktemp("classes")
    subprocess.run(["javac", "-d", str(out), str(TARGETS / "ProfkitHot.java")], check=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def jvm(classes, tmp_path_factory):
    with start_jvm_in_container(classes, tmp_path_factory.mktemp("ctr") / "root", "ProfkitHot", "cpu") as j:
        yield j


@pytest.mark.parametrize("collector", ["async-profiler", "jfr"])
def test_jvm_in_a_container(jvm, collector, tmp_path):
    assert nspid_of(jvm.pid)[-1] == 1 and not os.path.exists(f"/proc/{jvm.pid}/root{classes_marker()}")
    run = tmp_path / "run"
    # JFR.start itself takes 5-8 s on a loaded 2-core machine (JFR's first start in a JVM, inside
    # or outside a container): its run is longer, so that the hot thread is sampled after that
    seconds = 10 if collector == "jfr" else 4
    p = profkit("attach", "--pid", jvm.pid, "-c", collector, "--duration", seconds, "-o", run, timeout=180)
    assert p.returncode == 0, p.stderr
    m = manifest(run)
    assert m.status == "complete", (m.status, m.warnings)
    # spoken to over the attach protocol, on the socket inside the container
    assert all(c[0] == f"attach:/proc/{jvm.pid}/root/tmp/.java_pid1" for c in m.profilers[0].commands)
    if collector == "async-profiler":
        # the library was copied inside and loaded by its path there (or is the one already loaded)
        assert "/tmp/profkit-async-profiler-" in m.profilers[0].commands[0][2]
    assert inclusive_share(run / "profile.folded", "ProfkitHot.spin") > 0.5
    nothing_of_profkit_left(jvm, JVM_OWN)
    assert_running(jvm.pid, what="the JVM")


def test_perf_on_a_jvm_in_a_container_names_jit_frames(jvm, tmp_path):
    # the JIT map the JVM writes inside (/tmp/perf-1.map) reaches perf script; both it and the
    # host copy (/tmp/perf-HOSTPID.map) are gone afterwards
    run = tmp_path / "run"
    p = profkit("attach", "--pid", jvm.pid, "-c", "perf", "--duration", 3, "-o", run)
    assert p.returncode == 0, p.stderr
    commands = manifest(run).profilers[0].commands
    assert [f"attach:/proc/{jvm.pid}/root/tmp/.java_pid1", "jcmd", "Compiler.perfmap"] in commands
    assert "ProfkitHot.spin" in (run / "profile.folded").read_text()
    assert not os.path.exists(f"/tmp/perf-{jvm.pid}.map")
    nothing_of_profkit_left(jvm, JVM_OWN)
    assert_running(jvm.pid, what="the JVM")


def test_jvm_heap_in_a_container(jvm, tmp_path):
    run = tmp_path / "run"
    p = profkit("heap", "--pid", jvm.pid, "--duration", 4, "--no-allocations", "-q", "-o", run, timeout=180)
    assert p.returncode == 0, p.stderr
    heap = json.loads((run / "heap.json").read_text())
    # flags and class histograms over the attach protocol, jstat through /proc/PID/root
    assert heap["limit"]["source"] == "jcmd VM.flags MaxHeapSize" and heap["limit"]["bytes"] == 128 << 20
    assert heap["histograms"]["live_bytes_start"] > 0 and heap["jvm_series"], heap.keys()
    jcmd = next(pr for pr in manifest(run).probes if pr.id == "jcmd")
    assert jcmd.commands[0] == [f"attach:/proc/{jvm.pid}/root/tmp/.java_pid1", "jcmd", "VM.flags"]
    nothing_of_profkit_left(jvm, JVM_OWN)
    assert_running(jvm.pid, what="the JVM")


def classes_marker():
    """A path of the host that the container must not see (the host's /root)."""
    return "/root/.cache"


def test_doctor_on_a_jvm_in_a_container(jvm):
    out = doctor_facts(jvm.pid)
    assert "attach: profkit speaks the HotSpot attach protocol itself over" in out, out
    assert "OK    async-profiler: its library is copied into the container's /tmp" in out, out


def test_python_in_a_container_py_spy(tmp_path):
    with start_python_in_container(TARGETS, tmp_path / "root", "pyhot.py") as py:
        run = tmp_path / "run"
        p = profkit("attach", "--pid", py.pid, "--duration", 3, "-o", run)
        assert p.returncode == 0, p.stderr
        assert manifest(run).profilers[0].id == "py-spy"
        assert inclusive_share(run / "profile.folded", "hot_compute") > 0.5
        out = doctor_facts(py.pid)
        assert "OK    py-spy:" in out and "OK    memray: memray is at profkit's path inside the container" in out, out
        nothing_of_profkit_left(py)
        assert_running(py.pid, what="the Python target")


def test_python_in_a_container_heap(tmp_path):
    with start_python_in_container(TARGETS, tmp_path / "root", "pygrow.py") as py:
        run = tmp_path / "run"
        p = profkit("heap", "--pid", py.pid, "--duration", 8, "--baseline", 2, "-q", "-o", run, timeout=180)
        assert p.returncode == 0, p.stderr
        heap = json.loads((run / "heap.json").read_text())
        assert heap.get("memray_series"), manifest(run).warnings
        assert heap["suspects"][0]["name"] == "grow" and heap["suspects"][0]["site"] == "/app/pygrow.py:9"
        assert (run / "raw" / f"memray-{py.pid}.bin").stat().st_size > 0
        nothing_of_profkit_left(py)
        assert_running(py.pid, what="the Python target")


def test_native_binary_only_inside_the_container(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc and shutil.which("perf"), "a C compiler and perf are needed (apt-get install gcc linux-perf)"
    app = tmp_path / "app"
    app.mkdir()
    exe = app / "hotloop"
    subprocess.run([cc, "-O2", "-g", "-fno-omit-frame-pointer", "-o", str(exe),
                    str(ROOT / "examples" / "native" / "hotloop.c")], check=True, timeout=120)
    with start_in_container(["/app/hotloop", "0"], tmp_path / "root", app=app) as native:
        exe.unlink()  # now the binary exists only on the container's own tmpfs root
        assert os.readlink(f"/proc/{native.pid}/exe") == "/app/hotloop"
        run = tmp_path / "run"
        p = profkit("attach", "--pid", native.pid, "--duration", 3, "-o", run)
        assert p.returncode == 0, p.stderr
        assert manifest(run).profilers[0].id == "perf"
        leaves = folded_shares(run / "profile.folded")
        named = sum(v for k, v in leaves.items() if k.split(".")[0] in ("mix", "checksum_block", "shell_sort",
                                                                          "sort_records"))
        assert named > 0.5, leaves
        doctor_facts(native.pid)
        nothing_of_profkit_left(native)
        assert_running(native.pid, what="the native target")


def test_a_read_only_tmp_in_the_container_is_one_clear_error(tmp_path):
    # GIVEN a Python process whose container has a read-only /tmp
    with start_python_in_container(TARGETS, tmp_path / "root", "pygrow.py", tmp_read_only=True) as py:
        p = profkit("attach", "--pid", py.pid, "--mode", "alloc", "--duration", 2, "-o", tmp_path / "run")
        # THEN memray (whose capture must be written inside) is refused before it attaches, saying how to fix it
        assert p.returncode == 1, p.stderr
        assert "Traceback" not in p.stderr
        assert "read-only" in p.stderr and "emptyDir" in p.stderr and "--tmpfs /tmp" in p.stderr, p.stderr
        out = doctor_facts(py.pid)
        assert "FAIL  memray: cannot work, its /tmp is read-only" in out, out
        assert_running(py.pid, what="the Python target")
