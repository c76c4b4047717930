# SPDX-License-Identifier: Apache-2.0
"""py-spy cpu mode's timed samples (collectors/pyspy_placed.py): speedscope samples placed in
time by each thread's on-CPU curve; counts and per-thread order are py-spy's own."""
import json
import threading
import time

from collectors.pyspy import PySpyOptions, parse
from collectors.pyspy_placed import RuntimePoller, _place, read_runtime
from profkit.inputs import Source

T0 = 1_800_000_000.0


def _folded(prof):
    import io

    from profkit.folded import write_folded

    buf = io.StringIO()
    write_folded(prof, buf)
    return buf.getvalue().splitlines()


def _capture(tmp_path, samples_of, frames):
    doc = {"$schema": "https://www.speedscope.app/file-format-schema.json", "exporter": "py-spy@0.4.3",
           "shared": {"frames": frames},
           "profiles": [{"type": "sampled", "name": name, "unit": "seconds", "startValue": 0,
                         "endValue": len(s) / 100, "samples": s, "weights": [0.01] * len(s)}
                        for name, s in samples_of.items()]}
    path = tmp_path / "py-spy-4242.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_thread_busy_then_idle_then_busy_has_its_samples_in_its_busy_stretches(tmp_path):
    frames = [{"name": "main", "file": "/app/x.py", "line": 1}, {"name": "phase_a", "file": "/app/x.py", "line": 5},
              {"name": "phase_b", "file": "/app/x.py", "line": 9}]
    # 100 samples of phase_a then 100 of phase_b, on a thread busy 0-1 s, idle 1-3 s, busy 3-4 s
    path = _capture(tmp_path, {'Thread 77 "worker"': [[0, 1]] * 100 + [[0, 2]] * 100}, frames)
    (tmp_path / "py-spy-4242.runtime").write_text(
        "# profkit runtime v1: epoch-seconds tid on-cpu-ns\n"
        f"{T0} 77 0\n{T0 + 1} 77 1000000000\n{T0 + 3} 77 1000000000\n{T0 + 4} 77 2000000000\n")
    prof = parse(Source(str(path)), PySpyOptions(format="speedscope", placed=True, start=T0))
    assert prof.total == 200 and prof.unit == "samples"
    tl = prof.timeline
    assert len(tl) == 200 and tl.threads == ["worker [77]"]
    leaf = {i: key[-1] for i, key in enumerate(tl.stacks)}
    a = [t / 1000 for t, s in zip(tl.t, tl.stack) if leaf[s].startswith("phase_a")]
    b = [t / 1000 for t, s in zip(tl.t, tl.stack) if leaf[s].startswith("phase_b")]
    assert len(a) == len(b) == 100 and max(a) < 1.0 and 3.0 <= min(b) and max(b) < 4.0
    assert "main (x.py:1);phase_a (x.py:5) 100" in _folded(prof)


def test_counts_are_the_capture_s_own_and_a_thread_without_a_curve_is_spread_and_said(tmp_path):
    frames = [{"name": "thread (88): idle", "file": "", "line": 0}, {"name": "work", "file": "/app/y.py", "line": 3}]
    path = _capture(tmp_path, {'Thread 88 "idle"': [[0, 1]] * 7 + [[0]] * 3}, frames)
    (tmp_path / "py-spy-4242.runtime").write_text(f"{T0} 99 0\n{T0 + 2} 99 5\n")
    diag_src = Source(str(path))
    prof = parse(diag_src, PySpyOptions(format="speedscope", placed=True, start=T0))
    assert prof.total == 10 and len(prof.timeline) == 10
    assert any("spread evenly" in m for m in diag_src.diag.messages())
    assert sorted(_folded(prof)) == ["thread (88): idle;[no Python frame] 3", "thread (88): idle;work (y.py:3) 7"]
    assert all(0 <= t <= 2000 for t in prof.timeline.t)


def test_place_spreads_evenly_without_a_rising_curve():
    assert list(_place(4, None, 10.0, 14.0)) == [10.5, 11.5, 12.5, 13.5]


def test_the_poller_follows_busy_threads_that_start_and_end_while_it_runs(tmp_path):
    """The poller keeps each thread's descriptor open (pread), lists the threads every few polls
    (a thread started later gets a curve too) and drops a thread that ended."""
    import os

    stop = threading.Event()

    import hashlib

    block = b"x" * (1 << 20)

    def spin(seconds=None):  # on a CPU without holding the GIL (hashlib releases it), as a real target's threads
        end = time.monotonic() + seconds if seconds else None
        while not stop.is_set() and (end is None or time.monotonic() < end):
            hashlib.sha256(block).digest()

    busy = threading.Thread(target=spin)
    busy.start()
    short = threading.Thread(target=spin, args=(0.3,))
    short.start()
    path = str(tmp_path / "self.runtime")
    poller = RuntimePoller(os.getpid(), path, interval=0.01).start()
    try:
        short.join()
        late = threading.Thread(target=spin)  # after the poller's first listing
        late.start()
        time.sleep(1.0)
    finally:
        poller.stop()
        stop.set()
        busy.join()
        late.join()
    curves, _ = read_runtime(path)
    for t in (busy, late):
        ts, cs = curves[t.native_id]
        assert len(ts) >= 3 and cs[-1] - cs[0] > 0.005 and list(cs) == sorted(cs) and list(ts) == sorted(ts), t.name
    # the short thread (which may have run mostly before the poller got the GIL) has a curve
    # that stays flat once it ended: its last point is the recording's end
    ts, cs = curves[short.native_id]
    assert len(ts) >= 2 and cs[-1] == cs[-2] and ts[-1] - ts[-2] > 0.5, (list(ts), list(cs))


def _place_one_by_one(n, curve, since, until):
    """The placement defined sample by sample (where the curve reaches (k+½)/n of its rise), as a
    reference for :func:`_place`, which computes a segment's samples at once."""
    ts, cs = curve
    c0 = _at_ref(ts, cs, since)
    rise = _at_ref(ts, cs, until) - c0
    if rise <= 0:
        c0, rise = cs[0], cs[-1] - cs[0]
    out, j = [], 1
    for k in range(n):
        want = c0 + (k + 0.5) / n * rise
        while j < len(cs) - 1 and cs[j] < want:
            j += 1
        lo, hi = cs[j - 1], cs[j]
        out.append(ts[j - 1] + ((want - lo) / (hi - lo) if hi > lo else 0.0) * (ts[j] - ts[j - 1]))
    return out


def _at_ref(ts, cs, t):
    if t <= ts[0]:
        return cs[0]
    if t >= ts[-1]:
        return cs[-1]
    j = next(i for i in range(1, len(ts)) if ts[i] >= t)
    return cs[j - 1] + ((t - ts[j - 1]) / (ts[j] - ts[j - 1]) if ts[j] > ts[j - 1] else 1.0) * (cs[j] - cs[j - 1])


def test_place_puts_each_sample_where_the_curve_reaches_its_share_of_the_rise():
    import random
    from array import array

    rnd = random.Random(7)
    for _ in range(400):
        m = rnd.randint(2, 40)
        ts = array("d", sorted(rnd.uniform(0, 10) for _ in range(m)))
        cs, c = array("d"), rnd.random()
        for _ in range(m):  # flat stretches (the thread off CPU) and rises
            c += rnd.choice([0.0, 0.0, rnd.random()])
            cs.append(c)
        if cs[-1] <= cs[0]:
            continue
        n = rnd.randint(1, 800)
        since = rnd.uniform(-1, 5)
        until = since + rnd.uniform(0, 8)
        got, want = list(_place(n, (ts, cs), since, until)), _place_one_by_one(n, (ts, cs), since, until)
        assert len(got) == n and max(abs(a - b) for a, b in zip(got, want)) < 1e-9
        assert got == sorted(got)
