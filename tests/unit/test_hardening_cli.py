# SPDX-License-Identifier: Apache-2.0
"""Issue 10's defects, each as a user meets it: through the CLI or the function every path uses."""
import json
import os

import pytest

from profkit.errors import RunRecordError
from profkit.markdown import GITHUB_COMMENT_LIMIT, cap_comment, markdown_escape
from profkit.rundir import RunDir
from profkit.secrets import redact, redact_argv
from profkit.textsafe import terminal_text, utf8_text
from support import cli as profkit, make_run, one_line_error

ESC_NAME = "evil\x1b]0|pwned\x07\x1b[2J\u202ecod.exe"  # an OSC title change, a screen clear, a bidi override


# -- 3. -o never overwrites a user's files ----------------------------------------------------------
def test_an_output_directory_with_other_files_is_refused(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.md").write_text("my notes")
    with pytest.raises(Exception) as e:
        make_run(mine)
    assert e.value.exit_code == 2 and "not empty" in e.value.message
    assert (mine / "summary.md").read_text() == "my notes" and not (mine / "raw").exists()
    # an empty directory, or one profkit prepared (only an empty raw/), is fine
    (tmp_path / "empty").mkdir()
    make_run(tmp_path / "empty")
    (tmp_path / "prepared" / "raw").mkdir(parents=True)
    make_run(tmp_path / "prepared")


def test_attach_refuses_a_foreign_output_directory_before_profiling(tmp_path):
    (tmp_path / "report.html").write_text("<p>mine</p>")
    one_line_error(profkit("attach", "--pid", os.getpid(), "-d", 1, "-o", tmp_path), 2, "not empty")
    assert (tmp_path / "report.html").read_text() == "<p>mine</p>"


# -- 4. terminal escape injection --------------------------------------------------------------------
def test_names_printed_to_a_terminal_are_escaped(tmp_path):
    base, head = tmp_path / "a.folded", tmp_path / "b.folded"
    base.write_text("main;x 10\n")
    head.write_text(f"main;x 5\nmain;{ESC_NAME} 5\n")
    p = profkit("diff", base, head, "-o", tmp_path / "d.svg")
    assert p.returncode == 0, p.err
    assert "\x1b" not in p.err and "\x07" not in p.err and "\u202e" not in p.err
    assert "\\x1b]0|pwned\\x07" in p.err and "\\u202e" in p.err
    assert terminal_text("a\x1bb\udcff\u202ec") == "a\\x1bb\\xff\\u202ec"


def test_error_messages_escape_names_too(tmp_path):
    p = profkit("collapse", "--format", "folded", tmp_path / f"no{ESC_NAME}")
    assert p.returncode == 2 and "\x1b" not in p.err and "\\x1b" in p.err


# -- 5. Markdown: mentions, references, emoji, bidi, length ------------------------------------------
def test_markdown_neutralises_mentions_references_emoji_and_bidi():
    out = markdown_escape("@octocat fixes #1234 :rocket: GH-12 a\u202eb")
    for raw in ("@octocat", "#1234", ":rocket:", "GH-12", "\u202e"):
        assert raw not in out
    assert "@\u2060octocat" in out and "#\u20601234" in out and ":\u2060rocket:" in out and "\\\\u202e" in out
    long = markdown_escape("f" * 5000)
    assert len(long) < 400 and "4700 more characters" in long


def test_comment_md_is_capped_for_github_and_says_what_was_cut():
    text = "\n".join(f"| row {i} | {'x' * 80} |" for i in range(2000))
    capped = cap_comment(text)
    assert len(capped) <= GITHUB_COMMENT_LIMIT and "cut to fit" in capped and capped.count("\n") < text.count("\n")
    assert cap_comment("short") == "short"


def test_compare_comment_has_no_live_mentions(tmp_path):
    from profkit.comment import comment_markdown
    from profkit.compare import compare_functions
    from profkit.model import Profile

    b, a = Profile(), Profile()
    b.add(["main", "x"], 10)
    a.add(["main", "@octocat"], 10)
    a.add(["main", "#1234 \u202e"], 10)
    text = comment_markdown(compare_functions(b, a), base_label="base", head_label="head", base_load=None,
                            head_load=None, base_slo=None, head_slo=None, threshold=None, files={})
    assert "@octocat" not in text and "#1234" not in text and "\u202e" not in text


# -- 6. and 7. undecodable bytes: one policy for every reader and writer -----------------------------
@pytest.mark.parametrize("fmt", ["auto", "folded", "py-spy", "async-profiler"])
def test_invalid_utf8_round_trips_through_collapse(tmp_path, fmt):
    path = tmp_path / "bad.folded"
    path.write_bytes(b"main;b\xff\xfe (x.py:1) 3\nmain;ok (x.py:2) 2\n")
    p = profkit("collapse", "--format", fmt, path)
    assert p.returncode == 0 and "Traceback" not in p.err, p.err
    assert b"main;b\xff\xfe (x.py:1) 3" in p.stdout  # the same bytes, not an encoding error


def test_invalid_utf8_in_perf_and_exports(tmp_path):
    perf = tmp_path / "perf.txt"
    perf.write_bytes(b"prog 12 1.0: 1 cpu-clock:\n\t1 f\xff+0x1 (/bin/prog)\n\t2 main (/bin/prog)\n\n")
    p = profkit("collapse", "--format", "perf", perf)
    assert p.returncode == 0 and b"prog;main;f\xff 1" in p.stdout, p.err
    folded = tmp_path / "bad.folded"
    folded.write_bytes(b"main;b\xff\xfe (x.py:1) 3\n")
    for fmt, out in (("speedscope", tmp_path / "s.json"), ("pprof", tmp_path / "p.pb.gz")):
        p = profkit("export", folded, "--to", fmt, "-o", out)
        assert p.returncode == 0, p.err
    doc = json.loads((tmp_path / "s.json").read_bytes().decode("utf-8"))  # strict UTF-8
    assert any("\ufffd" in f["name"] for f in doc["shared"]["frames"])
    assert utf8_text("b\udcff") == "b\ufffd"


def test_svg_and_html_of_hostile_names_are_valid_and_inert(tmp_path):
    folded = tmp_path / "h.folded"
    folded.write_bytes(f"main;{ESC_NAME};b\xff 3\n".encode("utf-8", "surrogateescape"))
    p = profkit("flamegraph", folded, "-o", tmp_path / "h.svg")
    assert p.returncode == 0, p.err
    svg = (tmp_path / "h.svg").read_bytes().decode("utf-8")  # valid UTF-8
    import xml.etree.ElementTree as ET
    ET.fromstring(svg.split("?>", 1)[1])  # well-formed XML
    assert "\u202e" not in svg and "\x1b" not in svg


# -- 8. render of a run whose profile.folded is missing ------------------------------------------------
def test_render_remakes_a_missing_profile_from_the_raw_capture(tmp_path):
    run = make_run(tmp_path / "r", mode="cpu", rate=100)
    raw = tmp_path / "r" / "raw" / "py-spy-1.folded"
    raw.write_text("main (a.py:1);hot (a.py:5) 40\nmain (a.py:1) 2\n")
    entry = run.record.probe("py-spy")
    entry.raw, entry.parse, entry.status = ["raw/py-spy-1.folded"], {"format": "raw"}, "ok"
    run.finish("complete")
    p = profkit("render", tmp_path / "r")
    assert p.returncode == 0, p.err
    assert (tmp_path / "r" / "profile.folded").read_text().count("hot") == 1
    record = RunDir.open(str(tmp_path / "r")).record
    assert record.profile.samples == 42 and any("made again" in w for w in record.warnings)
    assert "42" in (tmp_path / "r" / "summary.md").read_text()


def test_render_says_exactly_what_is_missing(tmp_path):
    run = make_run(tmp_path / "r")
    entry = run.record.probe("py-spy")
    entry.raw, entry.status = ["raw/py-spy-1.folded"], "ok"
    run.finish("complete")
    p = profkit("render", tmp_path / "r")
    assert p.returncode == 0
    assert "could not be made again" in p.err and "raw/py-spy-1.folded" in p.err


def test_render_of_a_file_says_it_is_not_a_run_directory(tmp_path):
    f = tmp_path / "x.folded"
    f.write_text("a 1\n")
    one_line_error(profkit("render", f), 2, "not a run directory")


# -- 10., 11. and click's own errors ---------------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_non_finite_durations_are_usage_errors_before_anything_is_made(tmp_path, value):
    out = tmp_path / "run"
    one_line_error(profkit("attach", "--pid", os.getpid(), "--duration", value, "-o", out), 2, "--duration")
    one_line_error(profkit("heap", "--pid", os.getpid(), "--duration", value, "-o", out), 2, "--duration")
    assert not out.exists()


def test_a_bad_regex_is_a_usage_error():
    one_line_error(profkit("attach", "--name", "(", "-d", 1), 2, "not a valid regular expression")


@pytest.mark.parametrize("args,pattern", [
    (["attach", "--frobnicate"], "No such option '--frobnicate'"),
    (["attach", "--pid", "abc"], "'abc' is not a valid integer"),
    (["nosuchcommand"], "No such command"),
    (["collapse"], "Missing argument"),
])
def test_clicks_own_errors_follow_the_contract(args, pattern):
    p = profkit(*args)
    one_line_error(p, 2, pattern)
    assert "--help" in p.err.splitlines()[-1]


def test_debug_of_the_target_is_not_profkits_debug(tmp_path):
    # `profkit run -- app --debug`: the flag is the command's, not profkit's
    p = profkit("run", "-d", 1, "-o", tmp_path / "r", "-q", "--", "nosuchcommand-xyz", "--debug")
    one_line_error(p, 2, "command not found")


# -- 12. a manifest with wrong value types --------------------------------------------------------------
@pytest.mark.parametrize("patch,field", [
    ({"targets": 5}, "targets"),
    ({"targets": [{"pid": "x"}]}, "targets[0].pid"),
    ({"profile": {"samples": "lots"}}, "profile.samples"),
    ({"status": "weird"}, "status"),
    ({"probes": [{"id": "py-spy", "raw": ["../../etc/passwd"]}]}, "outside the run directory"),
    ({"probes": [{"id": "py-spy", "raw": ["/etc/passwd"]}]}, "outside the run directory"),
])
def test_a_manifest_that_does_not_validate_names_the_field(tmp_path, patch, field):
    make_run(tmp_path / "r").finish("complete")
    path = tmp_path / "r" / "manifest.json"
    data = json.loads(path.read_text())
    data.update(patch)
    path.write_text(json.dumps(data))
    with pytest.raises(RunRecordError) as e:
        RunDir.open(str(tmp_path / "r"))
    assert field in e.value.message and e.value.exit_code == 2
    one_line_error(profkit("render", tmp_path / "r"), 2, field)


def test_schema_1_records_are_still_read(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "manifest.json").write_text(json.dumps({
        "schema": 1, "status": "complete", "target": {"pids": [7, 8], "name": "svc", "runtime": "python"},
        "collectors": [{"id": "psutil"}, {"id": "py-spy", "version": "0.4", "raw": ["raw/py-spy-7.folded"]}],
        "primary": "py-spy", "unit": "samples", "samples": 5, "mode": "cpu", "rate": 100}))
    r = RunDir.open(str(tmp_path / "r")).record
    assert r.pids == [7, 8] and r.target.name == "svc" and [p.id for p in r.profilers] == ["py-spy"]
    assert r.probes[0].kind == "metrics" and r.profile.samples == 5


# -- secrets ---------------------------------------------------------------------------------------------
def test_secrets_never_reach_the_record(tmp_path):
    assert redact("http://user:pw@127.0.0.1:8/x?token=abc&x=1") == "http://***@127.0.0.1:8/x?token=***&x=1"
    assert redact("curl -H 'Authorization: Bearer s3cr3t' dsn=postgres://u@h password=p") == \
        "curl -H 'Authorization: ***' dsn=postgres://***@h password=***"
    assert redact_argv(["--token", "abc", "--password=xyz", "--url", "http://a:b@h/"]) == \
        ["--token", "***", "--password=***", "--url", "http://***@h/"]
    run = make_run(tmp_path / "r")
    entry = run.record.probe("wrk", "load")
    entry.set_commands([["wrk", "-H", "Authorization: Bearer s3cr3t", "http://u:p@127.0.0.1/"]])
    run.warn("failed for http://u:p@127.0.0.1/")
    run.save()
    text = (tmp_path / "r" / "manifest.json").read_text()
    assert "s3cr3t" not in text and "u:p@" not in text


# -- the smaller ones ------------------------------------------------------------------------------------
def test_psutil_is_not_a_stack_collector(tmp_path):
    p = profkit("attach", "--pid", os.getpid(), "-c", "psutil", "-d", 1, "-o", tmp_path / "r")
    one_line_error(p, 1, "psutil records process metrics")
    assert not (tmp_path / "r").exists()


def test_top_functions_by_self_lists_only_functions_with_self_weight(tmp_path):
    from profkit.outputs import render_run

    run = make_run(tmp_path / "r", mode="cpu", rate=100)
    (tmp_path / "r" / "profile.folded").write_text("main;a;b 5\nmain;a;c 3\n")
    run.finish("complete")
    render_run(RunDir.open(str(tmp_path / "r")))
    summary = (tmp_path / "r" / "summary.md").read_text()
    by_self = summary.split("## Top functions by self")[1].split("##")[0]
    assert "| b |" in by_self and "| c |" in by_self and "| main |" not in by_self and "| a |" not in by_self


def test_a_collector_failure_reads_well_whatever_its_exit_status():
    from profkit.errors import CollectorFailed

    assert str(CollectorFailed(["perf", "record"], 3, "no such event")) == "perf failed (exit status 3): no such event"
    assert str(CollectorFailed(["perf", "record"], -9)) == "perf failed (signal 9)"
    # a tool whose output stopped while it still runs (perf kept attached by the agent): no status yet
    assert str(CollectorFailed(["perf", "record"], None)) == "perf failed (still running)"
