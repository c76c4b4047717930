# SPDX-License-Identifier: Apache-2.0
"""The CLI end to end, as a user runs it: exit codes, one-line errors, outputs."""
import gzip
import os
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from support import cli as profkit, one_line_error

ROOT = pathlib.Path(__file__).resolve().parents[2]
CAPTURE = ROOT / "examples" / "captures" / "hotloop.perf.txt.gz"


def test_collapse_folded_from_stdin():
    p = profkit("collapse", "--format", "folded", "-", stdin=b"b;c 2\na;b 1\nb;c 3\n")
    assert p.returncode == 0, p.err
    assert p.out == "a;b 1\nb;c 5\n"


def test_collapse_sniffs_a_gzipped_perf_capture():
    p = profkit("collapse", CAPTURE)
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    assert lines and all(l.startswith("hotloop;") for l in lines)
    # As stackcollapse-perf.pl does, each sample weighs its period: 2,495 cpu-clock samples of
    # 2,004,008 ns each (perf record -F 499), i.e. 5 s of CPU time.
    assert sum(int(l.rsplit(" ", 1)[1]) for l in lines) == 2495 * 2004008


def test_collapse_passes_perf_options_spelled_as_stackcollapse():
    p = profkit("collapse", "--format", "perf", "--pid", "--kernel", CAPTURE)
    assert p.returncode == 0, p.err
    assert p.out.startswith("hotloop-")
    assert "_[k]" in p.out


def test_collapse_keeps_names_that_are_not_utf8(tmp_path):
    """Symbols are bytes to perf; ones that are not UTF-8 come out byte for byte, as from
    stackcollapse-perf.pl, on stdout as in a file."""
    capture = tmp_path / "latin1.txt"
    capture.write_bytes(b"ab 1 1.0: 1 cycles:\n\t1 caf\xe9 (/bin/x)\n\t2 g\xc3\xa9 (/bin/x)\n\n")
    p = profkit("collapse", "--format", "perf", capture)
    assert p.returncode == 0, p.err
    assert p.stdout == b"ab;g\xc3\xa9;caf\xe9 1\n"
    out = tmp_path / "out.folded"
    assert profkit("collapse", "--format", "perf", "-o", out, capture).returncode == 0
    assert out.read_bytes() == p.stdout


def test_format_options_need_an_explicit_format():
    one_line_error(profkit("collapse", "--pid", CAPTURE), 2, "need an explicit --format")


def test_unknown_format_option():
    one_line_error(profkit("collapse", "--format", "perf", "--frobnicate", CAPTURE), 2, "frobnicate")


def test_unknown_format_lists_known_ones():
    one_line_error(profkit("collapse", "--format", "nope", CAPTURE), 2, "known: ")


@pytest.mark.parametrize("content,pattern", [
    (None, "no such file"),
    (b"", "empty input"),
    (os.urandom(4096) + b"\x00", "binary data"),
    (gzip.compress(b"a;b 1\n" * 50000)[:300], "truncated or corrupt gzip"),
    (b"nothing here parses\nat all\n", "no stacks found"),
])
def test_bad_inputs_are_one_line_and_exit_2(tmp_path, content, pattern):
    path = tmp_path / "input.gz"
    if content is not None:
        path.write_bytes(content)
    for cmd in (["collapse", "--format", "folded"], ["flamegraph", "-o", tmp_path / "x.svg"]):
        one_line_error(profkit(*cmd, path), 2, pattern)
    assert not (tmp_path / "x.svg").exists()


def test_malformed_lines_warn_and_strict_fails(tmp_path):
    path = tmp_path / "m.folded"
    path.write_text("a;b 1\nbad line\nworse\na;c 2\n")
    p = profkit("collapse", path)
    assert p.returncode == 0
    assert "ignored 2 malformed lines" in p.err and p.out == "a;b 1\na;c 2\n"
    one_line_error(profkit("collapse", "--strict", path), 2, "2 malformed line(s)")


def test_debug_shows_the_traceback(tmp_path):
    p = profkit("--debug", "collapse", tmp_path / "missing")
    assert p.returncode == 2 and "Traceback" in p.err


def test_flamegraph_writes_a_valid_svg(tmp_path):
    out = tmp_path / "g.svg"
    p = profkit("flamegraph", CAPTURE, "-o", out, "--title", "hot <loop> & co")
    assert p.returncode == 0, p.err
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    text = out.read_text()
    assert "hot &lt;loop&gt; &amp; co" in text and "checksum_block" in text


def test_flamegraph_to_stdout_when_piped():
    p = profkit("flamegraph", "-", stdin=b"a;b 1\n")
    assert p.returncode == 0, p.err
    assert p.out.startswith('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<svg '), p.out[:100]


def test_flamegraph_rejects_bad_minwidth():
    p = profkit("flamegraph", "--minwidth", "lots", "-", stdin=b"a;b 1\n")
    assert p.returncode == 2 and "Traceback" not in p.err


@pytest.mark.slow
def test_diff_markdown_and_regression_gate(tmp_path):
    before = tmp_path / "before.folded"
    after = tmp_path / "after.folded"
    before.write_text("main;handle (app.py:10);query (db.py:5) 50\nmain;render (t.py:3) 50\n")
    after.write_text("main;handle (app.py:12);query (db.py:7) 150\nmain;render (t.py:3) 50\n")
    md = tmp_path / "diff.md"
    p = profkit("diff", before, after, "-o", tmp_path / "d.svg", "--markdown", md)
    assert p.returncode == 0, p.err
    ET.parse(tmp_path / "d.svg")
    assert "| query (db.py) | 50.00% | 75.00% | +25.00 |" in md.read_text()
    gated = profkit("diff", before, after, "-o", tmp_path / "d2.svg", "--fail-on-regression", "10")
    one_line_error(gated, 3, "grew by more than 10 points")
    assert (tmp_path / "d2.svg").exists()  # the evidence is written before the gate trips
    assert profkit("diff", before, after, "-o", tmp_path / "d3.svg", "--fail-on-regression", "30").returncode == 0


@pytest.mark.slow
def test_broken_pipe_is_quiet(tmp_path):
    big = tmp_path / "big.folded"
    big.write_text("".join(f"main;f{i} {i + 1}\n" for i in range(200000)))
    proc = subprocess.run(f"'{sys.executable}' -m profkit collapse '{big}' | head -1", shell=True,
                          capture_output=True, text=True)
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr


def test_help_teaches():
    p = profkit("--help")
    assert p.returncode == 0 and "flamegraph" in p.out and "Exit codes" in p.out
    p = profkit("collectors")
    assert p.returncode == 0
    for cid in ("perf", "py-spy", "async-profiler", "jfr", "folded"):
        assert f"{cid}:" in p.out
    assert "--kernel" in p.out
