# SPDX-License-Identifier: Apache-2.0
"""The public surface, the layering of STYLE.md, and the size rules, checked on every module."""
import ast
import pathlib

import pytest

import profkit

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("profkit", "collectors", "flamegraph")
#: Modules that import only the standard library and each other.
LEAVES = {"profkit.model", "profkit.frames", "profkit.errors", "profkit.folded", "profkit.options", "profkit.inputs",
          "profkit.plugins", "profkit.atomic", "profkit.textsafe", "profkit.secrets", "profkit.markdown",
          "profkit.metrics", "profkit.timeline", "profkit.namespaces", "profkit.fastjson"}
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def modules():
    """(dotted name, path) of every module of the three packages, subpackages included."""
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out.append((name, path))
    return out


def imports_of(path):
    """Every module ``path`` imports, at the top or inside functions."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            yield node.module


def ours(name):
    return name.split(".")[0] in PACKAGES


def under(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


def test_all_is_sorted_and_complete():
    assert profkit.__all__ == sorted(profkit.__all__)
    for name in profkit.__all__:
        assert getattr(profkit, name).__doc__


def test_every_subpackage_is_checked():
    names = {n for n, _ in modules()}
    for sub in ("profkit.cli", "profkit.engine", "profkit.heap", "profkit.loadgen", "profkit.reports"):
        assert sub in names


def layering_problems(mod, imp):
    """Why ``mod`` may not import ``imp`` (None if it may)."""
    if mod in LEAVES and imp not in LEAVES:
        return "a leaf imports a non-leaf"
    if under(mod, "flamegraph") and not (under(imp, "flamegraph") or imp in LEAVES):
        return "flamegraph imports only itself and the leaves"
    if under(mod, "collectors") and not (under(imp, "collectors") or imp in LEAVES or imp == "profkit.targets"):
        return "collectors import only themselves, the leaves and profkit.targets"
    if under(imp, "profkit.cli") and not (under(mod, "profkit.cli") or mod == "profkit.__main__"):
        return "only the CLI itself (and __main__) imports the CLI"
    if under(mod, "profkit.reports") and (under(imp, "collectors") or under(imp, "profkit.engine")):
        return "reports read the run directory, never collectors or the engine"
    if under(mod, "profkit.engine") and under(imp, "profkit.reports"):
        return "the engine renders through profkit.outputs only"
    return None


def test_layering():
    problems = []
    for mod, path in modules():
        for imp in imports_of(path):
            if ours(imp):
                why = layering_problems(mod, imp)
                if why:
                    problems.append(f"{mod} imports {imp}: {why}")
    assert problems == []


def test_the_rules_catch_what_they_forbid():
    assert layering_problems("collectors.pyspy", "profkit.cli.live")
    assert layering_problems("collectors.pyspy", "profkit.engine")
    assert layering_problems("flamegraph.svg", "profkit.reports")
    assert layering_problems("profkit.reports.load", "collectors.psutil_metrics")
    assert layering_problems("profkit.frames", "profkit.rundir")
    assert layering_problems("profkit.engine", "profkit.cli")
    assert layering_problems("collectors.pyspy", "profkit.model") is None


@pytest.mark.parametrize("mod,path", modules(), ids=[m for m, _ in modules()])
def test_module_and_function_size(mod, path):
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES, f"{mod}: {text.count(chr(10))} lines (at most {MAX_MODULE_LINES})"
    long = [f"{n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(ast.parse(text))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == [], f"{mod}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"
