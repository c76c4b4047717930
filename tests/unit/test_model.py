# SPDX-License-Identifier: Apache-2.0
"""The Profile model: interning, kinds, weights, transforms and summaries."""
import pytest

from profkit.frames import key_token, split_kind
from profkit.model import Frame, FrameKind, Profile, function_key


def make(*lines):
    p = Profile()
    for stack, w in lines:
        p.add(stack.split(";"), w)
    return p


def test_tokens_and_frames_intern_to_the_same_id():
    p = Profile()
    p.add(["main", "read_[k]"], 2)
    p.add([Frame("main"), Frame("read", FrameKind.KERNEL)], 3)
    assert len(p) == 1 and p.total == 5
    (stack, w), = p.stacks()
    assert stack == (Frame("main", FrameKind.UNKNOWN), Frame("read", FrameKind.KERNEL))


@pytest.mark.parametrize("token,name,kind,file,line", [
    ("do_sys_open_[k]", "do_sys_open", FrameKind.KERNEL, None, None),
    ("Interp.run_[j]", "Interp.run", FrameKind.JIT, None, None),
    ("inl_[i]", "inl", FrameKind.INLINED, None, None),
    ("wake_[w]", "wake", FrameKind.WAKER, None, None),
    ("java/lang/Thread.run_[0]", "java/lang/Thread.run", FrameKind.INTERPRETED, None, None),
    ("Foo.bar_[1]", "Foo.bar", FrameKind.C1, None, None),
    ("handle (app/views.py:42)", "handle", FrameKind.PYTHON, "app/views.py", 42),
    ("handle (app/views.py)", "handle", FrameKind.PYTHON, "app/views.py", None),
    ("<module> (<string>:1)", "<module>", FrameKind.PYTHON, "<string>", 1),
    ("Foo.bar (Foo.java:12)_[j]", "Foo.bar", FrameKind.JIT, "Foo.java", 12),
    ("h (a.js:10:5)", "h", FrameKind.UNKNOWN, "a.js:10", 5),     # the line is after the last colon
    ("a (b) (c.py:9)", "a (b)", FrameKind.PYTHON, "c.py", 9),    # the last (…) is the location
    ("thread (1234)", "thread (1234)", FrameKind.THREAD, None, None),  # py-spy's thread frame: a bare number is no file
    ("thread (1): Thread-1 (worker)", "thread (1): Thread-1 (worker)", FrameKind.THREAD, None, None),  # never split
    ("x (1234)", "x (1234)", FrameKind.UNKNOWN, None, None),            # a bare number is no file
    ("python3 [1234]", "python3 [1234]", FrameKind.PROCESS, None, None),  # profkit's process root frame
    ("[worker tid=12]", "[worker tid=12]", FrameKind.THREAD, None, None),  # async-profiler -t
    ("[process api]", "[process api]", FrameKind.PROCESS, None, None),    # keyed process and thread frames
    ("[thread MainThread]", "[thread MainThread]", FrameKind.THREAD, None, None),
    ("f (a.py:١٢)", "f", FrameKind.UNKNOWN, "a.py:١٢", None),   # only ASCII digits are a line
    ("[self]", "[self]", FrameKind.SYNTHETIC, None, None),
    ("plain name with spaces", "plain name with spaces", FrameKind.UNKNOWN, None, None),
    ("_[k]", "_[k]", FrameKind.UNKNOWN, None, None),       # nothing before the suffix: a name, not an annotation
    ("odd_[x]", "odd_[x]", FrameKind.UNKNOWN, None, None),  # unknown annotation letters stay in the name
])
def test_frame_token_round_trip(token, name, kind, file, line):
    f = Frame.from_token(token)
    assert (f.name, f.kind, f.file, f.line) == (name, kind, file, line)
    assert f.token == token
    assert f.key == function_key(split_kind(token)[0])


def test_integers_stay_integers_and_fractions_are_kept():
    p = make(("a;b", 2), ("a;b", 3))
    assert p.total == 5 and isinstance(p.total, int)
    q = make(("a;b", 2), ("a;c", 0.25))
    assert q.total == 2.25
    assert isinstance(p.scale(2).total, int) and p.scale(0.5).total == 2.5


def test_function_key_drops_line_numbers_and_normalises_names_only():
    assert function_key("handle (app/views.py:42)") == "handle (app/views.py)"
    assert function_key("handle (app/views.py)") == "handle (app/views.py)"
    assert function_key("java/lang/String.format") == "java.lang.String.format"  # one JVM spelling


def test_top_functions_self_and_total_count_recursion_once():
    p = make(("main;f;f;g", 4), ("main;f", 1), ("main;h", 5))
    self_top = p.top_functions(2, by="self")
    assert [s.key for s in self_top] == ["h", "g"] and self_top[0].self == 5
    total = {s.key: s.total for s in p.top_functions(10, by="total")}
    assert total == {"main": 10, "f": 5, "g": 4, "h": 5}


def test_top_functions_merges_lines_of_one_function():
    p = make(("main;handle (v.py:1)", 2), ("main;handle (v.py:9)", 3))
    assert p.top_functions(1)[0] == ("handle (v.py)", 5, 5)


def test_merge_filter_drop_idle():
    a = make(("main;work", 3), ("swapper;cpu_idle", 7))
    b = make(("main;work", 1))
    merged = a.merge(b)
    assert merged.total == 11
    assert merged.filter(r"^work$").total == 4
    assert merged.filter(r"^work$", exclude=True).total == 7
    assert merged.drop_idle().total == 4
    with pytest.raises(ValueError):
        a.merge(Profile("bytes"))


def test_drop_idle_knows_python_and_java_waits():
    p = make(("main;select (selectors.py:468)", 5), ("main;work (a.py:3)", 1),
             ("Thread.run;jdk/internal/misc/Unsafe.park", 4))
    assert p.drop_idle().total == 1


def test_sorted_items_orders_by_frame_names_root_first():
    p = make(("b;a", 1), ("a;z", 1), ("a;b", 1))
    names = [tuple(p.frame(i).name for i in k) for k, _ in p.sorted_items()]
    assert names == [("a", "b"), ("a", "z"), ("b", "a")]


def test_unknown_unit_is_rejected():
    with pytest.raises(ValueError):
        Profile("furlongs")


def test_bulk_function_keys_equal_the_per_frame_definition():
    import pathlib

    from profkit.model import _function_keys, _keyed_token_list

    def _keyed_tokens(tokens):
        return dict(zip(tokens, _keyed_token_list(list(tokens))))

    root = pathlib.Path(__file__).resolve().parents[1] / "data"
    tokens = set()
    for path in list(root.glob("*/*.txt")) + list(root.glob("*/*.collapsed")) + list(root.glob("*/results/*.folded")):
        for line in path.read_text(errors="replace").splitlines():
            tokens.update(line.rsplit(" ", 1)[0].split(";"))
    tokens |= {"handle (app/views.py:42)", "f (a.py:3)_[i]", "x_[k]", "_[k]", "a (b) (c.py:9)", "weird (x:y)",
               "<module> (<string>:1)", "java/lang/String.format_[j]", "odd_[x]", "tab\there (t.py:1)",
               "x (a:1) (b.py:2)", "x (a) (:5)", " (:5)", "f (:1)", "f (a.py:١٢)", "f (a.py:²)", "g (a.py:)",
               "h (a.py:12)_[k]", "i (b.py:3)_[x]", "j (c.py:4) ", "k(d.py:5)"}
    tokens = sorted(tokens)
    assert len(tokens) > 200
    keyed = _keyed_tokens(tokens)
    for t in tokens:
        assert keyed[t] == key_token(t), t
        # the structured frame agrees: its key is the function key of its text
        f = Frame.from_token(t)
        assert f.keyed().token == key_token(t), t
    # Stats keys of a keyed profile's frames are their names: never keyed a second time.
    bulk = _function_keys(sorted(set(keyed.values())), {})
    assert {t: bulk[keyed[t]] for t in tokens} == {t: function_key(split_kind(t)[0]) for t in tokens}
    assert _function_keys(["f (a:1)"], {}) == {"f (a:1)": "f (a:1)"}
    # A frame whose kind has no annotation keys by its own name.
    assert _function_keys(["n"], {"n": Frame("n", FrameKind.NATIVE, "z.py")})["n"] == "n (z.py)"
    # A name with ';' in it (not from folded text) is keyed on its own.
    assert _keyed_tokens(["a;b (c.py:1)", "d (e.py:2)"]) == {"a;b (c.py:1)": "a;b (c.py)", "d (e.py:2)": "d (e.py)"}


def test_whole_stack_keying_equals_keying_each_frame():
    import random

    from profkit.model import key_folded_stack

    rng = random.Random(11)
    alphabet = ["a", "b", " ", "(", ")", ":", "1", "42", "_[", "]", "k", "j", "x", "\n", "١", ".py", " (", ":7)"]
    for _ in range(20000):
        frames = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 9))) for _ in range(rng.randrange(1, 6))]
        expect = [key_token(t) for t in frames]
        assert key_folded_stack(";".join(frames)) == ";".join(expect), frames
        # and the structured frames agree with the text-level keying
        assert [Frame.from_token(t).keyed().token if t else t for t in frames] == expect, frames


def test_keyed_profile_drops_line_numbers_keeps_kinds_and_merges():
    p = make(("main;handle (v.py:1);q (db.py:5)", 2), ("main;handle (v.py:9);q (db.py:7)", 3), ("main;io_[k]", 1))
    k = p.keyed()
    assert dict(k.items()) == {("main", "handle (v.py)", "q (db.py)"): 5, ("main", "io_[k]"): 1}
    assert k.frames["io_[k]"].kind is FrameKind.KERNEL and k.total == p.total


def test_whole_stack_keying_equals_keying_each_frame_with_names_to_normalise():
    """The same, with the pieces of every normalisation: JVM slashes, lambda counters and
    hidden-class addresses, gcc clone suffixes, process and thread frames."""
    import random

    from profkit.model import key_folded_stack

    rng = random.Random(17)
    alphabet = ["a", "B", "/", ".", "$", "$$Lambda$", "18", "0x7f", "0xg", " [", "12", "]", "[", "tid=", " ",
                "thread (", "process ", '"', ":", ")", " (", ".py", ":3)", ".constprop.0", ".isra.", ".part.1", ".cold",
                "_[k]", "_[j]", "<init>", "[]", "java/lang/", "Thread.run", ": ", "(", "x"]
    for _ in range(30000):
        frames = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 7))) for _ in range(rng.randrange(1, 5))]
        expect = [key_token(t) for t in frames]
        assert key_folded_stack(";".join(frames)) == ";".join(expect), frames
        assert [Frame.from_token(t).keyed().token if t else t for t in frames] == expect, frames


@pytest.mark.parametrize("text,key", [
    ("java/lang/Thread.run", "java.lang.Thread.run"),                      # async-profiler and JFR spell it with slashes
    ("java.lang.Thread.run", "java.lang.Thread.run"),
    ("java/util/concurrent/ThreadPoolExecutor$Worker.run", "java.util.concurrent.ThreadPoolExecutor$Worker.run"),
    ("com/example/Foo$$Lambda$18.0x00007fcb0000d000.handle", "com.example.Foo$$Lambda.handle"),
    ("com.example.Foo$$Lambda$18/0x0000000800c03000.handle", "com.example.Foo$$Lambda.handle"),
    ("java/lang/invoke/LambdaForm$MH.0x0000000800c04400.invoke", "java.lang.invoke.LambdaForm$MH.invoke"),
    ("java/lang/Object[]", "java.lang.Object[]"),
    ("memcpy.constprop.0", "memcpy"), ("f.isra.0.part.3", "f"), ("h.cold", "h"), ("g.lto_priv.0", "g"),
    ("memcpy.constprop.0_[k]", "memcpy_[k]"),
    ("python3 [1234]", "[process python3]"),                              # profkit's process root
    ('process 99:"python3 app.py"', "[process python3 app.py]"),          # py-spy --subprocesses
    ("thread (0x7f12ab): MainThread", "[thread MainThread]"),            # py-spy --threads
    ("thread (1234)", "[thread]"),
    ("[worker-1 tid=55]", "[thread worker-1]"), ("[tid=5]", "[thread]"),  # async-profiler -t
    ("handle (app/views.py:42)", "handle (app/views.py)"),
    ("handle (app/v0x1/views.py:42)", "handle (app/v0x1/views.py)"),     # files are never normalised
    ("net/http.HandlerFunc.ServeHTTP", "net/http.HandlerFunc.ServeHTTP"),  # not a JVM class path
    ("/usr/lib/libc.so.6", "/usr/lib/libc.so.6"), ("[unknown]", "[unknown]"), ("byte[]", "byte[]"),
])
def test_keys_are_normalised(text, key):
    assert key_token(text) == key
    assert function_key(split_kind(text)[0]) + split_kind(text)[1] == key


def test_process_and_thread_keys_are_synthetic_and_pids_do_not_matter():
    a = make(("python3 [100];thread (0x1): MainThread;main (a.py:1);work (a.py:9)", 5))
    b = make(("python3 [200];thread (0x2): MainThread;main (a.py:1);work (a.py:12)", 5))
    assert dict(a.keyed().items()) == dict(b.keyed().items())
    (stack, _), = a.keyed().stacks()
    assert [f.kind for f in stack[:2]] == [FrameKind.PROCESS, FrameKind.THREAD]
    assert all(f.synthetic for f in stack[:2]) and not any(f.synthetic for f in stack[2:])
