# SPDX-License-Identifier: Apache-2.0
"""``profkit agent`` against real Python targets, with the local store (-o, file=): targets found
by --name as they come and go, --keep rotation, the spool bound, a run directory per window
that render and compare read, and bad flags."""
import json
import os
import re
import signal
import stat
import sys
import time
import uuid

import pytest

from agentkit import agent_argv, events, index, py_target, pyspy_of, tools_of
from conftest import profkit
from support import assert_running, free_port

pytestmark = pytest.mark.slow


def test_name_picks_up_late_and_restarted_targets_keep_rotates(tmp_path, start_process):
    token = uuid.uuid4().hex[:10]
    out = tmp_path / "out"
    agent = start_process(*agent_argv("--name", f"pyversion.py v1 {token}", "--window", "2", "--duration", "14",
                                      "-o", out, "--keep", "3", "--label", "service=shop", "--export",
                                      f"file={tmp_path / 'store'}"))
    agent.wait_for(lambda: events(agent, "waiting"), 20, "the agent to say it waits for a target")
    first = start_process(*py_target("v1", token)).wait_ready()
    agent.wait_for(lambda: any(e["pid"] == str(first.pid) for e in events(agent, "window")), 20,
                   "a window of the target started after the agent")
    first.stop()
    second = start_process(*py_target("v1", token)).wait_ready()
    agent.wait_for(lambda: any(e["pid"] == str(second.pid) and e["samples"] > 0 for e in events(agent, "window")), 20,
                   "a window of the restarted target")
    assert agent.wait(40) == 0, agent.output()
    store = index(tmp_path / "store")
    pids = {e["labels"]["pid"] for e in store}
    assert {str(first.pid), str(second.pid)} <= pids
    assert {e["labels"]["service"] for e in store} == {"shop"}            # the same labels after a restart
    kept = index(out)
    assert len(kept) == 3 and len(os.listdir(out / "windows")) == 3       # --keep 3
    assert [e["seq"] for e in kept] == sorted(e["seq"] for e in kept)
    for e in kept:
        d = out / e["dir"]
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        # no raw/, SVG, HTML or timeline.bin by default (py-spy's own folded output: --timeline times it)
        assert sorted(os.listdir(d)) == ["manifest.json", "profile.folded"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "spool").stat().st_mode) == 0o700


def test_window_directories_are_ordinary_runs_for_render_and_compare(tmp_path, start_process):
    target = start_process(*py_target("v2")).wait_ready()
    out = tmp_path / "out"
    r = profkit("agent", "--pid", target.pid, "--window", "2", "--duration", "4", "-o", out, "--keep-raw", "--timeline",
                "-q")
    assert r.returncode == 0, r.stderr
    entries = index(out)
    assert len(entries) == 2 and all(e["samples"] > 50 for e in entries), entries
    a, b = (out / e["dir"] for e in entries)
    assert "py-spy-%d.json" % target.pid in os.listdir(a / "raw")      # --keep-raw; --timeline: speedscope
    tl = json.loads((a / "manifest.json").read_text())["profile"]["timeline"]
    assert tl["file"] == "timeline.bin" and tl["samples"] == entries[0]["samples"], tl
    r = profkit("render", a)
    assert r.returncode == 0 and (a / "flamegraph.svg").exists(), r.stderr
    r = profkit("compare", a, b, "-o", tmp_path / "cmp")
    assert r.returncode == 0 and (tmp_path / "cmp" / "comment.md").exists(), r.stderr
    pulled = tmp_path / "pulled"
    e0, e1 = entries
    r = profkit("pull", "--store", f"file={out}", "--query", f'{{service="{e0["labels"]["service"]}"}}', "--range",
                f"{e0['start']}..{e1['end']}", "-o", pulled)
    assert r.returncode == 0, r.stderr
    m = json.loads((pulled / "manifest.json").read_text())
    assert m["source"]["store"] == "file" and m["profile"]["samples"] == e0["samples"] + e1["samples"]
    assert_running(target.pid)


def test_spool_bound_counts_and_reports_drops_with_the_store_down(tmp_path, start_process):
    unused_port = free_port()
    target = start_process(*py_target("v1")).wait_ready()
    agent = start_process(*agent_argv("--pid", target.pid, "--window", "1", "--duration", "6", "--export",
                                      f"parca=http://127.0.0.1:{unused_port}", "--spool-dir", tmp_path / "spool",
                                      "--spool-size", "1k", "--flush-timeout", "1s"))
    assert agent.wait(40) == 0, agent.output()
    drops = events(agent, "dropped")
    assert drops and drops[-1]["dropped_total"] >= 1, agent.output()
    stopped = events(agent, "stopped")[-1]
    assert stopped["dropped"] == drops[-1]["dropped_total"] and stopped["windows"] >= 5
    assert sum(stopped["left_in_spool"].values()) >= 1                     # kept for the next run
    failures = [e for e in events(agent, "export") if e["result"] == "retry"]
    assert failures and "unreachable" in failures[0]["detail"]
    assert_running(target.pid)


def test_bad_flags_are_one_line_usage_errors(tmp_path):
    for args, words in ((["--pid", "1", "--export", "nosuch=http://x"], "no exporter 'nosuch'"),
                        (["--pid", "1", "-o", tmp_path, "--window", "fast"], "not a duration"),
                        (["--pid", "1", "-o", tmp_path, "--label", "bad-name=x"], "not a label name"),
                        (["--pid", "1"], "give -o DIR, --export"),
                        (["--cgroup", "no/such/cgroup", "-o", tmp_path], "no such cgroup")):
        r = profkit("agent", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_sigterm_ends_the_window_early_and_leaves_no_tool(tmp_path, start_process):
    target = start_process(*py_target("v1")).wait_ready()
    out = tmp_path / "out"
    agent = start_process(*agent_argv("--pid", target.pid, "--window", "60", "-o", out,
                                      "--export", f"file={tmp_path / 'store'}"))
    agent.wait_for(lambda: tools_of(agent.pid), 20, "py-spy to start")
    time.sleep(3)
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(30) == 0, agent.output()
    [entry] = index(out)
    assert entry["status"] == "interrupted" and entry["samples"] > 0 and entry["seconds"] < 20, entry
    assert pyspy_of(target.pid) == []
    assert [e["samples"] for e in index(tmp_path / "store")] == [entry["samples"]]    # exported too
    assert_running(target.pid)


def test_cgroup_takes_every_process_of_the_cgroup(tmp_path, start_process):
    base = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
    name = f"profkit-test-{uuid.uuid4().hex[:8]}"
    group = os.path.join(base, name)
    os.mkdir(group)       # profkit's tests run as root (tests/install-tools.sh)
    try:
        a = start_process(*py_target("v1")).wait_ready()
        b = start_process(*py_target("v2")).wait_ready()
        start_process(*py_target("v1")).wait_ready()                 # not in the cgroup
        for p in (a, b):
            with open(os.path.join(group, "cgroup.procs"), "w") as fh:
                fh.write(str(p.pid))
        r = profkit("agent", "--cgroup", name, "--window", "2", "--duration", "2", "-o", tmp_path / "out", "-q")
        assert r.returncode == 0, r.stderr
        assert {e["labels"]["pid"] for e in index(tmp_path / "out")} == {str(a.pid), str(b.pid)}
    finally:
        for p in open(os.path.join(group, "cgroup.procs")).read().split():
            with open(os.path.join(base, "cgroup.procs"), "w") as fh:
                fh.write(p)
        os.rmdir(group)


def test_jvm_windows_take_turns_and_find_the_hot_method(tmp_path, start_process):
    from agentkit import compile_jvm_target
    from conftest import folded_shares

    jvm = start_process(*compile_jvm_target(tmp_path / "classes"))
    jvm.wait_line(r"^ready$", 60)
    out = tmp_path / "out"
    r = profkit("agent", "--pid", jvm.pid, "--window", "4", "--duration", "8", "-o", out, "-q", timeout=180)
    assert r.returncode == 0, r.stderr
    entries = [e for e in index(out) if e["samples"] > 0]
    assert len(entries) == 2 and {e["labels"]["collector"] for e in entries} == {"async-profiler"}, index(out)
    assert entries[1]["start"] >= entries[0]["end"]           # one async-profiler session, cut per window
    shares = folded_shares(out / entries[0]["dir"] / "profile.folded")
    assert max(shares, key=shares.get).startswith("ProfkitHot.spin"), shares
    assert_running(jvm.pid)


def test_hostile_process_names_are_cleaned_capped_and_queried_back(tmp_path, start_process):
    target = start_process(*py_target("v1", "--name", 'q"{x}\\n\\x1b[2J')).wait_ready()
    out = tmp_path / "out"
    r = profkit("agent", "--pid", target.pid, "--window", "2", "--duration", "2", "-o", out, "--label",
                'version=v"' + "x" * 400, "--export", f"file={tmp_path / 'store'}", "--log-format", "json")
    assert r.returncode == 0, r.stderr
    [entry] = [e for e in index(tmp_path / "store")]
    labels = entry["labels"]
    assert labels["service"] == 'q"{x}  [2J'                         # newline and ESC as spaces, quotes kept
    assert len(labels["version"]) == 200 and labels["version"].endswith("…")
    assert "\x1b" not in r.stderr and all(json.loads(x) for x in r.stderr.splitlines())
    assert all(c.isalnum() or c in "._-" for c in os.listdir(out / "windows")[0])
    q = "{service=" + json.dumps(labels["service"]) + "}"
    r = profkit("pull", "--store", f"file={tmp_path / 'store'}", "--query", q, "--range",
                f"{entry['start']}..{entry['end']}", "-o", tmp_path / "pulled", "--no-render")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "pulled" / "manifest.json").read_text())["profile"]["samples"] == entry["samples"]


def test_compare_store_file_names_the_changed_function(tmp_path, start_process):
    store = tmp_path / "store"
    spans = []
    for version in ("v1", "v2"):                                    # the deploy: new code, same service
        t = start_process(*py_target(version)).wait_ready()
        r = profkit("agent", "--pid", t.pid, "--window", "3", "--duration", "3", "--label", "service=shop",
                    "--export", f"file={store}", "-q", timeout=120)
        assert r.returncode == 0, r.stderr
        t.stop()
        e = index(store)[-1]
        spans.append(f"{e['start']}..{e['end']}")
    r = profkit("compare", "--store", f"file={store}", "--query", '{service="shop"}', "--base", spans[0],
                "--head", spans[1], "-o", tmp_path / "cmp")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert result["top_regressed"][0]["key"].startswith("validate_order"), result["top_regressed"]
    r = profkit("pull", "--store", f"file={store}", "--query", '{service="nobody"}', "--range", spans[0], "-o",
                tmp_path / "none")
    assert r.returncode == 1 and "no cpu profile matching" in r.stderr and "hint:" in r.stderr


def test_threads_gives_each_window_a_frame_per_thread(tmp_path, start_process):
    """--threads reaches the collector: each window's profile has alpha_work under the
    alpha-worker thread frame and beta_work under beta-worker (py-spy's thread (TID): NAME)."""
    from conftest import TARGETS

    target = start_process(sys.executable, str(TARGETS / "pyphases.py"), "threads", "30").wait_ready()
    out = tmp_path / "out"
    r = profkit("agent", "--pid", target.pid, "--threads", "--window", "2", "--duration", "2", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    (entry,) = index(out)
    roots = {}
    for line in (out / entry["dir"] / "profile.folded").read_text().splitlines():
        frames = line.rsplit(" ", 1)[0].split(";")
        for fn in ("alpha_work", "beta_work"):
            if any(f.startswith(fn + " ") for f in frames):
                roots.setdefault(fn, set()).add(frames[0])
    assert roots.get("alpha_work") and all(f.startswith("thread (") and f.endswith(": alpha-worker")
                                           for f in roots["alpha_work"]), roots
    assert roots.get("beta_work") and all(f.endswith(": beta-worker") for f in roots["beta_work"]), roots
    # perf, kept attached across windows: perf script -F +pid, a comm-PID/TID root frame per thread
    out = tmp_path / "perf"
    r = profkit("agent", "--pid", target.pid, "-c", "perf", "--threads", "--window", "2", "--duration", "4", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    tids = set()
    for e in index(out):
        m = json.loads((out / e["dir"] / "manifest.json").read_text())
        assert m["probes"][0]["parse"] == {"all": True, "tid": True}, m["probes"]
        for line in (out / e["dir"] / "profile.folded").read_text().splitlines():
            root = line.split(";", 1)[0]
            assert re.fullmatch(rf".+-{target.pid}/\d+", root), root
            tids.add(root.rsplit("/", 1)[1])
    assert len(tids) >= 2, tids  # alpha-worker and beta-worker at least
    assert_running(target.pid)


def test_perf_stays_attached_across_windows_and_its_seams_lose_no_samples(tmp_path, start_process):
    from profkit.timeline import read

    target = start_process(*py_target("v1")).wait_ready()
    out = tmp_path / "out"
    r = profkit("agent", "--pid", target.pid, "-c", "perf", "--window", "3", "--duration", "12", "-o", out, "-q",
                timeout=120)
    assert r.returncode == 0, r.stderr
    entries = index(out)
    assert len(entries) >= 3 and all(e["samples"] > 0 and e["status"] == "complete" for e in entries), entries
    assert all(b["start"] == a["end"] for a, b in zip(entries, entries[1:]))   # cut to cut: no gap, no overlap
    # one perf for the whole run (it used to get SIGTERM when the window thread that started it
    # ended, and was started again, with a gap, every other window)
    perfs = {json.loads((out / e["dir"] / "manifest.json").read_text())["probes"][0]["detail"]["perf_pid"]
             for e in entries}
    said = (out / "spool" / "perf" / f"perf-{target.pid}.data.stderr").read_text()
    assert len(perfs) == 1 and said.count("Captured and wrote") == 1, (perfs, said)
    # the samples' own times: the last of a window and the first of the next are close (a restart took seconds)
    # (against the gaps inside the windows: on a loaded machine the target itself waits for a CPU)
    spans, inner = [], [0.0]
    for e in entries:
        tl = read(str(out / e["dir"] / "timeline.bin"))
        times = sorted(tl.start + tl.seconds(i) for i in range(len(tl)))
        spans.append((times[0], times[-1]))
        inner += [b - a for a, b in zip(times, times[1:])]
    seams = [b[0] - a[1] for a, b in zip(spans, spans[1:])]
    assert all(s < max(1.0, 2 * max(inner)) for s in seams), (seams, max(inner))
    assert_running(target.pid)
