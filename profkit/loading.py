# SPDX-License-Identifier: Apache-2.0
"""From input files to a Profile: open, sniff the format, parse with the right collector.

This is the one place where inputs meet collectors; the CLI calls it and the renderers only
ever see the resulting :class:`~profkit.model.Profile`.
"""
from __future__ import annotations

import contextlib
import gc
from typing import Any, Dict, Mapping, Optional, Sequence

import collectors
from collectors.base import options_from_mapping
from profkit.errors import CaptureFormatError, Diagnostics, InputError, UsageError
from profkit.inputs import Source, looks_binary
from profkit.model import Profile

__all__ = ["gc_paused", "load_profile", "resolve_format"]


@contextlib.contextmanager
def gc_paused():
    """Parsing allocates millions of tuples and strings that never form cycles; the cyclic
    collector would rescan them over and over (about a third of the parse time)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def resolve_format(source: Source, fmt: str) -> str:
    """The format id to use for ``source``: ``fmt`` itself, or the sniffed one for ``auto``."""
    if fmt != "auto":
        collectors.get(fmt)  # unknown ids fail here, with the list of known ones
        return fmt
    head = source.head()
    found = collectors.sniff_format(head)
    if found is not None:
        return found
    if looks_binary(head):
        raise InputError(f"{source.name}: binary data of no format profkit knows",
                         hint="name the format with --format (see: profkit collectors)")
    # Text that no format claims: read it as folded, which counts what does not parse.
    return "folded"


def load_profile(inputs: Sequence[str], fmt: str = "auto", options: Optional[Mapping[str, Any]] = None,
                 *, diag: Optional[Diagnostics] = None, strict: bool = False,
                 unit: Optional[str] = None, keyed: bool = False) -> Profile:
    """Parse one or more inputs (paths or ``-``) into one Profile (several inputs are merged).

    ``options`` are the chosen format's parse options by field name. Malformed lines are
    counted in ``diag``; with ``strict`` any malformed line is an error. An input that yields
    no stacks is an error (exit 2). With ``keyed`` frames are named by function (for comparing).
    """
    diag = diag if diag is not None else Diagnostics()
    if not inputs:
        raise UsageError("no input given")
    if sum(1 for i in inputs if i == "-") > 1:
        raise UsageError("stdin ('-') can be read only once")
    merged: Optional[Profile] = None
    for spec in inputs:
        probe = Source(spec, diag, binary_ok=True)
        fid = resolve_format(probe, fmt)
        collector = collectors.get(fid)
        source = probe
        if not collector.binary_input:
            source.binary_ok = False
            # Re-check the head now that we know a text format is expected.
            if looks_binary(source.head()):
                raise InputError(f"{source.name}: binary data, not a {fid} capture",
                                 hint="a .jfr recording needs --format jfr" if fid != "jfr" else None)
        opts: Dict[str, Any] = dict(options or {})
        if unit is not None and "unit" in {f for f in collector.Options.__dataclass_fields__}:
            opts.setdefault("unit", unit)
        parse_options = options_from_mapping(collector.Options, opts)
        diag.source = source.name
        try:
            with gc_paused():
                parse = collector.parse_keyed if keyed else collector.parse
                profile = parse(source, parse_options, diag)
        finally:
            source.close()
        if strict and diag.malformed_count:
            first = diag.examples[0] if diag.examples else source.name
            raise CaptureFormatError(f"{diag.malformed_count} malformed line(s) (--strict); first: {first}")
        if not profile:
            what = f"no stacks found in {source.name}"
            long_lines = [w for w in diag.warnings if "longer than" in w]
            if long_lines:  # a valid line that is too long is not "malformed": say what it is
                what += f" ({long_lines[0].replace(source.name + ':', 'line ', 1)})"
            elif diag.malformed_count:
                what += f" ({diag.malformed_count} malformed lines)"
            raise InputError(what, hint=f"is this really {fid} input? try --format auto or another --format")
        if profile.meta.collector is None:
            profile.meta.collector = fid
        merged = profile if merged is None else merged.merge(profile)
        if keyed and not merged.is_keyed:
            merged = merged.keyed()
    assert merged is not None
    return merged
