# SPDX-License-Identifier: Apache-2.0
"""The collector registry is the entry-point group, for built-ins and third parties alike."""
import os
import subprocess
import sys
import textwrap

import pytest

import collectors
import flamegraph

BUILTINS = {"folded", "perf", "py-spy", "async-profiler", "jfr"}


def test_builtins_are_registered_through_entry_points():
    assert BUILTINS <= set(collectors.available_ids())
    for cid in BUILTINS:
        assert collectors.get(cid).id == cid


def test_unknown_id_lists_the_known_ones():
    from profkit.errors import UsageError

    with pytest.raises(UsageError, match="known: .*perf"):
        collectors.get("no-such-format")


def test_top_level_packages_are_ours_not_pypi_namesakes():
    # PyPI has unrelated distributions named "collectors" and "flamegraph" (STYLE.md).
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for mod in (collectors, flamegraph):
        assert os.path.dirname(os.path.dirname(os.path.abspath(mod.__file__))) == root
    from importlib.metadata import distribution

    files = {str(f) for f in distribution("profkit").files or []}
    # an editable install records a .pth/finder rather than the files; a wheel lists them
    assert any("profkit" in f for f in files)


PLUGIN = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "profkit-tinyplug"
        version = "0.0.1"
        [project.entry-points."profkit.collectors"]
        tiny = "tinyplug:TinyCollector"
        broken = "tinyplug_missing:Nope"
        [tool.setuptools]
        py-modules = ["tinyplug"]
    """,
    "tinyplug.py": '''
        """A third-party collector: lines 'leaf<TAB>caller<TAB>...' (leaf first), weight 1 each."""
        from collectors.base import Collector, Sniff
        from profkit.model import Profile

        class TinyCollector(Collector):
            id = "tiny"
            summary = "tab-separated leaf-first stacks (test plugin)"

            def sniff(self, head):
                return Sniff.YES if head.startswith(b"TINY") else Sniff.NO

            def parse(self, source, options, diag):
                p = Profile()
                for n, line in enumerate(source.text_lines(), 1):
                    if line.startswith("TINY"):
                        continue
                    frames = line.rstrip("\\n").split("\\t")
                    if frames == [""]:
                        continue
                    p.add(list(reversed(frames)), 1)
                return p
    ''',
}


@pytest.mark.slow
def test_a_third_party_plugin_installs_and_is_used(tmp_path):
    src = tmp_path / "plugin"
    src.mkdir()
    for name, text in PLUGIN.items():
        (src / name).write_text(textwrap.dedent(text))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(target), str(src)], check=True, capture_output=True)
    capture = tmp_path / "cap.txt"
    capture.write_text("TINY v1\nleaf\tmid\troot\nleaf\tmid\troot\nother\troot\n")
    env = dict(os.environ, PYTHONPATH=str(target))
    listed = subprocess.run([sys.executable, "-m", "profkit", "collectors"], env=env,
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert "tiny: tab-separated leaf-first stacks" in listed.stdout
    # the broken entry point is reported by name, and does not take profkit down
    assert "broken" in listed.stderr
    out = subprocess.run([sys.executable, "-m", "profkit", "collapse", str(capture)], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "root;mid;leaf 2\nroot;other 1\n"


def test_the_fast_entry_point_reader_agrees_with_importlib():
    """profkit.plugins reads entry_points.txt files itself (start-up time); importlib.metadata
    must find exactly the same entry points for profkit's groups."""
    import sys
    from importlib.metadata import entry_points

    from profkit.plugins import _scan

    for group in ("profkit.collectors", "profkit.loadgens"):
        eps = entry_points(group=group) if sys.version_info >= (3, 10) else entry_points().get(group, [])
        expect = {}
        for ep in eps:
            expect.setdefault(ep.name, ep.value)
        got = {}
        for _, name, value in _scan(group):
            got.setdefault(name, value)
        assert got == expect and got, group
    assert "perf" in {name for _, name, _ in _scan("profkit.collectors")}
