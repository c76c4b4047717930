// SPDX-License-Identifier: Apache-2.0
// profkit flame graph: hover details, click to zoom, search. Plain JavaScript, no network.
//
// The script is the last child of its own <svg> and works on that element only, so several
// graphs can share one HTML page. It reads frames from the DOM (names from <title> text
// nodes, weights from p:x / p:w attributes); no data is ever spliced into this file. The
// only name it leaves behind is the `profkit` property of its root element (the API that
// tests and host pages may call); everything else lives in this closure.
(function () {
  "use strict";

  var NS = "http://www.w3.org/2000/svg";
  var FONT_WIDTH = 0.59;  // average glyph width / font size, as used on the Python side

  var script = document.currentScript;
  var root = script && script.ownerSVGElement;
  if (!root) {
    // No currentScript (old engines): take the last graph that is not set up yet.
    var all = document.querySelectorAll("svg.pkfg");
    for (var k = all.length - 1; k >= 0; k--) {
      if (!all[k].profkit) { root = all[k]; break; }
    }
  }
  if (!root || root.profkit) return;

  function num(el, name) { return parseFloat(el.getAttribute(name)); }
  function part(cls) { return root.querySelector("." + cls); }
  function fmt(v) { return String(Math.round(v * 10) / 10); }

  var framesEl = part("frames");
  var details = part("details");
  var matched = part("matched");
  var total = num(root, "p:total");
  var inverted = root.getAttribute("p:inv") === "1";
  var xpad = num(root, "p:xpad");
  var textDy = num(root, "p:ty");
  var fontSize = num(root, "font-size");
  var width = parseFloat(root.getAttribute("viewBox").split(/\s+/)[2]);
  var inner = width - 2 * xpad;
  var eps = total * 1e-9;

  // One record per frame, read once. Elements are walked with *ElementChild so that the
  // whitespace of a pretty-printed file does not matter.
  var frames = [];
  var indexOf = new Map();
  for (var g = framesEl.firstElementChild; g; g = g.nextElementSibling) {
    var title = g.firstElementChild;
    var rect = title.nextElementSibling;
    var text = rect.nextElementSibling;
    var lines = title.textContent.split("\n");
    indexOf.set(g, frames.length);
    frames.push({
      g: g, rect: rect, text: text,
      name: lines[0], info: lines.slice(1).join("; "),
      x: num(g, "p:x"), w: num(g, "p:w"), y: num(rect, "y"),
      ox: rect.getAttribute("x"), ow: rect.getAttribute("width"),
      otext: text ? text.textContent : null, otx: text ? text.getAttribute("x") : null
    });
  }

  function frameOf(el) {
    while (el && el !== framesEl) {
      if (el.parentNode === framesEl) return frames[indexOf.get(el)];
      el = el.parentNode;
    }
    return null;
  }

  function describe(f) { return f.name + " (" + f.info + ")"; }

  // --- labels ------------------------------------------------------------------------------
  function label(name, px) {
    var chars = Math.floor((px - 3) / (fontSize * FONT_WIDTH));
    if (chars >= name.length) return name;
    if (chars < 3) return "";
    var cut = chars - 2;
    var c = name.charCodeAt(cut - 1);
    if (c >= 0xd800 && c <= 0xdbff) cut--;  // never split a surrogate pair
    return name.slice(0, cut) + "..";
  }

  function place(f, x, w) {
    f.rect.setAttribute("x", fmt(x));
    f.rect.setAttribute("width", fmt(w));
    var s = label(f.name, w);
    if (!f.text) {
      if (!s) return;
      f.text = document.createElementNS(NS, "text");
      f.text.setAttribute("y", fmt(f.y + textDy));
      f.g.appendChild(f.text);
    }
    f.text.setAttribute("x", fmt(x + 3));
    f.text.textContent = s;
  }

  // --- zoom --------------------------------------------------------------------------------
  var zoomed = null;

  // Is `o` at the depth of `f` or further from the root?
  function atOrBelow(o, f) { return inverted ? o.y >= f.y : o.y <= f.y; }

  function zoom(f) {
    if (!f) return;
    if (f.w >= total - eps) { unzoom(); return; }
    zoomed = f;
    var scale = inner / f.w;
    var start = f.x;
    var end = f.x + f.w;
    for (var i = 0; i < frames.length; i++) {
      var o = frames[i];
      var cls = o.g.classList;
      if (atOrBelow(o, f)) {
        if (o.x >= start - eps && o.x + o.w <= end + eps) {
          cls.remove("h"); cls.remove("a");
          place(o, xpad + (o.x - start) * scale, o.w * scale);
        } else {
          cls.add("h");
        }
      } else if (o.x <= start + eps && o.x + o.w >= end - eps) {
        // An ancestor: full width, dimmed, still clickable to zoom back out to it.
        cls.remove("h"); cls.add("a");
        place(o, xpad, inner);
      } else {
        cls.add("h");
      }
    }
    root.classList.add("zoomed");
  }

  function unzoom() {
    zoomed = null;
    for (var i = 0; i < frames.length; i++) {
      var o = frames[i];
      o.g.classList.remove("h");
      o.g.classList.remove("a");
      o.rect.setAttribute("x", o.ox);
      o.rect.setAttribute("width", o.ow);
      if (o.text) {
        if (o.otext === null) {
          o.g.removeChild(o.text);
          o.text = null;
        } else {
          o.text.setAttribute("x", o.otx);
          o.text.textContent = o.otext;
        }
      }
    }
    root.classList.remove("zoomed");
  }

  // --- search ------------------------------------------------------------------------------
  var searchTerm = null;

  function compile(term) {
    var m = /^\/(.*)\/([a-z]*)$/.exec(term);  // "/pattern/i" sets flags
    try {
      return m ? new RegExp(m[1], m[2].replace(/[gy]/g, "")) : new RegExp(term);
    } catch (e) {
      return null;
    }
  }

  function setMatched(s) { matched.textContent = s; }

  function search(term) {
    var re = term instanceof RegExp ? new RegExp(term.source, term.flags.replace(/[gy]/g, "")) : compile(String(term));
    if (!re) {
      clearSearch();
      setMatched("Invalid regular expression");
      return null;
    }
    searchTerm = term;
    var hits = [];
    for (var i = 0; i < frames.length; i++) {
      var f = frames[i];
      if (re.test(f.name)) {
        f.g.classList.add("m");
        hits.push(f);
      } else {
        f.g.classList.remove("m");
      }
    }
    // A match inside a match covers no new weight: add up the union of the intervals.
    hits.sort(function (a, b) { return a.x - b.x || b.w - a.w; });
    var sum = 0, s = 0, e = -Infinity;
    for (var j = 0; j < hits.length; j++) {
      var h = hits[j];
      if (h.x < e - eps) {
        if (h.x + h.w > e) e = h.x + h.w;
      } else {
        if (e > s) sum += e - s;
        s = h.x; e = h.x + h.w;
      }
    }
    if (e > s) sum += e - s;
    var pct = total > 0 ? 100 * sum / total : 0;
    setMatched("Matched: " + pct.toFixed(pct > 0 && pct < 1 ? 2 : 1) + "%");
    root.classList.add("searching");
    return { count: hits.length, percent: pct };
  }

  function clearSearch() {
    searchTerm = null;
    for (var i = 0; i < frames.length; i++) frames[i].g.classList.remove("m");
    setMatched(" ");
    root.classList.remove("searching");
  }

  function askSearch() {
    var term = window.prompt("Search frames (regular expression, /re/i to ignore case):",
                             searchTerm === null ? "" : String(searchTerm));
    if (term === null) return;
    if (term === "") clearSearch(); else search(term);
  }

  // --- events: one delegated listener per kind, on this graph's own elements --------------
  framesEl.addEventListener("mouseover", function (e) {
    var f = frameOf(e.target);
    if (f) details.textContent = describe(f);
  });
  framesEl.addEventListener("mouseout", function () { details.textContent = " "; });
  framesEl.addEventListener("click", function (e) {
    var f = frameOf(e.target);
    if (f) zoom(f);
  });
  part("unzoom").addEventListener("click", unzoom);
  part("search").addEventListener("click", askSearch);
  part("clear").addEventListener("click", clearSearch);

  // Keys: a graph alone in its document always listens. Inline in a page, a graph answers
  // only while the pointer is over it, or while it has focus and the pointer is over no
  // other graph, so Ctrl-F elsewhere on the page stays the browser's own find.
  var standalone = root === document.documentElement;
  if (!standalone && !root.hasAttribute("tabindex")) root.setAttribute("tabindex", "0");

  function active() {
    if (standalone || root.matches(":hover")) return true;
    if (document.querySelector("svg.pkfg:hover")) return false;
    var el = document.activeElement;
    return !!el && root.contains(el);
  }

  document.addEventListener("keydown", function (e) {
    if (!active()) return;
    var key = e.key || "";
    if ((e.ctrlKey || e.metaKey) && !e.altKey && (key === "f" || key === "F" || e.keyCode === 70)) {
      e.preventDefault();
      askSearch();
    } else if (key === "Escape") {
      if (searchTerm !== null) clearSearch(); else if (zoomed) unzoom();
    }
  });

  root.profkit = {
    /** Highlight frames whose names match; returns {count, percent} or null for a bad regex. */
    search: search,
    clearSearch: clearSearch,
    /** Zoom into the i-th frame (document order; 0 is the root) or a frame's <g> element. */
    zoom: function (which) { zoom(typeof which === "number" ? frames[which] : frameOf(which)); },
    unzoom: unzoom,
    /** The frames' names, in document order. */
    names: function () { return frames.map(function (f) { return f.name; }); }
  };
})();
