# SPDX-License-Identifier: Apache-2.0
"""Flame graph layout, colours, escaping, options and SVG goldens (``--bless`` rewrites them)."""
import io
import os
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

import pytest

from flamegraph import FlameGraphOptions, embed_html, render_svg
from flamegraph.layout import layout
from flamegraph.palette import Palette
from flamegraph.svg import MAX_NAME, clip_label
from profkit.errors import UsageError
from profkit.folded import read_folded
from profkit.model import Frame, FrameKind, Profile

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "flamegraph"
ROOT = pathlib.Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
P = "{urn:profkit:flamegraph}"


def folded(text, unit="samples"):
    return read_folded(io.StringIO(text), unit=unit)


def svg_of(profile, **opts):
    out = io.StringIO()
    render_svg(profile, FlameGraphOptions(**opts), out)
    return out.getvalue()


def frames_of(svg_text):
    """[(name, info, x, w, rect attributes, label)] for each frame of an SVG."""
    root = ET.fromstring(svg_text)
    group = next(g for g in root.iter(SVG + "g") if g.get("class") == "frames")
    out = []
    for g in group.findall(SVG + "g"):
        name, info = g.find(SVG + "title").text.split("\n", 1)
        text = g.find(SVG + "text")
        out.append((name, info, float(g.get(P + "x")), float(g.get(P + "w")), g.find(SVG + "rect").attrib,
                    None if text is None else text.text))
    return out


def by_name(frames):
    return {f[0]: f for f in frames}


# -- layout -------------------------------------------------------------------------------
TINY = "main;b;x 3\nmain;a 2\nmain;a;y 4\nmain 1\nother 5\n"


def test_layout_positions_widths_and_alphabetical_order():
    p = folded(TINY)
    lay = layout(p)
    names = {b: ("all" if b.fid is None else p.frames[b.fid].name) for b in lay.boxes}
    got = {(names[b], b.depth): (b.x, b.w) for b in lay.boxes}
    assert got[("all", 0)] == (0, 15)
    # siblings alphabetical: main before other
    assert got[("main", 1)] == (0, 10) and got[("other", 1)] == (10, 5)
    # main's own weight (1) sits on the left of its children; a before b
    assert got[("a", 2)] == (1, 6) and got[("b", 2)] == (7, 3)
    # a's self weight (2) first, then y
    assert got[("y", 3)] == (3, 4) and got[("x", 3)] == (7, 3)
    assert lay.max_depth == 3
    # every parent comes before its children, and children fit inside their parent
    for i, b in enumerate(lay.boxes):
        kids = [k for k in lay.boxes if k.parent == i]
        assert sum(k.w for k in kids) <= b.w
        for k in kids:
            assert b.x <= k.x and k.x + k.w <= b.x + b.w and lay.boxes.index(k) > i


def test_layout_does_not_depend_on_insertion_order():
    lines = TINY.splitlines(True)
    a = svg_of(folded("".join(lines)), interactive=False)
    b = svg_of(folded("".join(reversed(lines))), interactive=False)
    assert a == b


def test_minwidth_prunes_frames_but_keeps_their_weight():
    text = "main;big 900\n" + "".join(f"main;tiny{i};deeper 1\n" for i in range(100))
    p = folded(text)
    full = by_name(frames_of(svg_of(p, minwidth="0")))
    assert "tiny0" in full and "deeper" in full
    pruned = frames_of(svg_of(p, minwidth="1%"))
    names = [f[0] for f in pruned]
    assert names == ["all", "main", "big"]
    f = by_name(pruned)
    assert f["all"][3] == 1000 and f["main"][3] == 1000 and f["big"][3] == 900
    assert f["main"][1] == "1,000 samples, 100.00%"
    # pixels: 0.1 px of 1180 px is ~0.0085% of the total, so 1-sample frames survive here
    assert "tiny0" in by_name(frames_of(svg_of(p, minwidth="0.1")))
    assert "tiny0" not in by_name(frames_of(svg_of(p, minwidth="2")))


def test_icicle_puts_the_root_on_top():
    p = folded(TINY)
    flame = by_name(frames_of(svg_of(p)))
    icicle = by_name(frames_of(svg_of(p, inverted=True)))
    assert float(flame["all"][4]["y"]) > float(flame["main"][4]["y"]) > float(flame["a"][4]["y"])
    assert float(icicle["all"][4]["y"]) < float(icicle["main"][4]["y"]) < float(icicle["a"][4]["y"])
    assert ">Icicle Graph<" in svg_of(p, inverted=True) and ">Flame Graph<" in svg_of(p)
    assert ">Mine<" in svg_of(p, inverted=True, title="Mine")


def test_reverse_merges_stacks_by_leaf():
    p = folded("a;work 3\nb;work 2\nc;other 1\n")
    frames = frames_of(svg_of(p, reverse=True))
    depth1 = sorted((f[0], f[3]) for f in frames if f[0] in ("work", "other"))
    assert depth1 == [("other", 1), ("work", 5)]
    callers = [(f[0], f[2], f[3]) for f in frames if f[0] in ("a", "b")]
    assert callers == [("a", 1, 3), ("b", 4, 2)]


def test_empty_profile_gives_a_valid_svg_with_a_message():
    text = svg_of(Profile())
    ET.fromstring(text)
    assert "No stack counts found" in text and frames_of(text) == []


def test_float_weights_and_countname():
    p = folded("a;b 1.5\na 0.25\n", unit="bytes")
    f = by_name(frames_of(svg_of(p)))
    assert f["all"][3] == 1.75 and f["b"][1] == "1.5 bytes, 85.71%"
    f = by_name(frames_of(svg_of(p, countname="allocations")))
    assert f["a"][1] == "1.75 allocations, 100.00%"


def test_labels_are_clipped_with_two_dots():
    assert clip_label("handle_request", 1000, 12) == "handle_request"
    assert clip_label("handle_request", 60, 12) == "handle.."
    assert clip_label("handle_request", 20, 12) == ""
    frames = by_name(frames_of(svg_of(folded("a_rather_long_function_name 1\nb 400\n"))))
    # 1 of 401 samples: a frame about 3 px wide, too narrow for even a clipped label
    assert frames["a_rather_long_function_name"][5] is None


# -- determinism and colours --------------------------------------------------------------
def test_renders_are_byte_identical_and_independent_of_the_hash_seed(tmp_path):
    src = DATA / "simple.folded"
    p = read_folded(src.open())
    assert svg_of(p) == svg_of(p)
    code = ("import io,sys; from profkit.folded import read_folded; from flamegraph import render_svg;"
            "out=io.StringIO(); render_svg(read_folded(open(sys.argv[1])), None, out); sys.stdout.write(out.getvalue())")
    runs = [subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, text=True, check=True,
                           env=dict(os.environ, PYTHONHASHSEED=seed)).stdout for seed in ("1", "2")]
    assert runs[0] == runs[1] == svg_of(p)


def test_a_function_keeps_its_colour_across_graphs_and_lines():
    one = by_name(frames_of(svg_of(folded("main;handle (app.py:10);query 5\n"))))
    two = by_name(frames_of(svg_of(folded("x;y;z;query 1\nx;handle (app.py:99) 7\n"))))
    assert one["query"][4]["fill"] == two["query"][4]["fill"]
    # the same function at another line: same colour (keyed without the line number)
    assert one["handle (app.py:10)"][4]["fill"] == two["handle (app.py:99)"][4]["fill"]
    assert one["main"][4]["fill"] != one["query"][4]["fill"]


def rgb(hexcolor):
    return tuple(int(hexcolor[i:i + 2], 16) for i in (1, 3, 5))


@pytest.mark.parametrize("scheme, check", [
    ("hot", lambda r, g, b: r >= 205 and b <= 55),
    ("mem", lambda r, g, b: g >= 190 and r == 0),
    ("io", lambda r, g, b: b >= 190 and b > r),
    ("wakeup", lambda r, g, b: g >= 165 and b >= 165 and r <= 110),
])
def test_plain_schemes_have_their_hue(scheme, check):
    pal = Palette(scheme)
    for name in ("main", "parse_json", "std::vector<int>::push_back", "x"):
        assert check(*rgb(pal.color(Frame(name))))


def test_java_scheme_uses_kinds_and_name_shapes():
    pal = Palette("java")
    jit = rgb(pal.color(Frame("java/lang/String.getBytes", FrameKind.JIT)))
    inlined = rgb(pal.color(Frame("com/example/Json.write", FrameKind.INLINED)))
    kernel = rgb(pal.color(Frame("do_syscall_64", FrameKind.KERNEL)))
    cpp = rgb(pal.color(Frame("GCTaskThread::run")))
    java_plain = rgb(pal.color(Frame("java/lang/Thread.run")))
    native = rgb(pal.color(Frame("__libc_recv")))
    assert jit[1] > jit[0] and jit[1] > jit[2]                  # green
    assert inlined[1] > inlined[0] and inlined[2] > inlined[0]  # aqua
    assert kernel[0] > 200 and 100 < kernel[1] < 180 and kernel[2] < 60  # orange
    assert cpp[0] > 150 and cpp[1] > 150 and cpp[2] < 120       # yellow
    assert java_plain[1] > java_plain[0]                        # green
    assert native[0] >= 200 and native[1] <= 100                # red


def test_python_scheme_tells_app_stdlib_third_party_and_native_apart():
    pal = Palette("python")

    def family(token):
        r, g, b = rgb(pal.color(Frame.from_token(token)))
        if r > b:
            return "native"
        if r >= 150 and b >= 210:
            return "third-party"
        if g >= 185 and b < 210:
            return "stdlib"
        return "app"

    assert family("PyUnicode_Concat") == "native"
    assert family("handle (app/views.py:12)") == family("main (app.py:40)") == "app"
    assert family("encode (json/encoder.py:199)") == family("sleep (time.py:1)") == "stdlib"
    assert family("get (/usr/lib/python3/site-packages/requests/api.py:70)") == "third-party"


def test_kinds_colour_sensibly_under_every_scheme():
    for scheme in ("hot", "mem", "io", "wakeup", "python", "java"):
        pal = Palette(scheme)
        kernel = rgb(pal.color(Frame("do_syscall_64", FrameKind.KERNEL)))
        synthetic = rgb(pal.color(Frame("[collector error: boom]", FrameKind.SYNTHETIC)))
        assert kernel[0] > 200 and kernel[2] < 60, scheme
        assert synthetic[0] == synthetic[1] == synthetic[2], scheme


# -- escaping -----------------------------------------------------------------------------
HOSTILE = [
    "<script>alert(1)</script>",
    "</script><script>window.pwned=1</script>",
    "]]>",
    "<![CDATA[x]]>",
    '"double" & \'single\'',
    "<svg onload=alert(1)>",
    "a;b c",  # the folded separator can only arrive through the model, not folded text
    "&amp; &lt; &#x41;",
    "</title></g></svg>",
    "tab\there",
    "x" * 3000,
    "emoji 🔥 and ünïcödé",
]
# Characters XML 1.0 cannot carry at all: replaced with U+FFFD.
UNREPRESENTABLE = {
    "nul\x00byte": "nul\ufffdbyte",
    "bell\x07 esc\x1b": "bell\ufffd esc\ufffd",
    "line\nbreak\rcr": "line\ufffdbreak\ufffdcr",
    "bad utf-8 \udcff\udcfe": "bad utf-8 \ufffd\ufffd",
    "nonchar \ufffe\uffff": "nonchar \ufffd\ufffd",
}


def hostile_profile(names):
    p = Profile()
    for i, name in enumerate(names):
        p.add([Frame("main"), Frame(name)], 10 + i)
    return p


@pytest.mark.parametrize("interactive", [True, False])
@pytest.mark.parametrize("pretty", [True, False])
def test_hostile_names_stay_text(interactive, pretty):
    names = HOSTILE + list(UNREPRESENTABLE)
    text = svg_of(hostile_profile(names), interactive=interactive, pretty=pretty)
    root = ET.fromstring(text.encode("utf-8"))  # well-formed, and encodable as UTF-8
    titles = [f[0] for f in frames_of(text)]
    expected = [UNREPRESENTABLE.get(n, n) for n in names]
    assert sorted(titles) == sorted(["all", "main"] + expected)
    # labels are prefixes of the names, never markup
    for name, _, _, _, _, label in frames_of(text):
        if label:
            assert label == name or (label.endswith("..") and name.startswith(label[:-2]))
    scripts = list(root.iter(SVG + "script"))
    assert len(scripts) == (1 if interactive else 0)
    for s in scripts:
        assert "alert" not in s.text and "pwned" not in s.text
    assert len(list(root.iter(SVG + "svg"))) == 1 and root.tag == SVG + "svg"  # no injected <svg>
    assert [e.tag for e in root.iter() if "onload" in e.attrib] == []


def test_absurdly_long_names_are_cut():
    name = "f" * (MAX_NAME * 3)
    title = frames_of(svg_of(hostile_profile([name])))[-1][0]
    assert title.startswith("f" * MAX_NAME) and title.endswith(f"[{MAX_NAME * 2} more characters]")


def test_title_subtitle_and_font_are_escaped():
    text = svg_of(folded("a 1\n"), title='<b>"t"</b>', subtitle="s & </text>", font_type='x" onload="y')
    root = ET.fromstring(text)
    assert root.get("font-family") == 'x" onload="y' and "onload" not in root.attrib
    texts = {t.get("class"): t.text for t in root.iter(SVG + "text")}
    assert texts["title"] == '<b>"t"</b>' and texts["subtitle"] == "s & </text>"


# -- ids and embedding --------------------------------------------------------------------
def ids_of(text):
    return [e.get("id") for e in ET.fromstring(text).iter() if e.get("id")]


def test_every_id_carries_the_graph_prefix():
    text = svg_of(folded(TINY))
    root = ET.fromstring(text)
    prefix = root.get("id")
    assert prefix.startswith("fg") and all(i == prefix or i.startswith(prefix + "-") for i in ids_of(text))
    assert ET.fromstring(svg_of(folded(TINY), name_prefix="left")).get("id") == "left"
    # different content, different prefix; same content, same prefix
    assert ET.fromstring(svg_of(folded("z 1\n"))).get("id") != prefix
    assert ET.fromstring(svg_of(folded(TINY))).get("id") == prefix
    # url(#…) references point inside the graph
    for e in root.iter():
        for v in e.attrib.values():
            if v.startswith("url(#"):
                assert v[5:-1] in ids_of(text)


def test_embed_html_puts_two_graphs_on_one_page():
    a = svg_of(folded(TINY))
    b = svg_of(folded("z;y 3\n"))
    page = embed_html([a, b], title="Two <graphs>", captions=["first & best", "second"])
    assert "<title>Two &lt;graphs&gt;</title>" in page and "first &amp; best" in page
    assert page.count("<svg ") == 2 and "<?xml" not in page
    with pytest.raises(ValueError, match="name_prefix"):
        embed_html([a, a])
    same = [svg_of(folded(TINY), name_prefix=f"g{i}") for i in (1, 2)]
    assert embed_html(same).count('class="pkfg"') == 2
    with pytest.raises(ValueError, match="well-formed"):
        embed_html(["<svg>"])


# -- options ------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["lots", "-1", "1e3", "101%", "%", "", "0.1px", "nan"])
def test_bad_minwidth_is_a_usage_error(value):
    with pytest.raises(UsageError, match="minwidth"):
        FlameGraphOptions(minwidth=value)


def test_minwidth_in_pixels_and_percent():
    assert FlameGraphOptions(minwidth="0.5%").min_weight(1000) == 5
    assert FlameGraphOptions(minwidth="1180", width=1200).min_weight(1000) == 1000
    assert FlameGraphOptions(minwidth=" .5 ").min_weight(1180) == 0.5


@pytest.mark.parametrize("field, value", [("colors", "rainbow"), ("width", 10), ("height", 0),
                                          ("font_size", 0), ("name_prefix", "1bad"), ("name_prefix", 'a"b')])
def test_bad_options_are_usage_errors(field, value):
    with pytest.raises(UsageError):
        FlameGraphOptions(**{field: value})


def test_every_option_has_help():
    from profkit.options import describe

    for name, flag, default, help_text, choices in describe(FlameGraphOptions):
        assert help_text, name
    assert any(d[1] == "--interactive/--static" for d in describe(FlameGraphOptions))


def test_static_graphs_leave_out_the_script_and_controls():
    text = svg_of(folded(TINY), interactive=False)
    assert "<script" not in text and "Reset Zoom" not in text and "<style" not in text
    text = svg_of(folded(TINY))
    assert text.count("<script") == 1 and "Reset Zoom" in text and "Search" in text


# -- goldens ------------------------------------------------------------------------------
GOLDEN_CASES = [
    ("simple", {}),
    ("simple", {"inverted": True}),
    ("simple", {"reverse": True}),
    ("simple", {"colors": "python"}),
    ("simple", {"minwidth": "10%"}),
    ("java", {"colors": "java"}),
    ("hostile", {}),
]


def case_id(case, opts):
    return case + "".join(f"-{k}={v}" for k, v in sorted(opts.items())) if opts else case + "-default"


@pytest.mark.parametrize("case, opts", GOLDEN_CASES, ids=[case_id(*c) for c in GOLDEN_CASES])
def test_svg_goldens(case, opts, request):
    profile = read_folded((DATA / f"{case}.folded").open())
    got = svg_of(profile, interactive=False, pretty=True, **opts)
    check_golden(DATA / "results" / (case_id(case, opts).replace("%", "pct") + ".svg"), got, request)


def check_golden(path, got, request):
    """Compare with a golden file; ``--bless`` rewrites it, a missing one is written and fails."""
    if request.config.getoption("--bless") or not path.exists():
        existed = path.exists()
        path.write_text(got, encoding="utf-8")
        if not existed and not request.config.getoption("--bless"):
            pytest.fail(f"golden {path.name} was missing and has been written; check it and rerun")
        return
    assert got == path.read_text(encoding="utf-8"), f"{path.name} differs; rerun with --bless if intended"


# -- packaging ----------------------------------------------------------------------------
@pytest.mark.slow
def test_assets_are_in_the_wheel(tmp_path):
    import importlib.util

    # Without hatchling in this environment, pip fetches it into an isolated build env.
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "-w", str(tmp_path), "--no-deps", "-q",
                    *isolation], check=True, capture_output=True)
    wheel = next(tmp_path.glob("profkit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in ("flamegraph.js", "flamegraph.css", "embed.html"):
        assert f"flamegraph/assets/{asset}" in names
