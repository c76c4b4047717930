# SPDX-License-Identifier: Apache-2.0
"""Time and threads, end to end: real py-spy, JFR and headless Chromium against real targets.

GIVEN a Python target that runs phase_a() for 3 s and then phase_b() for 3 s, WHEN it is
recorded (py-spy, wall mode: chrometrace), THEN the timed samples put A before B,
``profkit render --from/--until`` of each half (bare offsets and RFC 3339) puts that half's
function on top, and dragging across each half of the report's heatmap shows the same.
GIVEN two named Python threads and two named JVM threads with different hot functions, THEN
each function is under its own thread frame and the report's thread selector shows one
thread's graph; the waiting main thread is listed with the idle threads. GIVEN a collector
killed mid-run, THEN the profile carries a ``[collector error: …]`` frame weighted by the
time lost, the status is collector-error and the rest of the profile is kept.
"""
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from conftest import TARGETS, folded_shares, manifest, profkit, recording
from profkit.timeline import epoch_of_iso, read
from test_browser import driver  # noqa: F401  (the headless Chromium fixture)

pytestmark = [pytest.mark.slow]
PHASES = TARGETS / "pyphases.py"


def _rfc3339(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def _marks(stdout):
    return {line.split()[0]: float(line.split()[1]) for line in stdout.splitlines()
            if line.split()[:1] and line.split()[0] in ("A", "B", "end")}


@pytest.fixture(scope="module")
def phases_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("phases") / "run"
    p = profkit("run", "-m", "wall", "-d", 15, "-o", run, "--", sys.executable, PHASES, "phases", 3)
    assert p.returncode == 0, p.stderr
    return run, _marks(p.stdout)


def _top(folded):
    shares = folded_shares(folded)
    return max(shares, key=shares.get), shares


def test_timed_samples_put_a_before_b_and_render_cuts_each_half(phases_run, tmp_path):
    run, marks = phases_run
    m = manifest(run)
    assert m.profile.timeline["file"] == "timeline.bin" and m.profile.timeline["samples"] > 300
    tl = read(str(run / "timeline.bin"))
    leaf = {i: key[-1].split(" (")[0] for i, key in enumerate(tl.stacks)}
    times = {"phase_a": [], "phase_b": []}
    for t, s in zip(tl.t, tl.stack):
        if leaf[s] in times:
            times[leaf[s]].append(t / 1000)
    assert len(times["phase_a"]) > 150 and len(times["phase_b"]) > 150
    assert max(times["phase_a"]) <= min(times["phase_b"]) + 0.05, "phase_a samples after phase_b began"
    start = epoch_of_iso(m.start)
    # the first half by bare offsets from the run's start, the second by RFC 3339 times
    a0, b0, end = marks["A"] - start, marks["B"] - start, marks["end"] - start
    first = profkit("render", run, "--from", f"{a0 + 0.3:.2f}s", "--until", f"{b0 - 0.3:.2f}s")
    assert first.returncode == 0, first.stderr
    (out,) = [d for d in (run / "ranges").iterdir()]
    assert _top(out / "profile.folded")[0] == "phase_a"
    assert (out / "flamegraph.svg").exists() and "phase\\_a" in (out / "summary.md").read_text()
    second = profkit("render", run, "--from", _rfc3339(marks["B"] + 0.3), "--until", _rfc3339(marks["end"] - 0.3),
                     "-o", tmp_path / "second")
    assert second.returncode == 0, second.stderr
    top, shares = _top(tmp_path / "second" / "profile.folded")
    assert top == "phase_b" and shares.get("phase_a", 0) < 0.05, shares
    # the run's own files are never overwritten, and a range without samples is one clear error
    refused = profkit("render", run, "--from", "1s", "-o", run)
    assert refused.returncode == 2 and "never over a run's own files" in refused.stderr
    empty = profkit("render", run, "--from", f"{end + 30:.0f}s")
    assert empty.returncode == 1 and "no samples between" in empty.stderr and "Traceback" not in empty.stderr


def _drag(drv, since, until):
    """Drag across the heatmap cells of [since, until) seconds (cells of 50 ms, 20 a column)."""
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = drv.find_element("id", "pk-heatmap")
    cell = drv.execute_script("return profkitTimeline.cell")
    w, h = canvas.size["width"], canvas.size["height"]

    def offset(t):
        c = int(t / 0.05)
        x, y = (c // cell["rows"]) * cell["width"] + cell["width"] / 2, (c % cell["rows"]) * cell["height"] + cell["height"] / 2
        return int(x - w / 2), int(y - h / 2)

    (x0, y0), (x1, y1) = offset(since), offset(until - 0.05)
    ActionChains(drv).move_to_element_with_offset(canvas, x0, y0).click_and_hold() \
        .move_to_element_with_offset(canvas, x1, y1).release().perform()


def _top_in_page(drv):
    return drv.execute_script("var li = document.querySelector('#pk-top li'); return li && li.dataset.name")


@pytest.mark.browser
def test_selecting_each_half_in_the_browser_shows_its_function_on_top(phases_run, driver):  # noqa: F811
    run, marks = phases_run
    start = epoch_of_iso(manifest(run).start)
    driver.get((run / "report.html").as_uri())
    a0, b0, end = marks["A"] - start, marks["B"] - start, marks["end"] - start
    _drag(driver, a0 + 0.3, b0 - 0.3)
    assert _top_in_page(driver).startswith("phase_a")
    assert driver.find_element("id", "pk-range").text.startswith(f"{int((a0 + 0.3) / 0.05) * 0.05:.2f}")
    _drag(driver, b0 + 0.3, end - 0.3)
    assert _top_in_page(driver).startswith("phase_b")
    flame = [e.text for e in driver.find_elements("css selector", "#pk-flame .pk-frame")]
    assert any(t.startswith("phase_b") for t in flame) and not any(t.startswith("phase_a") for t in flame)
    driver.find_element("id", "pk-reset").click()
    chart = driver.execute_script("return Array.from(document.querySelectorAll('#pk-chart .pk-frame'))"
                                  ".map(e => [e.textContent, +e.dataset.start])")
    starts = {name.split(" (")[0]: t for name, t in chart if name.startswith("phase_")}
    assert starts["phase_a"] < starts["phase_b"], chart[:10]
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def _thread_of(folded, function):
    """The root (thread) frame of each stack through ``function``."""
    roots = set()
    for line in open(folded):
        frames = line.rsplit(" ", 1)[0].split(";")
        names = [re.sub(r"_\[\w+\]$", "", f.split(" (")[0]).split(".")[-1] for f in frames]
        if function in names:
            roots.add(frames[0])
    return roots


def _select_thread(drv, pattern):
    from selenium.webdriver.support.ui import Select

    sel = Select(drv.find_element("id", "pk-thread"))
    (option,) = [o for o in sel.options if pattern in o.text]
    sel.select_by_visible_text(option.text)
    return _top_in_page(drv)


def _flame_text(drv):
    return " ".join(e.text for e in drv.find_elements("css selector", "#pk-flame .pk-frame"))


@pytest.mark.browser
def test_python_threads_each_under_its_own_frame_and_the_selector_shows_one(tmp_path, driver):  # noqa: F811
    run = tmp_path / "run"
    p = profkit("run", "-m", "wall", "--threads", "-d", 15, "-o", run, "--", sys.executable, PHASES, "threads", 4)
    assert p.returncode == 0, p.stderr
    alpha, beta = _thread_of(run / "profile.folded", "alpha_work"), _thread_of(run / "profile.folded", "beta_work")
    assert len(alpha) == 1 and alpha.pop().endswith(": alpha-worker"), alpha
    assert len(beta) == 1 and beta.pop().endswith(": beta-worker"), beta
    driver.get((run / "report.html").as_uri())
    assert _select_thread(driver, "alpha-worker").startswith("alpha_work")
    assert _select_thread(driver, "beta-worker").startswith("beta_work")
    groups = driver.execute_script("return Array.from(document.querySelectorAll('#pk-thread optgroup option'))"
                                   ".map(o => o.textContent)")
    assert any(g.startswith("MainThread") for g in groups), groups  # waiting: grouped as idle, not dropped


@pytest.mark.browser
def test_jvm_threads_each_under_its_own_frame_and_the_selector_shows_one(tmp_path, start_process, driver):  # noqa: F811
    for tool in ("java", "javac", "jcmd", "jfr"):
        assert shutil.which(tool), f"{tool} is not installed: apt-get install openjdk-17-jdk-headless"
    classes = tmp_path / "classes"
    subprocess.run(["javac", "-d", str(classes), str(TARGETS / "ProfkitThreads.java")], check=True, timeout=120)
    jvm = start_process("java", "-Xmx128m", "-cp", str(classes), "ProfkitThreads", "0")
    jvm.wait_line(r"^ready$", 30)
    run = tmp_path / "run"
    p = profkit("attach", "--pid", jvm.pid, "-c", "jfr", "--threads", "-d", 4, "-o", run)
    assert p.returncode == 0, p.stderr
    alpha = _thread_of(run / "profile.folded", "alphaWork")
    beta = _thread_of(run / "profile.folded", "betaWork")
    assert len(alpha) == 1 and alpha.pop().startswith("[profkit-alpha tid="), alpha
    assert len(beta) == 1 and beta.pop().startswith("[profkit-beta tid="), beta
    assert manifest(run).profile.timeline["threads"] >= 2
    driver.get((run / "report.html").as_uri())
    _select_thread(driver, "profkit-alpha")
    assert "alphaWork" in _flame_text(driver) and "betaWork" not in _flame_text(driver)
    _select_thread(driver, "profkit-beta")
    assert "betaWork" in _flame_text(driver) and "alphaWork" not in _flame_text(driver)


def test_a_collector_killed_mid_run_becomes_an_error_frame_and_the_rest_is_kept(start_process, start_profkit, tmp_path):
    one = start_process(sys.executable, str(TARGETS / "pyhot.py"))
    two = start_process(sys.executable, str(TARGETS / "pyhot.py"))
    one.wait_ready()
    two.wait_ready()
    run = tmp_path / "run"
    proc = start_profkit("attach", "--pid", one.pid, "--pid", two.pid, "-d", 6, "-o", run)
    proc.wait_for(lambda: recording(run, 2), 30, "profkit recording for 2 s")
    spies = [c for c in psutil.Process(proc.pid).children(recursive=True)
             if c.name() == "py-spy" and str(two.pid) in c.cmdline()]
    assert len(spies) == 1, "py-spy of the second target not found"
    killed_at = time.monotonic()
    spies[0].send_signal(signal.SIGKILL)  # profkit's own child tool, never a target
    assert proc.wait(60) == 0, proc.err
    m = manifest(run)
    assert m.status == "collector-error"
    (entry,) = m.profilers
    assert entry.status == "partial" and entry.detail["lost"][0]["pid"] == two.pid, entry.detail
    lost = entry.detail["lost"][0]
    assert 4.0 <= lost["seconds"] <= 8.0 and lost["weight"] == round(lost["seconds"] * 100), lost
    rows = [line.rsplit(" ", 1) for line in open(run / "profile.folded")]
    errors = [(s, int(w)) for s, w in rows if "[collector error: no capture from py-spy for pid" in s]
    assert len(errors) == 1 and errors[0][0].split(";")[0].endswith(f"[{two.pid}]"), errors
    assert errors[0][1] == lost["weight"]
    kept = sum(int(w) for s, w in rows if s.split(";")[0].endswith(f"[{one.pid}]") and "hot_compute" in s)
    assert kept > 300, "the first target's samples were not kept"
    summary = (run / "summary.md").read_text()
    assert "collector-error" in summary and "samples lost" in summary
    assert time.monotonic() - killed_at < 30
    assert [p["status"] for p in json.loads((run / "manifest.json").read_text())["probes"] if p["id"] == "py-spy"] == ["partial"]
    assert os.path.exists(run / "report.html")


HOSTILE = ["</script><script>window.pwned=1</script>", '<img src=x onerror="window.pwned=2">',
           "]]><svg onload=window.pwned=3>", "&lt;b&gt; & 'quotes'"]


@pytest.mark.browser
def test_hostile_thread_and_frame_names_stay_text_in_the_time_view(tmp_path, driver):  # noqa: F811
    from profkit.model import Frame, Profile
    from profkit.outputs import render_run, write_profiles
    from profkit.timeline import Timeline
    from support import make_run

    run = make_run(tmp_path / "run", start="2026-12-01T10:00:00+00:00", rate=100.0)
    prof = Profile()
    prof.timeline = Timeline(epoch_of_iso(run.record.start))
    for i in range(400):
        name = HOSTILE[i % len(HOSTILE)]
        key = (prof.intern(Frame("main")), prof.intern(Frame(name)))
        prof.add_ids(key, 1)
        prof.timeline.append(i / 100, key, name)
    write_profiles(run, {"py-spy": prof}, ["py-spy"])
    run.finish("complete")
    render_run(run)
    driver.get(pathlib_uri(run.file("report.html")))
    assert driver.execute_script("return window.pwned === undefined")
    options = driver.execute_script("return Array.from(document.querySelectorAll('#pk-thread option')).map(o => o.textContent)")
    assert all(any(o.startswith(h + " (") for o in options) for h in HOSTILE), options
    top = driver.execute_script("return Array.from(document.querySelectorAll('#pk-top li')).map(l => l.dataset.name)")
    assert set(top) == set(HOSTILE)
    _drag(driver, 1.0, 2.0)
    assert driver.execute_script("return window.pwned === undefined")


def pathlib_uri(path):
    import pathlib

    return pathlib.Path(path).as_uri()
