# SPDX-License-Identifier: Apache-2.0
"""Live-profiling errors: one clear line, the contract's exit code, never a traceback."""


from conftest import profkit


def one_line(p, code, pattern):
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    errors = [l for l in p.stderr.splitlines() if l.startswith("profkit: error: ")]
    assert len(errors) == 1 and pattern in errors[0], p.stderr


def test_no_such_pid(tmp_path):
    one_line(profkit("attach", "--pid", 4_000_000, "-d", 1, "-o", tmp_path / "r"), 1, "no process with PID")
    assert not (tmp_path / "r").exists()


def test_kernel_thread(tmp_path):
    one_line(profkit("attach", "--pid", 2, "-d", 1, "-o", tmp_path / "r"), 1, "kernel thread")


def test_no_target_given():
    one_line(profkit("attach", "-d", 1), 2, "--pid")


def test_mode_not_available_for_native(start_target, tmp_path):
    t = start_target("sleep", "30")
    p = profkit("attach", "--pid", t.pid, "--mode", "wall", "-d", 1, "-o", tmp_path / "r")
    one_line(p, 2, "not available for a native process")
    assert "hint: " in p.stderr


def test_collector_for_the_wrong_runtime(start_target, tmp_path):
    t = start_target("sleep", "30")
    one_line(profkit("attach", "--pid", t.pid, "-c", "py-spy", "-d", 1, "-o", tmp_path / "r"), 1, "py-spy cannot run")


def test_unknown_collector(start_target, tmp_path):
    t = start_target("sleep", "30")
    one_line(profkit("attach", "--pid", t.pid, "-c", "nope", "-d", 1, "-o", tmp_path / "r"), 2, "unknown collector")


def test_bad_duration_and_rate():
    one_line(profkit("attach", "--pid", 1, "-d", 0), 2, "--duration")
    one_line(profkit("attach", "--pid", 1, "-d", 1, "--rate", 0), 2, "--rate")


def test_run_with_a_missing_command():
    one_line(profkit("run", "-d", 1, "--", "/no/such/program"), 2, "command not found")


def test_render_of_a_foreign_run_directory(tmp_path):
    (tmp_path / "manifest.json").write_text('{"schema": 7}')
    one_line(profkit("render", tmp_path), 2, "schema 7")
    one_line(profkit("render", tmp_path / "none"), 2, "not a run directory")
