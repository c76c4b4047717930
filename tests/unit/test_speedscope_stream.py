# SPDX-License-Identifier: Apache-2.0
"""py-spy speedscope captures are streamed (collectors/speedscope_stream.py): memory bounded by the
distinct stacks and a compact array per profile, the profile the same as the whole document gives."""
from __future__ import annotations

import json
import pathlib
import random
import subprocess
import sys
import tracemalloc
from collections import Counter

import ijson
import pytest

from collectors.pyspy import PySpyOptions, parse
from collectors.speedscope_stream import read_speedscope
from profkit.errors import CaptureFormatError
from profkit.inputs import Source


def _frames(n=60):
    return [{"name": f"fn{i}", "file": f"/app/mod{i % 5}.py", "line": i + 1} for i in range(n)]


def _write(path, samples_per_thread, threads=4, depth=(3, 6), stacks=300, seed=7):
    """A py-spy-like speedscope file, written in pieces (profiles first, shared after, as py-spy 0.4.3)."""
    rng = random.Random(seed)
    frames = _frames()
    table = [[rng.randrange(len(frames)) for _ in range(rng.randint(*depth))] for _ in range(stacks)]
    with open(path, "w") as fh:
        fh.write('{"$schema":"https://www.speedscope.app/file-format-schema.json","profiles":[')
        for t in range(threads):
            fh.write(("," if t else "") + json.dumps({"type": "sampled", "name": f'Thread {100 + t} "w{t}"',
                                                      "unit": "seconds", "startValue": 0.0, "endValue": 1.0})[:-1])
            fh.write(',"samples":[')
            for k in range(0, samples_per_thread, 10_000):
                chunk = [rng.choice(table) for _ in range(min(10_000, samples_per_thread - k))]
                fh.write(("," if k else "") + json.dumps(chunk, separators=(",", ":"))[1:-1])
            fh.write('],"weights":[' + ",".join(["0.01"] * samples_per_thread) + "]}")
        fh.write('],"shared":{"frames":' + json.dumps(frames) + '},"activeProfileIndex":null,'
                 '"exporter":"py-spy@0.4.3","name":"synthetic"}')


_MEASURE = """
import resource, sys
from collectors.pyspy import PySpyOptions, parse
from profkit.inputs import Source
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
prof = parse(Source(sys.argv[1]), PySpyOptions(format="speedscope"))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(prof.total, prof.meta.sample_rate, (after - before) * 1024)
"""


def test_a_large_capture_parses_in_bounded_memory(tmp_path):
    """500k samples: the parse's peak memory stays far under the ~100 MB json.loads alone holds for the
    document. Measured as the growth of a fresh interpreter's peak RSS (tracemalloc slows this parse 7×;
    benchmarks/bench_speedscope_stream.py measures both ways)."""
    path = tmp_path / "big.json"
    _write(path, 125_000)  # 4 threads × 125k samples, ~12 MB of JSON
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, timeout=120,
                         cwd=str(pathlib.Path(__file__).parents[2]))
    assert out.returncode == 0, out.stderr
    total, rate, grown = out.stdout.split()
    assert int(total) == 500_000 and float(rate) == 100
    assert int(grown) < 40 << 20, f"peak RSS grew {int(grown) >> 20} MiB"


def test_tracemalloc_peak_is_a_few_bytes_a_sample(tmp_path, monkeypatch):
    import collectors.speedscope_stream as stream

    monkeypatch.setattr(stream, "WHOLE_BYTES", 64 << 10)  # this 1 MB file streamed, as a large one is
    path = tmp_path / "mid.json"
    _write(path, 10_000)  # 40k samples
    tracemalloc.start()
    try:
        prof = parse(Source(str(path)), PySpyOptions(format="speedscope"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert prof.total == 40_000
    assert peak < 4 << 20, f"peak {peak >> 20} MiB"  # json.loads of the document alone: ~9 MiB


def test_the_streamed_profile_is_the_whole_document_s(tmp_path):
    path = tmp_path / "small.json"
    _write(path, 500, threads=3)
    doc = json.loads(path.read_text())  # the reference: the document read whole
    names = [f"{f['name']} ({f['file']}:{f['line']})" for f in doc["shared"]["frames"]]
    want = Counter()
    for p in doc["profiles"]:
        for stack in p["samples"]:
            want[";".join(names[k] for k in stack)] += 1
    prof = parse(Source(str(path)), PySpyOptions(format="speedscope"))
    got = Counter()
    for stack, w in prof.stacks():
        got[";".join(f"{f.name} ({f.file}:{f.line})" for f in stack)] += w
    assert got == want


def test_the_reader_keeps_distinct_stacks_once_and_each_sample_as_an_id(tmp_path):
    path = tmp_path / "s.json"
    _write(path, 2000, threads=2, stacks=10)
    data = read_speedscope(Source(str(path)))
    assert len(data.stacks) <= 10 and len(set(data.stacks)) == len(data.stacks)
    assert [len(p.samples) for p in data.profiles] == [2000, 2000]
    assert data.profiles[0].samples.itemsize == 4 and data.exporter == "py-spy@0.4.3" and len(data.frames) == 60
    assert ijson.backend in ("yajl2_c", "yajl2_cffi", "yajl2", "yajl", "python")


def test_the_pure_python_backend_reads_the_same(tmp_path, monkeypatch):
    """Without ijson's C backend (yajl2_c) ijson falls back to its Python one: slower, same result."""
    import collectors.speedscope_stream as stream

    path = tmp_path / "s.json"
    _write(path, 300, threads=2)
    want = parse(Source(str(path)), PySpyOptions(format="speedscope")).sorted_items()
    monkeypatch.setattr(stream, "_parse", ijson.get_backend("python").parse)
    assert parse(Source(str(path)), PySpyOptions(format="speedscope")).sorted_items() == want


_ODD = (b'{"profiles":[{"type":"sampled","name":"Thread 7 \\"x\\"","unit":"none","meta":{"a":[1]},"flag":true,'
        b'"samples":[[0,1],[0,1.5],"x",{"k":[1]},[0,[2,3],null],[true],[1,0],[0,1]],'
        b'"weights":[1,2,"w",false,null,3,4.5,1]},7,{"type":"evented","events":[]},'
        b'{"type":"sampled","samples":"none","weights":[1]}],'
        b'"shared":{"frames":[{"name":"a","file":"/a.py","line":1},{"name":"b"}]},"exporter":"py-spy@0.4.3"}')


def _comparable(data):
    """A Speedscope as plain values (NaN weights as the string 'nan': NaN != NaN)."""
    return (data.frames, data.exporter, data.stacks,
            [(p.index, p.fields, None if p.samples is None else list(p.samples),
              None if p.weights is None else [w if w == w else "nan" for w in p.weights], p.texts, p.wtexts)
             for p in data.profiles or []] if data.profiles is not None else None)


def test_a_small_file_read_whole_gives_what_the_stream_gives(tmp_path, monkeypatch):
    """Files up to WHOLE_BYTES are parsed whole (orjson: an agent window's capture in a tenth of the
    time); the result is the stream's, field for field, malformed samples and weights included."""
    import collectors.speedscope_stream as stream

    files = {"odd": _ODD, "synthetic": None, "fixture": (pathlib.Path(__file__).parents[1] / "data" / "py-spy" /
                                                        "speedscope.json").read_bytes()}
    path = tmp_path / "synthetic.json"
    _write(path, 400, threads=3)
    files["synthetic"] = path.read_bytes()
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        for weights in (True, False):
            whole = read_speedscope(Source(str(tmp_path / name)), weights=weights)
            with monkeypatch.context() as m:
                m.setattr(stream, "WHOLE_BYTES", 0)  # streamed
                streamed = read_speedscope(Source(str(tmp_path / name)), weights=weights)
            assert _comparable(whole) == _comparable(streamed), name
    odd = read_speedscope(Source(str(tmp_path / "odd")))
    assert [len(p.samples) if p.samples is not None else None for p in odd.profiles] == [8, None, None, None]
    assert odd.profiles[0].fields["meta"] is stream.COMPOUND and sorted(odd.profiles[0].texts) == [1, 2, 3, 4, 5]
    # not JSON: the stream's one-line error, whichever way it was read
    (tmp_path / "cut").write_bytes(_ODD[:120])
    with pytest.raises(CaptureFormatError, match="truncated or invalid speedscope JSON"):
        read_speedscope(Source(str(tmp_path / "cut")))
