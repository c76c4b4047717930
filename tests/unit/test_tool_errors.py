# SPDX-License-Identifier: Apache-2.0
"""Every error line a tool writes during a run is a warning of the run; probes can start late."""
import os
import threading

from collectors.memray import reader_errors
from profkit.engine import Probe, record
from profkit.engine.probes import tool_errors
from profkit.errors import Diagnostics
from support import make_run


def test_what_memrays_reader_writes_to_fd_2_becomes_warnings():
    diag = Diagnostics()
    with reader_errors(diag, "memray reader"):
        for _ in range(5):
            os.write(2, b"Failed to process aggregated allocation record\n")
        os.write(2, b"another line\n")
    assert diag.messages() == ["memray reader: Failed to process aggregated allocation record (5 times)",
                               "memray reader: another line"]


def test_tool_error_lines_from_a_stderr_file(tmp_path):
    path = tmp_path / "py-spy-1.folded.stderr"
    path.write_text("py-spy> Sampling process 100 times a second\nError: Failed to get stack trace\n"
                    "Error: Failed to get stack trace\nsomething fatal happened\n")
    assert tool_errors(str(path)) == ["Error: Failed to get stack trace (2 times)", "something fatal happened"]
    assert tool_errors(str(tmp_path / "missing")) == []


class Clock(Probe):
    id, kind = "late", "heap"

    def __init__(self, delay, essential=False):
        super().__init__()
        self.delay, self.essential, self.started, self.running = delay, essential, None, False

    def start(self, ctx):
        import time

        self.started = time.monotonic() - ctx.t0
        self.running = True

    def poll(self):
        return self.running

    def stop(self, reason):
        self.running = False


def test_a_delayed_probe_starts_after_its_delay_and_says_when(tmp_path):
    run = make_run(tmp_path / "r", mode="heap")
    essential, late = Clock(0, essential=True), Clock(0.6)
    essential.id = "first"
    record(run, [], [essential, late], duration=1.5, render=False, watch_targets=False, stop=threading.Event())
    assert essential.started < 0.3 and 0.6 <= late.started < 1.3
    detail = run.record.probe("late").detail
    assert detail["delay_s"] == 0.6 and 0.6 <= detail["started_s"] <= detail["attached_s"]
