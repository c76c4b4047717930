# SPDX-License-Identifier: Apache-2.0
"""Golden files of the parser tests: ``tests/data/<parser>/results/<case>-<opts>.folded``."""
import io

import pytest

from profkit.folded import write_folded


def opts_id(opts):
    """The options part of a golden's name and a test id: ``event=alloc-total``, or ``default``."""
    return "-".join(k if v is True else f"{k}={v}" for k, v in sorted(opts.items())) or "default"


def check_golden(profile, golden, bless):
    """Compare a profile's folded text with its golden; --bless (or a missing golden) writes it."""
    out = io.StringIO()
    write_folded(profile, out)
    text = out.getvalue()
    if bless or not golden.exists():
        existed = golden.exists()
        golden.write_text(text)
        if not bless and not existed:
            pytest.fail(f"golden {golden.name} was missing and has been written; check it and rerun")
        return
    assert text == golden.read_text(), f"output differs from {golden}; run pytest --bless if intended"
