# SPDX-License-Identifier: Apache-2.0
"""Folded text, read and written with flamegraph.pl's rules."""
import gzip
import io

import pytest

from profkit.errors import Diagnostics, InputError
from profkit.folded import format_weight, parse_line, read_folded, write_folded
from profkit.inputs import MAX_LINE, Source


def roundtrip(text):
    diag = Diagnostics()
    p = read_folded(io.StringIO(text), diag)
    out = io.StringIO()
    write_folded(p, out)
    return out.getvalue(), diag


@pytest.mark.parametrize("line,expected", [
    ("a;b;c 12", ("a;b;c", 12, None)),
    ("a;b c;d 12", ("a;b c;d", 12, None)),          # spaces inside frame names
    ("a;b\t7", ("a;b", 7, None)),
    ("a;b 12.5", ("a;b", 12.5, None)),
    ("a;b 3.", ("a;b", 3.0, None)),
    ("a;b 5 9", ("a;b", 5, 9)),                     # differential: before after
    ("a;b -3", None),                               # negative counts are rejected
    ("a;b 1e5", None),                              # no exponent form
    ("a;b .5", None),
    ("a;b", None),
    ("12", None),
])
def test_parse_line(line, expected):
    assert parse_line(line) == expected


def test_round_trip_sorts_merges_and_keeps_annotations():
    out, diag = roundtrip("b;x_[k] 1\na;y_[j] 2\n\na;y_[j] 3\n")
    assert out == "a;y_[j] 5\nb;x_[k] 1\n"
    assert diag.malformed_count == 0


def test_written_in_the_order_of_the_stacks():
    """As stackcollapse-perf.pl sorts its stacks (then appends the counts): a stack comes before
    the longer ones it begins, whatever character follows, a NUL in a name included."""
    text = "a -b 3\na\tb 4\na 5\na b 6\na;b 7\nc\x00d 1\nc 2\n"
    out, _ = roundtrip(text)
    assert out == "a 5\na\tb 4\na -b 3\na b 6\na;b 7\nc 2\nc\x00d 1\n"
    assert roundtrip(text.replace("c\x00d 1\n", ""))[0] == "a 5\na\tb 4\na -b 3\na b 6\na;b 7\nc 2\n"


def test_malformed_lines_are_counted_not_fatal():
    out, diag = roundtrip("a;b 1\nnot a stack\n\n# comment 1x\na;b -2\n")
    assert out == "a;b 1\n"
    assert diag.malformed_count == 3
    assert diag.messages()[0].startswith("ignored 3 malformed lines")


def test_differential_lines_count_the_after_column():
    out, _ = roundtrip("a;b 5 9\n")
    assert out == "a;b 9\n"


def test_fractional_counts_survive():
    out, _ = roundtrip("a 0.25\na 0.5\nb 2.\n")
    assert out == "a 0.75\nb 2\n"


def test_format_weight_never_uses_exponents():
    assert format_weight(3) == "3"
    assert format_weight(1e-7) == "0.0000001"
    assert format_weight(2.0) == "2"
    assert "e" not in format_weight(1.5e17)


def test_invalid_utf8_survives_a_round_trip(tmp_path):
    raw = b"main;caf\xe9 3\n"
    path = tmp_path / "x.folded"
    path.write_bytes(raw)
    src = Source(str(path))
    p = read_folded(src.text_lines(), src.diag)
    out = io.StringIO()
    write_folded(p, out)
    assert out.getvalue().encode("utf-8", "surrogateescape") == raw


def test_gzip_is_read_transparently(tmp_path):
    path = tmp_path / "x.folded.gz"
    path.write_bytes(gzip.compress(b"a;b 2\n"))
    src = Source(str(path))
    assert read_folded(src.text_lines()).total == 2


def test_truncated_gzip_is_an_input_error(tmp_path):
    data = gzip.compress(b"a;b 2\n" * 100000)
    path = tmp_path / "x.folded.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt gzip"):
        read_folded(Source(str(path)).text_lines())


@pytest.mark.parametrize("content,message", [
    (b"", "empty input"),
    (b"\x00\x01\x02junk\xff" * 100, "binary data"),
])
def test_empty_and_binary_inputs(tmp_path, content, message):
    path = tmp_path / "in"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        list(Source(str(path)).text_lines())


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        Source(str(tmp_path / "nope")).head()
    with pytest.raises(InputError, match="is a directory"):
        Source(str(tmp_path)).head()


def test_huge_lines_are_skipped_not_held(tmp_path):
    path = tmp_path / "huge.folded"
    with open(path, "wb") as fh:
        fh.write(b"a;b 1\n")
        fh.write(b"x" * (MAX_LINE + 10) + b" 5\n")
        fh.write(b"a;c 2\n")
    src = Source(str(path))
    p = read_folded(src.text_lines(), src.diag)
    assert p.total == 3
    assert src.diag.malformed_count == 1
    assert any("longer than" in w for w in src.diag.warnings)


def test_reading_keyed_equals_keying_what_was_read():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "data"
    texts = [p.read_text(errors="surrogateescape") for p in root.glob("*/results/*.folded")]
    texts.append("main (app.py:1);handle (v.py:12);q (db.py:5) 2\n"
                 "main (app.py:2);handle (v.py:40);q (db.py:9) 3\n"
                 "main (app.py:1);handle (v.py:12)_[j] 4 7\n"      # differential: the after column counts
                 "main (app.py:1);f (a:1:2);k_[k] 1.5\n"           # a second ':N' is part of the name
                 "not a folded line\n"
                 "lead (x.py:3) (y.py:4);(z.py:5) 6\n")
    assert len(texts) > 5
    for text in texts:
        d1, d2 = Diagnostics(), Diagnostics()
        keyed = read_folded(io.StringIO(text), d1, keyed=True)
        expect = read_folded(io.StringIO(text), d2).keyed()
        assert keyed.is_keyed and keyed.keyed() is keyed
        assert dict(keyed.items()) == dict(expect.items())
        assert d1.malformed_count == d2.malformed_count
        assert keyed.function_stats() == expect.function_stats()
    assert dict(read_folded(io.StringIO(texts[-1]), keyed=True).items())[
        ("main (app.py)", "f (a:1)", "k_[k]")] == 1.5
