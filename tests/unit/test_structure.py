# SPDX-License-Identifier: Apache-2.0
"""The public surface and the import rules of STYLE.md."""
import ast
import pathlib

import profkit

ROOT = pathlib.Path(__file__).resolve().parents[2]
LEAVES = {"profkit.model", "profkit.frames", "profkit.errors", "profkit.folded", "profkit.options", "profkit.inputs",
          "profkit.plugins", "profkit.atomic", "profkit.textsafe", "profkit.secrets"}


def imports_of(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def ours(name):
    return name.split(".")[0] in ("profkit", "collectors", "flamegraph")


def test_all_is_sorted_and_complete():
    assert profkit.__all__ == sorted(profkit.__all__)
    for name in profkit.__all__:
        assert getattr(profkit, name).__doc__


def test_import_rules():
    problems = []
    for path in sorted(ROOT.glob("profkit/*.py")) + sorted(ROOT.glob("collectors/*.py")) + sorted(ROOT.glob("flamegraph/*.py")):
        mod = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for imp in imports_of(path):
            if not ours(imp):
                continue
            if mod in LEAVES and imp not in LEAVES:
                problems.append(f"{mod} is a leaf but imports {imp}")
            if mod.startswith("flamegraph") and not (imp.startswith("flamegraph") or imp in LEAVES):
                problems.append(f"{mod} imports {imp}")
            if mod.startswith("collectors") and not (imp.startswith("collectors") or imp in LEAVES
                                                     or imp == "profkit.targets"):
                problems.append(f"{mod} imports {imp}")
            if imp == "profkit.cli" and mod not in ("profkit.__main__",):
                problems.append(f"{mod} imports the CLI")
    assert problems == []
