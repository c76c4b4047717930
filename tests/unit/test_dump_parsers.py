# SPDX-License-Identifier: Apache-2.0
"""profkit.dump's parsers on recorded tool output (tests/data/dump/README.md says how it was
made), the kernel-view rules, the text view, the JSON document and the package's layering."""
import ast
import json
import pathlib

import pytest

from profkit.dump import Deadlock, DeadlockLink, Frame, Local, Lock, Snapshot, Thread, choose_tool, render_text
from profkit.dump.attach import TaskInfo, futex_syscall
from profkit.dump.jvm import parse_thread_print
from profkit.dump.native import apply_tasks, parse_addr2line, parse_eu_stack, parse_gdb, resolve
from profkit.dump.python import parse_json, parse_text
from profkit.errors import CaptureFormatError, UsageError

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "dump"


def by_name(threads):
    return {t.name: t for t in threads}


def names(frames):
    return [f.name for f in frames]


# -- py-spy ------------------------------------------------------------------------------------
def test_pyspy_json_threads_names_frames_and_states():
    threads = by_name(parse_json((DATA / "py-spy-lockwait.json").read_text()))
    assert set(threads) == {"MainThread", "profkit-holder", "profkit-waiter"}
    waiter, holder = threads["profkit-waiter"], threads["profkit-holder"]
    assert waiter.frames[0].name == "wait_for_the_lock" and waiter.frames[0].line == 27
    assert waiter.frames[0].file.endswith("lockwait.py")
    assert "hold_the_lock" in names(holder.frames) and names(holder.frames)[0] == "Condition.wait"
    assert waiter.id == 16062 and waiter.state == "waiting" and waiter.detail == "idle"
    assert waiter.runtime_id.startswith("0x") and waiter.holds == []


def test_pyspy_json_native_frames_and_locals():
    threads = by_name(parse_json((DATA / "py-spy-lockwait-native-locals.json").read_text()))
    waiter = threads["profkit-waiter"]
    native = [f for f in waiter.frames if f.module]
    assert "PyThread_acquire_lock_timed" in names(native)
    assert all(f.file is None and f.line is None for f in native)
    run = next(f for f in waiter.frames if f.name == "Thread.run")
    assert run.locals and run.locals[0].name == "self" and run.locals[0].arg and run.locals[0].repr.startswith("<Thread")


@pytest.mark.parametrize("stem", ["py-spy-lockwait", "py-spy-lockwait-native-locals"])
def test_pyspy_text_reads_as_the_json(stem):
    from_json = by_name(parse_json((DATA / f"{stem}.json").read_text()))
    from_text = by_name(parse_text((DATA / f"{stem}.txt").read_text()))
    assert set(from_text) == set(from_json)
    for name, t in from_text.items():
        j = from_json[name]
        assert t.id == j.id and t.state == j.state
        assert names(t.frames) == names(j.frames)
        assert [f.line for f in t.frames] == [f.line for f in j.frames]
        assert [[(v.name, v.repr, v.arg) for v in f.locals] for f in t.frames] == \
            [[(v.name, v.repr, v.arg) for v in f.locals] for f in j.frames]


def test_pyspy_gil_owner_and_kernel_futex():
    raw = [{"thread_id": 1, "os_thread_id": 10, "thread_name": None, "active": True, "owns_gil": True,
            "frames": [{"name": "spin", "filename": "/a/b.py", "short_filename": "b.py", "line": 3}]},
           {"thread_id": 2, "os_thread_id": 11, "thread_name": "w", "active": False, "owns_gil": False, "frames": []}]
    tasks = {10: TaskInfo(10, "python3", "R"), 11: TaskInfo(11, "w", "S", "futex_do_wait", 0x1234)}
    running, idle = parse_json(json.dumps(raw), tasks)
    assert running.name == "python3" and running.state == "running" and running.holds == [Lock("GIL")]
    assert idle.waits_on == Lock("futex", "0x1234") and "futex_do_wait" in idle.detail


def test_pyspy_json_refuses_other_text():
    with pytest.raises(CaptureFormatError):
        parse_json("Error: Failed to find python version")


# -- jcmd Thread.print -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def jvm():
    return parse_thread_print((DATA / "jcmd-thread-print-deadlock.txt").read_text())


def test_jcmd_threads_states_and_ids(jvm):
    threads, _ = jvm
    t = by_name(threads)
    assert len(threads) == 23 and threads[0].name == "main"
    assert t["main"].runtime_id == "#1" and t["main"].id == 0x73a3 and t["main"].state == "waiting"
    assert t["profkit-left"].state == "blocked" and t["profkit-left"].detail == "BLOCKED (on object monitor)"
    assert t["VM Thread"].state == "running" and t["VM Thread"].frames == [] and t["VM Thread"].runtime_id == ""
    assert t["Reference Handler"].frames[0].note == "native method"
    first = t["profkit-left"].frames[0]
    assert (first.name, first.file, first.line) == ("ProfkitDeadlock.takeLeftThenRight", "ProfkitDeadlock.java", 33)
    join = t["main"].frames[1]
    assert (join.file, join.line, join.module) == ("Thread.java", 1313, "java.base@17.0.15")


def test_jcmd_locks_held_and_waited_on(jvm):
    t = by_name(jvm[0])
    left, right = t["profkit-left"], t["profkit-right"]
    assert left.holds == [Lock("monitor", "0x000000069ec1aec0", "ProfkitDeadlock$Left")]
    assert left.waits_on == Lock("monitor", "0x000000069ec1b6d8", "ProfkitDeadlock$Right")
    assert right.holds[0].id == left.waits_on.id
    # Object.wait(): the monitor is listed as "locked" but released while waiting
    assert t["main"].holds == [] and t["main"].waits_on.type == "java.lang.Thread"
    a, b = t["profkit-lock-a"], t["profkit-lock-b"]
    assert a.holds == [Lock("synchronizer", "0x000000069ec1bbd8", "java.util.concurrent.locks.ReentrantLock$NonfairSync")]
    assert a.waits_on.kind == "synchronizer" and a.waits_on.id == b.holds[0].id
    assert a.state == "blocked" and a.detail == "WAITING (parking)"  # parked on a lock another thread holds


def test_jcmd_deadlocks(jvm):
    threads, deadlocks = jvm
    assert len(threads) == 23  # the stacks repeated after the deadlock report are not threads again
    assert [d.threads for d in deadlocks] == [["profkit-left", "profkit-right"], ["profkit-lock-a", "profkit-lock-b"]]
    first = deadlocks[0].links[0]
    assert (first.thread, first.held_by) == ("profkit-left", "profkit-right")
    assert first.lock == Lock("monitor", "0x000000069ec1b6d8", "ProfkitDeadlock$Right")
    assert deadlocks[1].links[1].lock.kind == "synchronizer"


def test_jcmd_hostile_thread_names_and_no_dump():
    text = ('"evil" name\x1b[2J" #20 daemon prio=5 os_prio=0 cpu=0.1ms elapsed=1s tid=0x1 nid=123 runnable  [0x0]\n'
            "   java.lang.Thread.State: RUNNABLE\n\tat X.y(X.java:1)\n\n"
            "Found one Java-level deadlock:\n=============================\n"
            '"a\\"b":\n  waiting to lock monitor 0x1 (object 0x2, a L),\n  which is held by UNKNOWN_owner_addr=0x9\n')
    threads, deadlocks = parse_thread_print(text)
    assert threads[0].name == 'evil" name\x1b[2J' and threads[0].id == 123 and threads[0].runtime_id == "#20"
    assert deadlocks[0].links[0].held_by == "UNKNOWN_owner_addr=0x9"
    assert parse_thread_print("Unable to open socket file") == ([], [])


# -- eu-stack, eu-addr2line, gdb ---------------------------------------------------------------
def test_eu_stack_and_addr2line():
    parsed = parse_eu_stack((DATA / "eu-stack-hang.txt").read_text())
    assert [t.id for t, _ in parsed] == [5415, 5417]
    main, lookups = parsed[0]
    assert names(main.frames)[:3] == ["pause", "wait_forever", "main"]
    assert main.frames[4].name == "__libc_start_main"  # the symbol version (@@GLIBC_2.34) dropped
    assert main.frames[1].module == "/tmp/dx/hang2" and main.frames[1].address == 0x5594ab26729d
    assert lookups[:2] == [0x7f6aa6534df2, 0x5594ab26729c]  # callers: return address - 1
    args = (DATA / "eu-addr2line-hang.args").read_text().split()
    table = parse_addr2line((DATA / "eu-addr2line-hang.txt").read_text())
    assert sorted(table) == sorted(int(a, 16) for a in args)
    assert table[0x10] == [("??", None, None)]
    waiter = resolve(parsed, table)[1]
    assert names(waiter.frames)[:5] == ["futex_wait", "__GI___lll_lock_wait", "lll_mutex_lock_optimized",
                                        "__pthread_mutex_lock", "wait_for_mutex"]
    assert waiter.frames[0].note == "inlined" and waiter.frames[1].note == ""
    w = waiter.frames[4]
    assert w.file.endswith("tests/integration/targets/hang.c") and w.line == 30
    assert waiter.frames[0].file == "sysdeps/nptl/futex-internal.h"  # ./nptl/../sysdeps/… normalised


def test_eu_stack_frames_without_symbols():
    parsed = parse_eu_stack((DATA / "eu-stack-jvm-head.txt").read_text())
    frames = parsed[0][0].frames
    assert frames[5].name == hex(frames[5].address) and frames[5].module.endswith("/bin/java")
    jit = parsed[1][0].frames[6]
    assert jit.name.startswith("0x") and jit.module is None
    assert parsed[1][0].frames[11].name.startswith("JavaCalls::call_helper(JavaValue*")


def test_gdb():
    threads = by_name(parse_gdb((DATA / "gdb-hang.txt").read_text()))
    waiter, main = threads["profkit-waiter"], threads["hang2"]
    assert waiter.id == 5417 and main.id == 5415
    assert names(waiter.frames)[:5] == ["futex_wait", "__GI___lll_lock_wait", "lll_mutex_lock_optimized",
                                        "___pthread_mutex_lock", "wait_for_mutex"]
    assert (waiter.frames[4].line, waiter.frames[4].address) == (30, 0x5594ab26723f)
    assert names(main.frames) == ["__libc_pause", "wait_forever", "main"]
    assert parse_gdb("ptrace: Operation not permitted.\n") == []


def test_kernel_view_blocked_on_a_mutex_and_its_owner(monkeypatch):
    import profkit.dump.native as native

    parsed = resolve(parse_eu_stack((DATA / "eu-stack-hang.txt").read_text()), {})
    tasks = {5415: TaskInfo(5415, "hang2", "S", "__do_sys_pause"),
             5417: TaskInfo(5417, "profkit-waiter", "S", "futex_do_wait", 0x5594ab26a0a0)}
    monkeypatch.setattr(native, "_mutex_owner", lambda pid, addr: 5415)
    main, waiter = apply_tasks(parsed, tasks, pid=5415)
    assert waiter.name == "profkit-waiter" and waiter.state == "blocked"
    assert waiter.waits_on == Lock("mutex", "0x5594ab26a0a0") and main.holds == [Lock("mutex", "0x5594ab26a0a0")]
    assert main.state == "waiting" and main.detail == "S in __do_sys_pause"


def test_futex_syscall():
    assert futex_syscall("202 0x55bf65d84060 0x80 0x2 0x0 0x0 0x0 0x7f 0x7f", "x86_64") == 0x55bf65d84060
    assert futex_syscall("34 0x0 0x0", "x86_64") is None
    assert futex_syscall("running", "x86_64") is None and futex_syscall("98 0x10", "aarch64") == 0x10
    assert futex_syscall("202 0x10", "mips") is None


# -- the snapshot: text view, JSON, tools ------------------------------------------------------
def hostile_snapshot():
    evil = "\x1b]0;owned\x07\u202e"
    a = Thread(f"a{evil}", 1, "blocked", "BLOCKED", [Frame(f"f{evil}", f"x{evil}.py", 3,
                                                           locals=[Local("v", f"'{evil}'", True)])],
               holds=[Lock("monitor", "0x1", f"L{evil}")], waits_on=Lock("monitor", "0x2", "M"))
    b = Thread("b", 2, "blocked", "", [Frame("g")], holds=[Lock("monitor", "0x2", "M")],
               waits_on=Lock("monitor", "0x1", f"L{evil}"))
    dl = Deadlock([DeadlockLink(a.name, a.waits_on, "b"), DeadlockLink("b", b.waits_on, a.name)])
    return Snapshot(7, "jvm", "jcmd", ["jcmd", "7", "Thread.print", "-l"], "2026-12-01T00:00:00.000Z", [a, b], [dl],
                    name=f"p{evil}")


def test_text_view_escapes_names_and_puts_deadlocks_first():
    text = render_text(hostile_snapshot())
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b]0;owned\\x07\\u202e" in text
    assert text.index("DEADLOCK") < text.index("Thread 1 ")
    assert 'waits on <0x2> (a M), held by "b" (thread 2)' in text
    assert "IN DEADLOCK" in text and "arg v = " in text


def test_json_document():
    snap = hostile_snapshot()
    snap.threads[1].name = "b\udcff"  # an undecodable byte kept by surrogateescape
    doc = snap.to_json()
    json.dumps(doc).encode("utf-8")
    assert set(doc) >= {"pid", "runtime", "tool", "command", "time", "threads", "deadlocks"}
    t = doc["threads"][0]
    assert set(t) >= {"name", "id", "state", "frames", "holds", "waits_on"}
    assert t["frames"][0]["file"].startswith("x") and t["frames"][0]["line"] == 3
    assert doc["threads"][1]["name"] == "b\ufffd"
    assert doc["deadlocks"][0]["threads"][1] == "b" and doc["deadlocks"][0]["cycle"][0]["held_by"] == "b"


def test_choose_tool():
    assert choose_tool("python", None) == "py-spy" and choose_tool("jvm", None) == "jcmd"
    assert choose_tool("native", None) is None and choose_tool("jvm", "gdb") == "gdb"
    with pytest.raises(UsageError):
        choose_tool("native", "py-spy")


def test_layering():
    """profkit.dump is a library: it never imports the CLI or the recording engine, and the guard
    (run as a script by path) imports the standard library only."""
    for path in sorted((ROOT / "profkit" / "dump").glob("*.py")):
        tree = ast.parse(path.read_text())
        mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        mods |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(m.startswith(("profkit.cli", "profkit.engine")) for m in mods), path.name
        if path.name == "guard.py":
            assert not any(m.split(".")[0] in ("profkit", "collectors", "flamegraph", "click") for m in mods)
        assert len(path.read_text().splitlines()) <= 500, path.name


def test_threads_with_the_same_stack_print_once():
    pool = [Thread(f"worker-{i}", 100 + i, "waiting", "idle", [Frame("get", "queue.py", 171), Frame("run")])
            for i in range(20)]
    busy = Thread("worker-busy", 200, "running", "active", [Frame("work", "app.py", 9)])
    snap = Snapshot(1, "python", "py-spy", [], "", [pool[0], busy] + pool[1:])
    text = render_text(snap)
    assert text.count("get (queue.py:171)") == 1 and "work (app.py:9)" in text
    assert "and 19 more threads with this same stack: 101, 102," in text and ", …" in text
    assert text.index('"worker-0"') < text.index('"worker-busy"')
    assert render_text(snap, group=False).count("get (queue.py:171)") == 20
