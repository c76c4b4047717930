# SPDX-License-Identifier: Apache-2.0
"""Flame graphs from profkit Profiles: interactive SVG, icicle, differential.

Public API (the renderers see only :class:`profkit.model.Profile`)::

    render_svg(profile, options, out)            # one self-contained SVG written to a text stream
    render_diff(before, after, options, out, *, normalize=True)

``options`` is a :class:`flamegraph.options.FlameGraphOptions`.
"""
