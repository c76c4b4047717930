# SPDX-License-Identifier: Apache-2.0
"""The perf parser against FlameGraph's own stackcollapse-perf.pl output, plus its edge cases.

The conformance corpus lives in ``shared/conformance/flamegraph-perf`` beside the repository
checkout (CI copies ``shared/`` there too); see its README.md for where it comes from.
"""
import gzip
import io
import random
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

import collectors
import collectors.perf_script as perf_script
from collectors.base import Sniff
from collectors.perf import PerfCollector, PerfOptions, collapse, parse
from profkit.errors import CollectorNotInstalled, Diagnostics
from profkit.folded import write_folded
from profkit.inputs import Source
from profkit.model import FrameKind

from goldens import opts_id

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / ".." / "shared" / "conformance" / "flamegraph-perf"
# Listed rather than globbed, so that a missing corpus fails every case instead of running none.
CAPTURES = [
    "perf-cycles-instructions-01",
    "perf-dd-stacks-01",
    "perf-funcab-cmd-01",
    "perf-funcab-pid-01",
    "perf-iperf-stacks-pidtid-01",
    "perf-java-faults-01",
    "perf-java-stacks-01",
    "perf-java-stacks-02",
    "perf-js-stacks-01",
    "perf-mirageos-stacks-01",
    "perf-numa-stacks-01",
    "perf-rust-Yamakaky-dcpu",
    "perf-vertx-stacks-01",
]
FLAGS = ["pid", "tid", "kernel", "jit", "all", "addrs"]
CASES = [(c, f) for c in CAPTURES for f in FLAGS]
#: Perl's folded line for the final sample of each corpus capture that does not end with a blank
#: line (``<capture>-collapsed-<flag>.last``; see tests/data/perf/README.md).
LAST_SAMPLES = REPO / "tests" / "data" / "perf" / "flamegraph-perf-last"


def ends_with_blank_line(path):
    """Whether a capture's last sample is closed by a blank line (the Perl script drops it if not)."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 2))
        return fh.read() == b"\n\n"


def weights(lines):
    """``{stack: weight}`` of folded lines."""
    out = Counter()
    for line in lines:
        stack, _, weight = line.rpartition(" ")
        out[stack] += int(weight)
    return out


def sorted_lines(weights):
    """Folded lines in the Perl script's order: sorted by stack, then the count appended."""
    return [f"{stack} {w}" for stack, w in sorted(weights.items())]


def case_id(capture, flag):
    # Cases whose expected output is the Perl output plus the final sample say so in their id
    # (a missing corpus gives plain ids here, and fails in the tests).
    path = CORPUS / f"{capture}.txt"
    last = "+last-sample" if path.exists() and not ends_with_blank_line(path) else ""
    return f"{capture}-{flag}{last}"


def folded_lines(profile):
    out = io.StringIO()
    write_folded(profile, out)
    return out.getvalue().split("\n")[:-1]  # lines end at "\n" only ("\r" may be in a name)


def expected_lines(path, capture, last):
    """The lines of an expected file; where the capture lacks its final blank line, merged with
    the Perl script's line for that last sample (``last``) and re-sorted as the script sorts."""
    lines = path.read_text().split("\n")[:-1]
    if ends_with_blank_line(capture):
        return lines
    # The Perl script drops a final sample that no blank line ends; profkit keeps it, so it is
    # added here as the Perl script names it once the blank line is there.
    return sorted_lines(weights(lines) + weights(last.read_text().split("\n")[:-1]))


def parse_file(path, diag=None, **opts):
    diag = diag if diag is not None else Diagnostics(str(path))
    return parse(Source(str(path), diag), PerfOptions(**opts), diag)


def fold(text, diag=None, **opts):
    """Collapse perf script text given inline; ``{'comm;…;leaf': weight}``."""
    lines = io.BytesIO(text.encode())  # lines end at b"\n" only, as perf's do
    return {";".join(s): w for s, w in collapse(lines, PerfOptions(**opts), diag)}


# -- conformance --------------------------------------------------------------------------------
@pytest.mark.parametrize("capture,flag", CASES, ids=[case_id(c, f) for c, f in CASES])
def test_conformance(capture, flag):
    """The output of ``stackcollapse-perf.pl --FLAG``, in its order, plus
    the final sample where the capture lacks the blank line after it (ids ``…+last-sample``)."""
    expected = expected_lines(CORPUS / "results" / f"{capture}-collapsed-{flag}.txt", CORPUS / f"{capture}.txt",
                              LAST_SAMPLES / f"{capture}-collapsed-{flag}.last")
    got = folded_lines(parse_file(CORPUS / f"{capture}.txt", **{flag: True}))
    # STYLE.md (lesson 7) says to strip quote characters where the reference does. Inferno has
    # to, because it keeps quotes in names and the Perl script removes them; our parser removes
    # them exactly as the Perl script does, so the expected files are compared verbatim, in
    # their order (the script's: sorted by stack).
    assert got == expected


def test_last_sample_files_match_the_corpus():
    """One ``.last`` file per flag for each capture without a final blank line, and no others."""
    wanted = {f"{c}-collapsed-{f}.last" for c, f in CASES if not ends_with_blank_line(CORPUS / f"{c}.txt")}
    assert wanted and sorted(p.name for p in LAST_SAMPLES.glob("*.last")) == sorted(wanted)


def test_corpus_is_complete():
    assert sorted(p.stem for p in CORPUS.glob("*.txt")) == sorted(CAPTURES)


# -- profkit's own captures (tests/data/perf/README.md) -------------------------------------------
DATA = REPO / "tests" / "data" / "perf"
#: Each hand-written capture and the option sets its expected files were made with (by the Perl
#: script; these are not profkit goldens, so there is no --bless for them).
OWN = {
    "annotations-boundary": [{}, {"kernel": True}, {"jit": True}, {"all": True}],
    "event-filter": [{}, {"event_filter": "instructions"}],
    "header-forms": [{}, {"pid": True}, {"tid": True}],
    "java-tidy-boundary": [{}, {"pid": True}, {"tid": True}, {"jit": True}],
    "module-spaces": [{}, {"addrs": True}, {"kernel": True}],
    "no-final-newline": [{}, {"tid": True}],
    "no-trailing-blank": [{}, {"tid": True}],
    "sample-boundaries": [{}, {"pid": True}],
    "symbol-tidy": [{}, {"addrs": True}],
}
OWN_CASES = [(c, o) for c, sets in OWN.items() for o in sets]


def own_id(case, opts):
    last = "" if ends_with_blank_line(DATA / f"{case}.txt") else "+last-sample"
    return f"{case}-{opts_id(opts)}{last}"


@pytest.mark.parametrize("case,opts", OWN_CASES, ids=[own_id(c, o) for c, o in OWN_CASES])
def test_own_captures(case, opts):
    """The output of ``stackcollapse-perf.pl`` with these options, in its order, plus
    the final sample of a capture that no blank line ends (ids ``…+last-sample``)."""
    name = f"{case}-{opts_id(opts)}"
    expected = expected_lines(DATA / "results" / f"{name}.folded", DATA / f"{case}.txt",
                              DATA / "results" / f"{name}.last")
    got = folded_lines(parse_file(DATA / f"{case}.txt", **opts))
    assert got == expected


def test_own_captures_are_all_run():
    """Every capture, expected and .last file under tests/data/perf belongs to a case above."""
    assert sorted(p.stem for p in DATA.glob("*.txt")) == sorted(OWN)
    wanted = {f"{c}-{opts_id(o)}.folded" for c, o in OWN_CASES}
    wanted |= {f"{c}-{opts_id(o)}.last" for c, o in OWN_CASES if not ends_with_blank_line(DATA / f"{c}.txt")}
    assert sorted(p.name for p in (DATA / "results").iterdir()) == sorted(wanted)


# -- sniffing -----------------------------------------------------------------------------------
@pytest.mark.parametrize("capture", CAPTURES)
def test_sniff_yes_on_captures(capture):
    head = Source(str(CORPUS / f"{capture}.txt")).head()
    assert PerfCollector().sniff(head) is Sniff.YES


def test_sniff_yes_on_gzip_example():
    assert PerfCollector().sniff(Source(str(CORPUS / "example-perf-stacks.txt.gz")).head()) is Sniff.YES


@pytest.mark.parametrize("text", [
    # folded text, as the Perl script writes it (and with a trailing space)
    "java;start_thread;JavaMain 12\njava;start_thread;foo 3\n",
    "java;start_thread;JavaMain 12 \nmain;foo (app.py:12) 3\n",
    # py-spy raw, differential folded, junk, JSON, an empty input
    "<module> (app.py:1);main (app.py:9);work (app.py:3) 41\n",
    "a;b;c 10 12\na;b 3 4\n",
    "hello world\nthis is not perf\n",
    '{"recording": {"events": []}}\n',
    "",
])
def test_sniff_no(text):
    assert PerfCollector().sniff(text.encode()) is Sniff.NO


def test_sniff_no_on_the_expected_outputs():
    for path in (CORPUS / "results").glob("*.txt"):
        assert PerfCollector().sniff(path.read_bytes()[:65536]) is Sniff.NO, path.name


def test_sniff_looks_past_samples_without_frames():
    frameless = b"python3  8230   389.681115:     200040 cpu-clock:ppp: \n\n"
    frame = b"\t1de39 dl_main+0x1e79 (/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2)\n"
    assert PerfCollector().sniff(frameless * 3) is Sniff.MAYBE
    assert PerfCollector().sniff(frameless * 3 + frameless[:-1] + frame) is Sniff.YES


def test_registered_under_its_id():
    assert isinstance(collectors.get("perf"), PerfCollector)


# -- the naming rules ---------------------------------------------------------------------------
def test_process_naming():
    text = ("V8 WorkerThread 24636/25607 [000] 94564.109216: 1 cycles:\n\t1 f (/bin/x)\n\n"
            "java 25607 4794564.109216: 1 cycles:\n\t1 f (/bin/x)\n\n"
            "swapper     0/0 [001]  1333.768770: 1 cycles:\n\t1 f (/bin/x)\n\n")
    assert set(fold(text)) == {"V8_WorkerThread;f", "java;f", "swapper;f"}
    assert set(fold(text, pid=True)) == {"V8_WorkerThread-24636;f", "java-?;f", "swapper-?;f"}
    # A TID of 0 reads as "no PID shown", as in the Perl script (its truth test).
    assert set(fold(text, tid=True)) == {"V8_WorkerThread-24636/25607;f", "java-?/25607;f", "swapper-?/0;f"}
    # The Perl pattern wants a comm of two characters or more; a shorter one swallows the
    # fields up to the next number followed by a space (here the period).
    assert fold("x 5 1.0: 1 cycles:\n\t1 f (/bin/x)\n\n") == {"x_5_1.0:;f": 1}


def test_periods_weigh_samples():
    text = ("dd 1 1.0:   10101010 cpu-clock: \n\t1 f (/bin/dd)\n\n"
            "dd 1 1.1:   10101010 cpu-clock: \n\t1 f (/bin/dd)\n\n"
            "dd 1 1.2: cpu-clock:\n\t1 f (/bin/dd)\n\n"
            "dd 1 1.3: 0 cpu-clock:\n\t1 f (/bin/dd)\n\n")
    assert fold(text) == {"dd;f": 2 * 10101010 + 1 + 1}


def test_first_event_type_wins_unless_chosen():
    text = ("pp 1 1.0: 5 cycles: \n\t1 c (/bin/pp)\n\n"
            "pp 1 1.1: 7 instructions: \n\t1 i (/bin/pp)\n\n"
            "pp 1 1.2: 5 cycles: \n\t1 c (/bin/pp)\n\n")
    diag = Diagnostics()
    assert fold(text, diag) == {"pp;c": 10}
    assert any("cycles" in w for w in diag.warnings)
    diag = Diagnostics()
    assert fold(text, diag, event_filter="instructions") == {"pp;i": 7}
    assert diag.warnings == []


def test_symbol_tidying():
    text = ("ab 1 1.0: 1 cycles:\n"
            "\t1 std::vector<int>::push_back(int const&)+0x1f (/bin/a)\n"
            "\t2 net/http.(*Client).Do+0x20 (/bin/a)\n"
            "\t3 ns::(anonymous namespace)::run(int)+0x2 (/bin/a)\n"
            "\t3 (anonymous namespace)::skipped(int) (/bin/a)\n"
            "\t4 RegExp:[&<>\\\"\\'] (/tmp/perf-7.map)\n"
            "\t5 a;b (/bin/a)\n"
            "\t6 (/bin/a) (/bin/a)\n"
            "\t7 [unknown] (/usr/lib/libc.so.6)\n"
            "\t8 [unknown] ([unknown])\n"
            "\n")
    assert fold(text) == {"ab;[unknown];[libc.so.6];a:b;RegExp:[&<>\\\\];ns::(anonymous namespace)::run;"
                          "net/http.(*Client).Do;std::vector<int>::push_back": 1}
    assert list(fold(text, addrs=True)) == ["ab;[unknown <8>];[libc.so.6 <7>];a:b;RegExp:[&<>\\\\];"
                                            "ns::(anonymous namespace)::run;net/http.(*Client).Do;"
                                            "std::vector<int>::push_back"]


def test_module_runs_to_the_last_closing_paren():
    """The module is everything from the last " (" that a later ")" closes to the last ")": it
    may hold spaces, and a "(deleted)" module leaves a piece of the path in the symbol."""
    text = ("ab 1 1.0: 1 cycles:\n"
            "\t1 f (/opt/my app/x.so)\n"
            "\t2 [unknown] (/opt/my app/x.so)\n"
            "\t3 g+0x1 (/usr/lib/libx.so (deleted))\n"
            "\t4 h (/bin/a) (x y)\n"
            "\n")
    assert fold(text, addrs=True) == {"ab;h ;g+0x1 ;[x.so <2>];f": 1}


def test_java_names_and_inlined_frames():
    text = ("{comm} 1 1.0: 1 cycles:\n"
            "\t1 Lio/Foo;::bar->Lio/Baz;::qux->Lio/Q;::z (/tmp/perf-9.map)\n"
            "\t2 LBusy;::main (/tmp/perf-9.map)\n"
            "\n")
    assert list(fold(text.format(comm="java"), pid=True)) == ["java-?;LBusy:::main;io/Foo:::bar;io/Baz:::qux_[i];io/Q:::z_[i]"]
    assert list(fold(text.format(comm="java"), jit=True)) == ["java;LBusy:::main_[j];io/Foo:::bar_[j];io/Baz:::qux_[i];io/Q:::z_[i]"]
    assert list(fold(text.format(comm="node"))) == ["node;LBusy:::main;Lio/Foo:::bar;Lio/Baz:::qux_[i];Lio/Q:::z_[i]"]
    # Any process whose name begins with "java" (case matters), PID or not.
    for comm in ("javac", "java_x", "java worker"):
        assert list(fold(text.format(comm=comm), tid=True))[0].endswith(";LBusy:::main;io/Foo:::bar;io/Baz:::qux_[i];io/Q:::z_[i]")
    for comm in ("Java", "jav", "xjava"):
        assert list(fold(text.format(comm=comm)))[0].endswith(";LBusy:::main;Lio/Foo:::bar;Lio/Baz:::qux_[i];Lio/Q:::z_[i]")


def test_annotations_already_in_the_name():
    """_[i] and _[j] are added only to names that hold no such annotation yet; _[k] always."""
    text = ("ab 1 1.0: 1 cycles:\n"
            "\t1 a_[i]x->b_[i]->c_[j] (/tmp/perf-9.map)\n"
            "\t2 d_[j]->e (/tmp/perf-9.map)\n"
            "\t3 f_[k] ([kernel.kallsyms])\n"
            "\n")
    assert fold(text, all=True) == {"ab;f_[k]_[k];d_[j];e_[i];a_[i]x_[j];b_[i];c_[j]_[i]": 1}


def test_kernel_annotation_and_kinds(tmp_path):
    text = ("ab 1 1.0: 1 cycles:\n"
            "\tffffffff8103ce3b native_safe_halt ([kernel.kallsyms])\n"
            "\t8c3453 tcp_sendmsg (/lib/modules/4.3.0/build/vmlinux)\n"
            "\t7d8 ipv4_conntrack_local+0x7f8f80b8 ([nf_conntrack_ipv4])\n"
            "\t0 [unknown] ([unknown])\n"
            "\n")
    assert list(fold(text, kernel=True)) == ["ab;[unknown];ipv4_conntrack_local_[k];tcp_sendmsg_[k];native_safe_halt_[k]"]
    assert list(fold(text)) == ["ab;[unknown];ipv4_conntrack_local;tcp_sendmsg;native_safe_halt"]
    path = tmp_path / "k.txt"
    path.write_text(text)
    kinds = {f.name: f.kind for stack, _ in parse_file(path, all=True).stacks() for f in stack}
    assert kinds["native_safe_halt"] is FrameKind.KERNEL and kinds["[unknown]"] is not FrameKind.KERNEL
    assert all(f.kind is not FrameKind.KERNEL for stack, _ in parse_file(path).stacks() for f in stack)


def test_samples_without_frames_or_header():
    text = ("\t1 orphan (/bin/x)\n\n"         # frames before any header: dropped
            "ab 1 1.0: 1 cycles:\n\n"        # a header without frames: just the comm
            "# a comment\n"
            "bc 2 1.0: 1 cycles:\n# inside\n\t1 f (/bin/x)\n\n")
    assert fold(text) == {"ab": 1, "bc;f": 1}


def test_header_fast_paths_agree_with_the_perl_patterns():
    """The header fields are read without regexes in the usual shapes; on any line, including
    odd ones, they must say exactly what the Perl script's patterns say."""
    rng = random.Random(7)
    words = [b"java", b"V8", b"WorkerThread", b"x", b"ab", b"12", b"0", b"007", b"27409/28744", b"1//2", b"3/",
             b"1/2/3", b"[000]", b"1410597.984841:", b"1.2:34", b":", b"::", b"a:", b":5", b"10101010",
             b"cycles:", b"cycles:u:", b"cpu-clock:ppp:", b"sched:sched_switch:", b"prev_comm=x", b"(x)"]
    seps = [b" ", b"  ", b"\t", b" \t "]
    for _ in range(20000):
        n = rng.randint(1, 7)
        line = rng.choice([b"", b"", b" ", b"\t"])
        for k in range(n):
            line += rng.choice(words) + (rng.choice(seps) if k < n - 1 else b"")
        line += rng.choice([b"", b"", b" ", b"\t", b"\r"])
        m = perf_script._EVENT.match(line)
        if m is None:
            assert perf_script._header_fields(line) is None, line
            continue
        e = perf_script._PERIOD_EVENT.search(line)
        expected = (m.group(1, 2, 3), e.group(1) if e else None, e.group(2) if e else None)
        assert perf_script._header_fields(line) == expected, line


# -- bad and partial input ----------------------------------------------------------------------
def test_junk_lines_are_counted_not_fatal():
    text = ("ab 1 1.0: 1 cycles:\n"
            "\t1 f (/bin/x)\n"
            "this line is junk\n"
            "\t2 g (/bin/x)\n"
            "\n"
            "\x00\x01 more junk\n"
            "this line is junk\n")
    diag = Diagnostics("t")
    assert fold(text, diag) == {"ab;g;f": 1}
    assert diag.malformed_count == 3
    assert [e.split(":")[1] for e in diag.examples] == ["3", "6", "7"]


def test_last_sample_without_blank_line_is_kept():
    """The Perl script counts a sample only at the blank line after it, so it drops the last one
    of a capture that ends without that line; profkit counts it, as if the line were there."""
    text = "ab 1 1.0: 3 cycles:\n\t1 f (/bin/x)\n\nab 1 1.1: 5 cycles:\n\t1 f (/bin/x)\n\t2 g (/bin/x)"
    diag = Diagnostics()
    assert fold(text, diag) == {"ab;f": 3, "ab;g;f": 5}
    assert fold(text + "\n", diag) == fold(text + "\n\n") == {"ab;f": 3, "ab;g;f": 5}
    # a header alone counts as its process name, as at a blank line; a filtered one not at all
    assert fold(text + "\n\nbc 2 1.2: 7 cycles:") == {"ab;f": 3, "ab;g;f": 5, "bc": 7}
    assert fold(text + "\n\nbc 2 1.2: 7 instructions:\n\t1 h (/bin/x)") == {"ab;f": 3, "ab;g;f": 5}
    assert diag.warnings == []


def test_truncated_capture_keeps_every_sample(tmp_path):
    """A capture cut inside a sample (perf script killed) keeps that sample with the frames it has."""
    data = (CORPUS / "perf-numa-stacks-01.txt").read_bytes()
    cut = data.index(b"\n\n", len(data) // 2) + 2   # the end of a sample
    line_end = data.index(b"\n", data.index(b"\n", cut) + 1) + 1  # after its first frame line
    closed, partial = tmp_path / "closed.txt", tmp_path / "partial.txt"
    closed.write_bytes(data[:line_end] + b"\n")
    partial.write_bytes(data[:line_end])
    got = folded_lines(parse_file(partial))
    assert got == folded_lines(parse_file(closed))
    whole = tmp_path / "whole.txt"
    whole.write_bytes(data[:cut])
    assert sum(weights(got).values()) == sum(weights(folded_lines(parse_file(whole))).values()) + 1
    # cut in the middle of a frame line: that line is malformed, the sample still counts
    middle = tmp_path / "middle.txt"
    middle.write_bytes(data[:line_end + 20])
    diag = Diagnostics()
    assert sum(weights(folded_lines(parse_file(middle, diag))).values()) == sum(weights(got).values())
    assert diag.malformed_count == 1


def test_gzip_input_reads_the_same(tmp_path):
    plain = CORPUS / "perf-vertx-stacks-01.txt"
    packed = tmp_path / "vertx.txt.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert folded_lines(parse_file(packed, all=True)) == folded_lines(parse_file(plain, all=True))


def test_example_stacks_gz_parses():
    diag = Diagnostics()
    profile = parse_file(CORPUS / "example-perf-stacks.txt.gz", diag, all=True)
    assert diag.malformed_count == 0
    assert profile.unit == "samples" and profile.meta.collector == "perf"
    assert len(profile) > 500 and profile.total > 1000
    assert any(f.kind is FrameKind.KERNEL for stack, _ in profile.stacks() for f in stack)


def test_lines_api_and_cache_eviction_agree_with_parse(monkeypatch):
    path = CORPUS / "perf-java-stacks-01.txt"
    expected = folded_lines(parse_file(path, all=True))
    with open(path, "rb") as fh:
        assert sorted(f"{';'.join(s)} {w}" for s, w in collapse(fh, PerfOptions(all=True))) == sorted(expected)
    monkeypatch.setattr(perf_script, "CACHE_LIMIT", 3)   # the line caches start afresh every few lines
    monkeypatch.setattr(perf_script, "_BLOCK", 4096)     # and blocks split lines and samples
    assert folded_lines(parse_file(path, all=True)) == expected


def test_overlong_line_is_skipped(monkeypatch, tmp_path):
    monkeypatch.setattr(perf_script, "MAX_LINE", 64)
    monkeypatch.setattr(perf_script, "_BLOCK", 16)
    path = tmp_path / "long.txt"
    path.write_text("ab 1 1.0: 1 cycles:\n\t1 f (/bin/x)\n\t2 " + "x" * 200 + " (/bin/x)\n\t3 g (/bin/x)\n\n")
    diag = Diagnostics()
    assert folded_lines(parse_file(path, diag)) == ["ab;g;f 1"]
    assert diag.malformed_count == 1 and ":3:" in diag.examples[0]


# -- --inline -----------------------------------------------------------------------------------
def test_inline_needs_addr2line(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CollectorNotInstalled) as e:
        parse_file(CORPUS / "perf-dd-stacks-01.txt", inline=True)
    assert e.value.hint == "apt-get install binutils"


INLINED_C = """
static inline __attribute__((always_inline)) int inner(int x) { return x * x * 3 + (x >> 2); }
__attribute__((noinline)) int outer(int n) { int s = 0; for (int i = 0; i < n; i++) s += inner(i ^ s); return s; }
int main(int argc, char **argv) { (void)argv; return outer(argc * 100000) & 1; }
"""


def test_inline_unfolds_with_addr2line(tmp_path):
    missing = [tool for tool in ("cc", "addr2line", "nm") if not shutil.which(tool)]
    assert not missing, f"{', '.join(missing)} not installed: apt-get install binutils gcc"
    src, exe = tmp_path / "prog.c", tmp_path / "prog"
    src.write_text(INLINED_C)
    subprocess.run(["cc", "-O2", "-g", "-o", str(exe), str(src)], check=True)
    outer = next(l.split()[0] for l in subprocess.run(["nm", str(exe)], capture_output=True, text=True,
                                                       check=True).stdout.splitlines() if l.endswith(" outer"))
    start = int(outer, 16)
    # Find an address inside outer() that addr2line places in the inlined inner().
    addrs = [hex(start + i) for i in range(64)]
    out = subprocess.run(["addr2line", "-e", str(exe), "-i", "-f", "-s", "-a", *addrs],
                         capture_output=True, text=True, check=True).stdout
    blocks = out.split("0x")[1:]
    off = next(i for i, b in enumerate(blocks) if "inner" in b and "outer" in b)
    text = (f"prog 1 1.0: 1 cycles:\n"
            f"\tffffffff8103ce3b native_safe_halt ([kernel.kallsyms])\n"
            f"\t{start + off:x} outer+0x{off:x} ({exe})\n\n"
            # the runtime address of a PIE: addr2line fails, so the symbol from nm is used
            f"prog 1 1.1: 1 cycles:\n"
            f"\t{0x555500000000 + start + off:x} outer+0x{off:x} ({exe})\n\n")
    path = tmp_path / "inline.txt"
    path.write_text(text)
    got = folded_lines(parse_file(path, inline=True))
    assert sorted(got) == ["prog;outer;inner 1", "prog;outer;inner;native_safe_halt 1"]
    with_context = folded_lines(parse_file(path, inline=True, context=True))
    assert all("outer:prog.c:" in l and ";inner:prog.c:" in l for l in with_context)
