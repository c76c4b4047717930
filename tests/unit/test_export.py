# SPDX-License-Identifier: Apache-2.0
"""Exports (speedscope, pprof) and the pull-request comment of profkit compare."""
import gzip
import io
import json
import os
import pathlib
import shutil
import subprocess


from profkit.comment import comment_markdown, redact_token, shorten_key
from profkit.compare import compare_functions
from profkit.export import pprof_bytes, speedscope_document, write_speedscope
from profkit.model import Profile

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
HOSTILE = ['"quoted"', "a&b", "</script><svg onload=alert(1)>", "semi;colon name", "[x](javascript:y) *bold* `code` |pipe|",
           "bad\udcffutf8 (f.py:1)"]


def sample_profile():
    p = Profile()
    p.add(["main (app/main.py:3)", "work (app/work.py:10)", "hot (app/work.py:20)"], 30)
    p.add(["main (app/main.py:3)", "work (app/work.py:10)"], 5)
    p.add(["main (app/main.py:3)", "other (lib/x.py:7)"], 10)
    return p


# -- speedscope ----------------------------------------------------------------------------
def test_speedscope_validates_against_the_shipped_schema():
    import jsonschema
    schema = json.loads((DATA / "speedscope" / "file-format-schema.json").read_text())
    p = sample_profile()
    for name in HOSTILE:
        p.add(["main (app/main.py:3)", name], 1)
    buf = io.StringIO()
    write_speedscope(p, buf, name="t")
    doc = json.loads(buf.getvalue())
    jsonschema.validate(doc, schema)
    prof = doc["profiles"][0]
    assert prof["type"] == "sampled" and prof["unit"] == "none" and prof["endValue"] == p.total
    assert len(prof["samples"]) == len(prof["weights"]) == len(p)
    frames = doc["shared"]["frames"]
    hot = next(f for f in frames if f["name"] == "hot")
    assert hot == {"name": "hot", "file": "app/work.py", "line": 20}
    # root → leaf
    heaviest = prof["samples"][prof["weights"].index(30)]
    assert [frames[i]["name"] for i in heaviest] == ["main", "work", "hot"]


def test_speedscope_units():
    p = Profile("nanoseconds")
    p.add(["a"], 5)
    assert speedscope_document(p)["profiles"][0]["unit"] == "nanoseconds"


# -- pprof: decoded by a minimal protobuf reader written for the test ---------------------
def _fields(data):
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(data, i)
        elif wire == 2:
            n, i = _varint(data, i)
            v, i = data[i:i + n], i + n
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        yield field, v


def _varint(data, i):
    shift = n = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def _packed(data):
    out, i = [], 0
    while i < len(data):
        v, i = _varint(data, i)
        out.append(v)
    return out


def decode(blob):
    raw = gzip.decompress(blob)
    prof = {"strings": [], "sample_type": [], "samples": [], "locations": {}, "functions": {}}
    for f, v in _fields(raw):
        if f == 6:
            prof["strings"].append(v.decode("utf-8"))  # strict: protobuf strings must be valid UTF-8
        elif f == 1:
            prof["sample_type"].append(dict(_fields(v)))
        elif f == 2:
            d = {}
            for ff, vv in _fields(v):
                d[ff] = _packed(vv)
            prof["samples"].append(d)
        elif f == 4:
            d = dict((ff, vv) for ff, vv in _fields(v))
            line = dict(_fields(d[4]))
            prof["locations"][d[1]] = line
        elif f == 5:
            d = dict(_fields(v))
            prof["functions"][d[1]] = d
        else:
            prof[f] = v
    return prof


def test_pprof_structure():
    p = sample_profile()
    prof = decode(pprof_bytes(p, rate=100, mode="wall", duration=2.0))
    s = prof["strings"]
    assert s[0] == ""
    assert [(s[t[1]], s[t[2]]) for t in prof["sample_type"]] == [("samples", "count"), ("wall", "nanoseconds")]
    assert sum(x[2][0] for x in prof["samples"]) == 45
    assert all(x[2][1] == x[2][0] * 10_000_000 for x in prof["samples"])
    assert prof[12] == 10_000_000 and s[prof[14]] == "wall"  # period, default_sample_type

    def names(sample):
        return [s[prof["functions"][prof["locations"][lid][1]][2]] for lid in sample[1]]
    heaviest = max(prof["samples"], key=lambda x: x[2][0])
    assert names(heaviest) == ["hot", "work", "main"]  # leaf first
    hot_fn = next(f for f in prof["functions"].values() if s[f[2]] == "hot")
    assert s[hot_fn[4]] == "app/work.py"


def test_pprof_hostile_names_survive():
    p = Profile()
    for name in HOSTILE:
        p.add(["root", name], 2)
    prof = decode(pprof_bytes(p))
    # an undecodable byte of a frame name is shown as U+FFFD: strict readers get valid UTF-8
    assert {"</script><svg onload=alert(1)>", "semi;colon name", "bad\ufffdutf8"} <= set(prof["strings"])


GO = shutil.which("go") or ("/usr/local/go/bin/go" if os.path.exists("/usr/local/go/bin/go") else None)


def test_go_tool_pprof_reads_it_back(tmp_path):
    assert GO, "Go is not installed (go tool pprof reads the export back; .ci/run installs it)"
    p = sample_profile()
    path = tmp_path / "p.pb.gz"
    path.write_bytes(pprof_bytes(p, rate=100))
    env = dict(os.environ, PPROF_TMPDIR=str(tmp_path))
    top = subprocess.run([GO, "tool", "pprof", "-top", "-sample_index=samples", str(path)], capture_output=True,
                         text=True, timeout=120, env=env)
    assert top.returncode == 0, top.stderr
    assert "of 45 total" in top.stdout
    rows = [line.split() for line in top.stdout.splitlines() if line.strip().endswith(("hot", "other", "work", "main"))]
    assert rows[0][0] == "30" and rows[0][-1] == "hot"  # the top function by flat
    raw = subprocess.run([GO, "tool", "pprof", "-raw", str(path)], capture_output=True, text=True, timeout=120, env=env)
    assert raw.returncode == 0, raw.stderr
    assert "samples/count cpu/nanoseconds" in raw.stdout and "hot app/work.py:20" in raw.stdout


# -- comment.md ----------------------------------------------------------------------------
def test_paths_shortened_and_redacted():
    assert shorten_key("get (/home/ci/.venv/lib/python3.11/site-packages/flask/app.py)") == "get (flask/app.py)"
    assert shorten_key("charge (/srv/build/examples/checkout/services.py)") == "charge (…/checkout/services.py)"
    assert shorten_key("f (app.py)") == "f (app.py)" and shorten_key("native_fn") == "native_fn"
    assert shorten_key("charge (/srv/a/b.py)", redact=True) == "charge"
    assert redact_token("charge (/srv/a/b.py:12)") == "charge" and redact_token("do_sys_open_[k]") == "do_sys_open_[k]"


def test_comment_escapes_and_orders():
    base, head = Profile(), Profile()
    base.add(["main (/x/app.py:1)", "fast (/x/app.py:5)"], 90)
    base.add(["main (/x/app.py:1)"], 10)
    head.add(["main (/x/app.py:1)", "fast (/x/app.py:5)"], 40)
    head.add(["main (/x/app.py:1)", "</script><img src=x onerror=1> |a| [l](u) (/x/app.py:9)"], 60)
    text = comment_markdown(compare_functions(base, head), base_label="base", head_label="head|<b>", base_load=None,
                            head_load=None, base_slo=None, head_slo=None, threshold=5.0, files={"diff": "out/diff.svg"})
    assert "<script" not in text and "<img" not in text and "<b>" not in text
    assert "\\|a\\|" in text and "\\[l\\](u)" in text
    regressed = text.split("### Top regressed functions")[1].split("###")[0]
    first_row = [line for line in regressed.splitlines() if line.startswith("| ") and "function" not in line][0]
    assert "&lt;/script&gt;" in first_row and "+60.00" in first_row
    assert "Regression gate failed" in text and "`out/diff.svg`" in text
