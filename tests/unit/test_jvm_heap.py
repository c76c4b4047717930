# SPDX-License-Identifier: Apache-2.0
"""jstat, class histogram and VM flag parsing on output recorded from the example JVM service."""
import pathlib

from collectors.jvm_heap import diff_histograms, display_class, is_application_class, parse_histogram, parse_jstat, parse_vm_flags

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "heap"


def test_jstat_rows_in_bytes():
    rows = parse_jstat((DATA / "jstat-gc-t.txt").read_text())
    assert len(rows) == 8
    r = rows[1]
    assert r["jvm_t"] == 14.8
    assert r["pools"]["old"]["used"] == int(2114.6 * 1024)
    assert r["heap_used"] == int((1924.6 + 30720.0 + 2114.6) * 1024)
    assert r["young_gc"] == 12 and r["full_gc"] == 3
    # the leak fills the old generation
    assert rows[-1]["pools"]["old"]["used"] > 10 * rows[0]["pools"]["old"]["used"]


def test_jstat_skips_cut_and_foreign_lines():
    text = (DATA / "jstat-gc-t.txt").read_text()
    cut = text + "   21.8   0.0  0.0\nTerminated\n"
    assert len(parse_jstat(cut)) == 8
    assert parse_jstat("") == []


def test_vm_flags():
    flags = parse_vm_flags("-XX:MaxHeapSize=268435456 -XX:+UseG1GC -XX:-THPStackMitigation -Xfoo")
    assert flags == {"MaxHeapSize": "268435456", "UseG1GC": "true", "THPStackMitigation": "false"}


def test_display_class_names():
    assert display_class("[B") == "byte[]"
    assert display_class("[[I") == "int[][]"
    assert display_class("[Ljava.lang.Object;") == "java.lang.Object[]"
    assert display_class("example.ResultCache$Entry") == "example.ResultCache$Entry"


def test_application_classes():
    assert is_application_class("example.ResultCache$Entry")
    assert is_application_class("Main")
    assert not is_application_class("java.util.HashMap$Node")
    assert not is_application_class("byte[]")
    assert not is_application_class("example.Entry[]")


def test_histogram_parse_strips_modules_and_lambda_addresses():
    hist = parse_histogram((DATA / "histogram-end.txt").read_text())
    assert hist["byte[]"][1] == 21478056
    assert hist["example.ResultCache$Entry"] == (13694, 547760)
    assert "example.JsonService$$Lambda$15" in hist


def test_diff_ranks_the_leaking_application_class_first():
    start = parse_histogram((DATA / "histogram-start.txt").read_text())
    end = parse_histogram((DATA / "histogram-end.txt").read_text())
    rows = diff_histograms(start, end)
    assert rows[0].name == "example.ResultCache$Entry"
    assert rows[0].instances_growth == 13694
    jdk = {r.name: r for r in rows if not r.application}
    assert jdk["byte[]"].holder == "example.ResultCache$Entry"
    assert jdk["java.util.HashMap$Node"].holder == "example.ResultCache$Entry"
    # application rows come before every JDK/array row
    kinds = [r.application for r in rows]
    assert kinds == sorted(kinds, reverse=True)


def test_heap_section_escapes_hostile_names(tmp_path):
    """Class and function names are untrusted: escaped in report.html and in summary.md."""
    import json

    from profkit.outputs import render_run
    from support import make_run

    hostile = '</script><svg onload=alert(1)>|`*&"'
    run = make_run(tmp_path / "run", runtime="jvm", mode="heap")
    series = [{"t": float(i), "rss": 100 * 2**20 + i * 2**20, "uss": 90 * 2**20} for i in range(10)]
    heap = {"classification": "growing", "basis": "rss", "series": series, "reason": hostile,
            "fit": {"slope": 2**20, "intercept": 100 * 2**20, "t_start": 2.0, "bytes_per_min": 60 * 2**20,
                    "ci95_bytes_per_min": [50 * 2**20, 70 * 2**20]},
            "limit": {"name": "-Xmx", "bytes": 256 * 2**20, "source": "x"},
            "projection": {"text": "at 60 MB/min, heap reaches -Xmx 256 MB in about 2 minutes", "seconds_to_limit": 150},
            "suspects": [{"name": hostile, "site": hostile, "bytes": 10, "growth": {"bytes": 5, "bytes_per_min": 1},
                          "holder": hostile}]}
    (tmp_path / "run" / "heap.json").write_text(json.dumps(heap))
    run.record.duration = 10.0
    run.finish("complete")
    render_run(run)
    html = (tmp_path / "run" / "report.html").read_text()
    assert "<svg onload" not in html and "</script><svg" not in html
    assert "&lt;svg onload=alert(1)&gt;" in html
    assert 'class="heap"' in html and "stroke-dasharray" in html
    md = (tmp_path / "run" / "summary.md").read_text()
    assert "## Heap" in md and "<svg onload" not in md and "in about 2 minutes" in md
