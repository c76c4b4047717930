# SPDX-License-Identifier: Apache-2.0
"""Several flame graphs inline on one offline HTML page.

Each SVG keeps its own script, scoped to its own root element, and its ids carry its own
prefix; this module only checks that no id is used twice and fills a jinja2 template
(autoescaped; the SVGs are the only markup let through, with ``|safe``, after being parsed
as XML).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Dict, Optional, Sequence

import jinja2

__all__ = ["embed_html"]

_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>\s*")

_env: Optional[jinja2.Environment] = None


def _environment() -> jinja2.Environment:
    global _env
    if _env is None:
        _env = jinja2.Environment(loader=jinja2.PackageLoader("flamegraph", "assets"),
                                  autoescape=jinja2.select_autoescape(["html", "svg", "xml"]))
    return _env


def embed_html(svgs: Sequence[str], title: str = "Flame graphs", captions: Sequence[str] = ()) -> str:
    """One HTML page showing ``svgs`` (as written by ``render_svg``/``render_diff``) inline.

    Raises ValueError if the SVGs share an id (render them with distinct
    ``FlameGraphOptions.name_prefix`` values, e.g. when embedding the same graph twice) or if
    one is not well-formed XML.
    """
    seen: Dict[str, int] = {}
    graphs = []
    for n, svg in enumerate(svgs):
        try:
            root = ET.fromstring(svg.encode("utf-8", "surrogatepass"))
        except ET.ParseError as e:
            raise ValueError(f"graph {n + 1} is not well-formed XML: {e}") from None
        for el in root.iter():
            ident = el.get("id")
            if ident is None:
                continue
            if ident in seen:
                raise ValueError(f"graphs {seen[ident] + 1} and {n + 1} both use the id {ident!r}; "
                                 "render them with different name_prefix options")
            seen[ident] = n
        caption = captions[n] if n < len(captions) else ""
        # The SVG was parsed above, so it is one element and cannot close the page's markup early.
        graphs.append({"svg": _DECLARATION.sub("", svg, count=1), "caption": caption})
    return _environment().get_template("embed.html").render(title=title, graphs=graphs)
