// SPDX-License-Identifier: Apache-2.0
// profkit report: the time view. A heatmap of the timed samples (x: seconds, y: 50 ms buckets
// of each second, colour: samples), a thread selector, and for the selected range and thread a
// flame graph, its top functions and a flame chart (stacks in time order, per thread).
// Offline, no libraries; names are only ever set with textContent / setAttribute.
(function () {
  "use strict";
  var dataEl = document.getElementById("pk-timeline-data");
  if (!dataEl) { return; }
  var D = JSON.parse(dataEl.textContent);
  var ROWS = 20, BUCKET = 1 / ROWS;
  var littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

  function column(b64, Ctor) {
    var bin = atob(b64), n = bin.length, u8 = new Uint8Array(n), i;
    for (i = 0; i < n; i++) { u8[i] = bin.charCodeAt(i); }
    if (littleEndian) { return new Ctor(u8.buffer); }
    var size = Ctor.BYTES_PER_ELEMENT, out = new Ctor(n / size), dv = new DataView(u8.buffer);
    for (i = 0; i < out.length; i++) { out[i] = size === 2 ? dv.getUint16(i * 2, true) : dv.getUint32(i * 4, true); }
    return out;
  }
  var T = column(D.t, Uint32Array), S = column(D.s, Uint32Array), H = column(D.h, Uint16Array);
  var W = D.w ? column(D.w, Uint32Array) : null, W1 = D.w1 || 1;
  var N = T.length, TICK = D.tick_ms / 1000;
  var last = N ? T[N - 1] * TICK : 0;
  var COLS = Math.max(1, Math.ceil(last + 1e-9) + (last % 1 === 0 ? 1 : 0));
  var idle = {};
  D.idle.forEach(function (i) { idle[i] = true; });
  var state = { from: 0, until: COLS, thread: "all" };

  function $(id) { return document.getElementById(id); }
  function weight(i) { return W ? W[i] : W1; }
  function threadOk(h) {
    if (state.thread === "all") { return true; }
    if (state.thread === "idle") { return !!idle[h]; }
    return String(h) === state.thread;
  }
  function inRange(i) { var t = T[i] * TICK; return t >= state.from && t < state.until; }
  function fmt(v) {
    if (D.unit === "nanoseconds") { return (v / 1e9).toFixed(3) + " s"; }
    if (D.unit === "bytes") { return (v / 1048576).toFixed(1) + " MiB"; }
    return String(v) + " " + D.unit;
  }

  // -- thread selector ------------------------------------------------------------------
  function fillThreads() {
    var sel = $("pk-thread"), per = {}, i;
    for (i = 0; i < N; i++) { per[H[i]] = (per[H[i]] || 0) + 1; }
    var busy = [], idles = [];
    Object.keys(per).forEach(function (h) { (idle[h] ? idles : busy).push(+h); });
    busy.sort(function (a, b) { return per[b] - per[a]; });
    function add(parent, value, text) {
      var o = document.createElement("option");
      o.value = value; o.textContent = text; parent.appendChild(o);
    }
    add(sel, "all", "all threads, merged (" + D.threads.length + ")");
    busy.forEach(function (h) { add(sel, String(h), D.threads[h] + " (" + per[h] + " samples)"); });
    if (idles.length) {
      var g = document.createElement("optgroup");
      g.setAttribute("label", "idle threads (nine in ten samples waiting)");
      add(g, "idle", "all idle threads, merged (" + idles.length + ")");
      idles.forEach(function (h) { add(g, String(h), D.threads[h] + " (" + per[h] + " samples)"); });
      sel.appendChild(g);
    }
    sel.addEventListener("change", function () { state.thread = sel.value; redraw(); });
  }

  // -- heatmap ---------------------------------------------------------------------------
  var canvas = $("pk-heatmap"), ctx = canvas.getContext("2d");
  var CW = Math.max(3, Math.min(14, Math.floor(1180 / COLS))), CH = 6;
  canvas.width = COLS * CW; canvas.height = ROWS * CH;
  var drag = null;

  function cellAt(ev) {
    var r = canvas.getBoundingClientRect();
    var x = Math.min(COLS - 1, Math.max(0, Math.floor((ev.clientX - r.left) / CW)));
    var y = Math.min(ROWS - 1, Math.max(0, Math.floor((ev.clientY - r.top) / CH)));
    return x * ROWS + y;
  }
  function drawHeatmap() {
    var counts = new Float64Array(COLS * ROWS), max = 0, i, c;
    for (i = 0; i < N; i++) {
      if (!threadOk(H[i])) { continue; }
      c = Math.min(COLS * ROWS - 1, Math.floor(T[i] * TICK / BUCKET));
      counts[c] += 1;
      if (counts[c] > max) { max = counts[c]; }
    }
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    for (c = 0; c < counts.length; c++) {
      if (!counts[c]) { continue; }
      var v = Math.sqrt(counts[c] / max);
      ctx.fillStyle = "rgb(" + Math.round(255 - 55 * v) + "," + Math.round(235 - 200 * v) + "," + Math.round(200 - 190 * v) + ")";
      ctx.fillRect(Math.floor(c / ROWS) * CW, (c % ROWS) * CH, CW - 1, CH - 1);
    }
    var a = Math.round(state.from / BUCKET), b = Math.round(state.until / BUCKET);
    if (a > 0 || b < COLS * ROWS) {
      ctx.strokeStyle = "#1565c0"; ctx.lineWidth = 2;
      for (c = a; c < b && c < COLS * ROWS; c++) {
        ctx.strokeRect(Math.floor(c / ROWS) * CW + 1, (c % ROWS) * CH + 1, CW - 2, CH - 2);
      }
    }
    $("pk-range").textContent = state.from.toFixed(2) + " s to " + state.until.toFixed(2) + " s";
  }
  canvas.addEventListener("mousedown", function (ev) { drag = cellAt(ev); ev.preventDefault(); });
  canvas.addEventListener("mousemove", function (ev) {
    if (drag === null) { return; }
    var c = cellAt(ev);
    state.from = Math.min(drag, c) * BUCKET; state.until = (Math.max(drag, c) + 1) * BUCKET;
    drawHeatmap();
  });
  window.addEventListener("mouseup", function (ev) {
    if (drag === null) { return; }
    var c = ev.target === canvas ? cellAt(ev) : drag;
    select(Math.min(drag, c) * BUCKET, (Math.max(drag, c) + 1) * BUCKET);
    drag = null;
  });
  $("pk-reset").addEventListener("click", function () { select(0, COLS); });

  // -- flame graph of the selection -----------------------------------------------------
  function aggregate() {
    var per = new Float64Array(D.stacks.length), total = 0, i;
    for (i = 0; i < N; i++) {
      if (inRange(i) && threadOk(H[i])) { per[S[i]] += weight(i); total += weight(i); }
    }
    return { per: per, total: total };
  }
  function tree(agg) {
    var root = { name: "all", w: 0, kids: {}, order: [] }, s, j;
    for (s = 0; s < agg.per.length; s++) {
      var w = agg.per[s];
      if (!w) { continue; }
      var node = root, stack = D.stacks[s];
      root.w += w;
      for (j = 0; j < stack.length; j++) {
        var f = stack[j], k = node.kids[f];
        if (!k) { k = node.kids[f] = { name: D.frames[f], w: 0, kids: {}, order: [] }; node.order.push(f); }
        k.w += w; node = k;
      }
    }
    return root;
  }
  function drawFlame(agg) {
    var box = $("pk-flame"), width = boxWidth, rows = [], maxDepth = 0, frag = document.createDocumentFragment();
    box.textContent = "";
    var root = tree(agg);
    if (!root.w) { box.textContent = "No samples in this range."; box.style.height = "2em"; return; }
    function walk(node, x, depth) {
      var px = node.w / root.w * width;
      if (px < 1) { return; }
      rows.push([node, x, px, depth]);
      if (depth > maxDepth) { maxDepth = depth; }
      var names = node.order.slice().sort(function (a, b) { return D.frames[a] < D.frames[b] ? -1 : 1; });
      names.forEach(function (f) { var k = node.kids[f]; walk(k, x, depth + 1); x += k.w / root.w * width; });
    }
    walk(root, 0, 0);
    box.style.height = ((maxDepth + 1) * 17 + 2) + "px";
    rows.forEach(function (r) {
      var d = document.createElement("div");
      d.className = "pk-frame";
      d.style.left = r[1] + "px"; d.style.width = Math.max(0, r[2] - 1) + "px";
      d.style.top = ((maxDepth - r[3]) * 17) + "px";
      var hue = (r[0].name.length * 37) % 60;
      d.style.background = r[3] === 0 ? "#ddd" : "hsl(" + (10 + hue) + ",80%," + (58 + (r[3] % 3) * 4) + "%)";
      d.textContent = r[0].name;
      d.setAttribute("title", r[0].name + " — " + fmt(r[0].w) + " (" + (100 * r[0].w / root.w).toFixed(1) + "%)");
      frag.appendChild(d);
    });
    box.appendChild(frag);
  }
  function drawTop(agg) {
    var self = {}, s;
    for (s = 0; s < agg.per.length; s++) {
      if (!agg.per[s]) { continue; }
      var st = D.stacks[s], leaf = st.length ? D.frames[st[st.length - 1]] : "(empty stack)";
      self[leaf] = (self[leaf] || 0) + agg.per[s];
    }
    var top = Object.keys(self).sort(function (a, b) { return self[b] - self[a]; }).slice(0, 10);
    var ol = $("pk-top");
    ol.textContent = "";
    top.forEach(function (name) {
      var li = document.createElement("li"), code = document.createElement("code");
      code.textContent = name; li.appendChild(code);
      li.appendChild(document.createTextNode(" " + (100 * self[name] / agg.total).toFixed(1) + "%"));
      li.setAttribute("data-name", name);
      ol.appendChild(li);
    });
  }

  // -- flame chart: stacks in time order, a lane per thread ------------------------------
  function drawChart() {
    var box = $("pk-chart"), width = boxWidth, span = state.until - state.from;
    box.textContent = "";
    var frag = document.createDocumentFragment();
    var lanes = {}, order = [], i, MAXLANES = 12, MAXBLOCKS = 4000, blocks = 0;
    for (i = 0; i < N; i++) {
      if (!inRange(i) || !threadOk(H[i])) { continue; }
      if (!lanes[H[i]]) { lanes[H[i]] = []; order.push(H[i]); }
      lanes[H[i]].push(i);
    }
    order.sort(function (a, b) { return lanes[b].length - lanes[a].length; });
    var top = 0;
    order.slice(0, MAXLANES).forEach(function (h) {
      var idx = lanes[h], open = [], depthMax = 0, gap = 1 / 100, k;
      if (idx.length > 1) { gap = Math.max(TICK, (T[idx[idx.length - 1]] - T[idx[0]]) * TICK / (idx.length - 1)); }
      var label = document.createElement("div");
      label.className = "pk-lane"; label.style.top = top + "px";
      label.textContent = D.threads[h];
      frag.appendChild(label);
      top += 16;
      var base = top, out = [];
      function close(fromDepth, end) {
        while (open.length > fromDepth) { var b = open.pop(); b.end = end; out.push(b); }
      }
      gap = Math.max(gap, span / width);  // one sample per pixel column is all a lane can show
      var lastPx = -1;
      for (k = 0; k < idx.length; k++) {
        var t = T[idx[k]] * TICK, px = Math.floor((t - state.from) / span * width), st, d = 0;
        if (px === lastPx) { continue; }
        lastPx = px;
        st = D.stacks[S[idx[k]]];
        while (d < open.length && d < st.length && open[d].f === st[d] && t - open[d].last <= 3 * gap) { open[d].last = t; d++; }
        close(d, t);
        for (; d < st.length; d++) { open.push({ f: st[d], start: t, last: t, depth: d }); }
        if (st.length > depthMax) { depthMax = st.length; }
        for (d = 0; d < open.length; d++) { open[d].last = t; }
      }
      close(0, idx.length ? T[idx[idx.length - 1]] * TICK + gap : 0);
      out.forEach(function (b) {
        var x = (b.start - state.from) / span * width, w = (b.end - b.start) / span * width;
        if (w < 2 || blocks >= MAXBLOCKS) { return; }
        blocks++;
        var div = document.createElement("div");
        div.className = "pk-frame";
        div.style.left = x + "px"; div.style.width = Math.max(0, w - 1) + "px";
        div.style.top = (base + b.depth * 17) + "px";
        div.style.background = "hsl(" + (200 + (D.frames[b.f].length * 23) % 50) + ",60%,72%)";
        div.textContent = D.frames[b.f];
        div.setAttribute("title", D.frames[b.f] + " — " + b.start.toFixed(2) + " s to " + b.end.toFixed(2) + " s");
        div.setAttribute("data-start", b.start.toFixed(3));
        frag.appendChild(div);
      });
      top = base + depthMax * 17 + 8;
    });
    if (order.length > MAXLANES) {
      var more = document.createElement("div");
      more.className = "pk-lane"; more.style.top = top + "px";
      more.textContent = "… and " + (order.length - MAXLANES) + " more threads: pick one above";
      frag.appendChild(more);
      top += 18;
    }
    box.appendChild(frag);
    box.style.height = Math.max(20, top) + "px";
  }

  var timings = {};
  function timed(name, fn) { var t = performance.now(), r = fn(); timings[name] = performance.now() - t; return r; }
  var boxWidth = 1180;
  function redraw() {
    boxWidth = $("pk-flame").clientWidth || boxWidth;  // read once: layout is not forced again below
    timed("heatmap", drawHeatmap);
    var agg = timed("aggregate", aggregate);
    timed("flame", function () { drawFlame(agg); });
    timed("top", function () { drawTop(agg); });
    timed("chart", drawChart);
    $("pk-selected").textContent = fmt(agg.total);
    document.body.setAttribute("data-pk-drawn", String(+new Date()));
  }
  function select(from, until) {
    state.from = Math.max(0, from); state.until = Math.max(state.from + BUCKET, until);
    redraw();
  }
  window.profkitTimeline = {
    select: select, state: state, timings: timings,
    thread: function (value) { var sel = $("pk-thread"); sel.value = value; state.thread = value; redraw(); },
    cell: { width: CW, height: CH, rows: ROWS, cols: COLS }
  };
  fillThreads();
  redraw();
})();
