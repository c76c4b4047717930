# SPDX-License-Identifier: Apache-2.0
"""Application-level attribution: each sample at its deepest frame in the application's code."""
import pytest

from profkit.attribution import (APP, LIB, NO_APP, SKIP, Rules, app_functions, app_weights, compare_app_functions,
                                 parse_rules)
from profkit.errors import UsageError
from profkit.model import Frame, Profile


def make(lines, unit="samples"):
    p = Profile(unit)
    for stack, w in lines:
        p.add(stack.split(";"), w)
    return p


@pytest.mark.parametrize("token,expect", [
    ("handle (app/views.py:3)", APP),
    ("render_report (service.py:9)", APP),
    ("JSONEncoder.encode (json/encoder.py:200)", LIB),           # py-spy's short stdlib paths
    ("readinto (socket.py:704)", LIB),
    ("wait (/usr/lib/python3.11/threading.py:320)", LIB),
    ("get (/srv/venv/lib/python3.11/site-packages/redis/client.py:5)", LIB),
    ("full_dispatch_request (flask/app.py:880)", LIB),           # a framework, by its package
    ("_call_with_frames_removed (<frozen importlib._bootstrap>:241)", LIB),
    ("com.example.shop.Render.page", APP),
    ("java.lang.Thread.run", LIB), ("java/util/HashMap.put", LIB),  # keys are normalised first
    ("org.springframework.web.servlet.DispatcherServlet.doService", LIB),
    ("JavaThread::run", LIB), ("start_thread", LIB), ("__GI___libc_write", LIB), ("_PyEval_EvalFrameDefault", LIB),
    ("do_syscall_64_[k]", LIB),
    ("hot_loop", APP),                                         # a native program's own function
    ("python3 [12]", SKIP), ("[thread MainThread]", SKIP), ("[self]", SKIP),
])
def test_builtin_rules(token, expect):
    assert Rules().classify(Frame.from_token(token).keyed()) == expect


def test_app_and_lib_patterns_override_and_lib_wins():
    r = parse_rules(app=[r"mycompany/"], lib=[r"mycompany/vendor/"])
    assert r.classify(Frame.parse("f (/venv/lib/python3.11/site-packages/mycompany/core.py:1)")) == APP
    assert r.classify(Frame.parse("g (/venv/lib/python3.11/site-packages/mycompany/vendor/x.py:1)")) == LIB
    with pytest.raises(UsageError):
        parse_rules(app=["("])


def test_each_sample_counts_at_its_deepest_application_frame():
    p = make([
        ("<module> (svc.py:1);main (svc.py:5);serve_forever (socketserver.py:2);select (selectors.py:9)", 30),
        ("_bootstrap (threading.py:1);run (threading.py:2);do_GET (svc.py:20);render (svc.py:40);"
         "dumps (json/__init__.py:3);iterencode (json/encoder.py:4)", 50),
        ("_bootstrap (threading.py:1);run (threading.py:2);do_GET (svc.py:20);fetch (svc.py:60);"
         "readinto (socket.py:7)", 15),
        ("_bootstrap (threading.py:1);run (threading.py:2)", 5),
    ])
    rows, none = app_functions(p, Rules(), 5)
    assert [(r.key, r.weight) for r in rows] == [("render (svc.py)", 50), ("main (svc.py)", 30), ("fetch (svc.py)", 15)]
    assert rows[0].spent_in == "iterencode (json/encoder.py)" and rows[0].spent_in_share == 100.0
    assert rows[1].spent_in == "select (selectors.py)"
    assert none == pytest.approx(5.0)
    assert app_weights(p)[NO_APP] == 5


def test_allocation_profiles_leave_the_type_leaf_out():
    p = make([("java/lang/Thread.run;com/example/Page.render;java/lang/StringBuilder.toString;byte[]_[k]", 900),
              ("java/lang/Thread.run;com/example/Page.header;java.lang.String_[i]", 100)], "bytes")
    rows, _ = app_functions(p, Rules(type_leaf=True), 5)
    assert [(r.key, r.weight) for r in rows] == [("com.example.Page.render", 900), ("com.example.Page.header", 100)]
    assert rows[0].spent_in == "java.lang.StringBuilder.toString"


def test_comparison_of_application_functions():
    base = make([("main (a.py:1);work (a.py:3)", 90), ("main (a.py:1);slow (a.py:9);sleep (time.py:1)", 10)])
    head = make([("main (a.py:1);work (a.py:3)", 50), ("main (a.py:1);slow (a.py:9);sleep (time.py:1)", 50)])
    d = compare_app_functions(base, head)
    assert d[0].key == "slow (a.py)" and d[0].delta == pytest.approx(40.0)
    assert d[-1].key == "work (a.py)"


def test_render_app_and_lib_are_recorded_and_used(tmp_path):
    import subprocess
    import sys

    from profkit.rundir import RunDir
    from support import make_run

    run = make_run(tmp_path / "r", mode="cpu", rate=100)
    (tmp_path / "r" / "profile.folded").write_text(
        "main (svc.py:1);handle (/venv/lib/python3.11/site-packages/mine/views.py:3);dumps (json/__init__.py:1) 40\n"
        "main (svc.py:1) 2\n")
    run.finish("complete")

    def render(*flags):
        p = subprocess.run([sys.executable, "-m", "profkit", "render", str(tmp_path / "r"), *flags],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return (tmp_path / "r" / "summary.md").read_text().split("## Top functions")[0]

    assert "| main (svc.py) | 42 |" in render()          # installed code is a library by default
    text = render("--app", "site-packages/mine/")
    assert "| handle (/venv/lib/python3.11/site-packages/mine/views.py) | 40 |" in text.replace("\\", "")
    assert "--app site-packages/mine/" in text.replace("\\", "")
    assert RunDir.open(str(tmp_path / "r")).record.attribution == {"app": ["site-packages/mine/"]}
    assert "| handle" in render().replace("\\", "")           # kept by the run


def test_allocation_sites_with_types_and_without():
    from profkit.attribution import allocated_types, allocation_sites, without_type_leaf

    p = make([("java/lang/Thread.run;com/example/Page.render;java/util/Arrays.copyOf;byte[]_[k]", 600),
              ("java/lang/Thread.run;com/example/Page.render;java/util/Arrays.copyOf;char[]_[i]", 200),
              ("java/lang/Thread.run;com/example/Page.header;java.lang.String_[i]", 100),
              ("java/lang/Thread.run;java/lang/Thread.runWorker;java.lang.Object[]_[i]", 100)], "bytes")
    sites = allocation_sites(p, Rules(type_leaf=True), 5)
    assert (sites[0].site, sites[0].app, sites[0].weight) == ("java.util.Arrays.copyOf", "com.example.Page.render", 800)
    assert sites[0].types == [("byte[]", 75.0), ("char[]", 25.0)]
    assert (sites[1].site, sites[1].app) == ("com.example.Page.header", None)  # the app function allocates itself
    assert allocated_types(p, 2) == [("byte[]", 600, 60.0), ("char[]", 200, 20.0)]
    assert "byte[]" not in without_type_leaf(p).keyed().function_stats()
    # memray: the leaf is the allocating frame itself
    m = make([("main (svc.py:1);handle (svc.py:9);loads (json/__init__.py:3)", 70), ("main (svc.py:1);keep (svc.py:20)", 30)],
             "bytes")
    rows = allocation_sites(m, Rules(), 5)
    assert [(r.site, r.app) for r in rows] == [("loads (json/__init__.py)", "handle (svc.py)"), ("keep (svc.py)", None)]


def test_alloc_run_tables_and_mode_line(tmp_path):
    from profkit.reports import summary_markdown
    from support import make_run

    run = make_run(tmp_path / "r", mode="alloc", runtime="jvm")
    entry = run.record.probe("async-profiler")
    entry.status, entry.detail = "ok", {"sampling": "one sample per 512 KiB allocated (async-profiler alloc=524288)"}
    (tmp_path / "r" / "profile.folded").write_text(
        "java/lang/Thread.run;com/example/Page.render;java/util/Arrays.copyOf;byte[]_[k] 800\n")
    from profkit.runrecord import ProfileRecord
    run.record.profile = ProfileRecord(primary="async-profiler", unit="bytes", samples=800, unique_stacks=1)
    run.finish("complete")
    from profkit.outputs import load_run_profile

    text = summary_markdown(run, load_run_profile(run)).replace("\\", "")
    assert "| mode | alloc: one sample per 512 KiB allocated" in text and "Hz" not in text
    assert "## Top functions by self" not in text and "## Allocation sites" in text and "## Allocated types" in text
    assert text.index("## Application functions") < text.index("## Allocation sites")
    assert "| com.example.Page.render | 800 B | 100.0% |" in text
