# SPDX-License-Identifier: Apache-2.0
"""The OTLP JSON parser of profkit/traces/jaeger.py (made cheaper for speed) reads exactly what the
plain one did: the same spans, and the same critical-path segments, on a fixed input."""
import json
import random

from profkit.traces.compare import TraceSet, analyse, compare_sets
from profkit.traces.critical import Span
from profkit.traces.jaeger import Trace, parse_answer, parse_otlp


def _reference_parse(doc, out, resources=None, known=()):
    """The parser as it was before it was made faster (a plain walk of the document)."""
    def ns(v):
        try:
            return int(v)
        except (TypeError, ValueError):
            return 0

    def attr(attrs, key):
        for a in attrs or ():
            if isinstance(a, dict) and a.get("key") == key:
                v = a.get("value") or {}
                for kind in ("stringValue", "intValue", "doubleValue", "boolValue"):
                    if kind in v:
                        return v[kind]
        return None

    body = doc.get("result", doc)
    n = 0
    for rs in (body.get("resourceSpans") or []) if isinstance(body, dict) else []:
        if not isinstance(rs, dict):
            continue
        attrs = (rs.get("resource") or {}).get("attributes")
        service = str(attr(attrs, "service.name") or "?")
        if resources is not None and service not in resources:
            pid = attr(attrs, "process.pid")
            resources[service] = {"process.pid": ns(pid) if pid is not None else None}
        for ss in rs.get("scopeSpans") or ():
            for sp in (ss.get("spans") or ()) if isinstance(ss, dict) else ():
                if not isinstance(sp, dict) or not sp.get("traceId") or not sp.get("spanId"):
                    continue
                tid = str(sp["traceId"])
                t = out.get(tid)
                if t is None:
                    t = out[tid] = Trace(tid)
                if tid in known:
                    continue
                t.spans.append(Span(str(sp["spanId"]), str(sp.get("parentSpanId") or ""), service,
                                    str(sp.get("name") or "?"), ns(sp.get("startTimeUnixNano")),
                                    ns(sp.get("endTimeUnixNano"))))
                n += 1
    return n


def _fixed_document(seed=14, traces=60):
    """Jaeger's shape (one resourceSpans per trace and service), with the odd parts a real answer
    may have: attributes before service.name, pids as strings and numbers, missing and non-string
    fields, malformed times, entries that are not objects, hostile names."""
    rnd = random.Random(seed)
    services = ["gateway", "checkout", "payment", "db <script>", ""]
    rs = []
    for t in range(traces):
        tid = f"{rnd.getrandbits(128):032x}"
        t0 = 1_700_000_000_000_000_000 + t * 10**9
        ids = [f"{rnd.getrandbits(64):016x}" for _ in range(8)]
        for k, svc in enumerate(services):
            attrs = [{"key": "telemetry.sdk.name", "value": {"stringValue": "opentelemetry"}},
                     {"key": "process.pid", "value": {"intValue": str(1000 + k)} if k % 2 else {"intValue": 1000 + k}}]
            if svc:
                attrs.append({"key": "service.name", "value": {"stringValue": svc}})
            spans = []
            for j in range(k, 8, len(services)):
                start = t0 + j * 1_000_000
                span = {"traceId": tid, "spanId": ids[j], "name": rnd.choice(["GET /checkout", "SELECT", "op;x\n", 7, ""]),
                        "kind": 2, "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + rnd.randint(1, 9) * 10**6),
                        "attributes": [{"key": "http.route", "value": {"stringValue": "/checkout"}}], "status": {}}
                if j:
                    span["parentSpanId"] = ids[rnd.randrange(j)] if rnd.random() > 0.05 else "deadbeefdeadbeef"
                if rnd.random() < 0.03:
                    span["endTimeUnixNano"] = "not a number"
                spans.append(span)
            spans += ["junk", {"traceId": tid}, {"spanId": "00"}]
            rs.append({"resource": {"attributes": attrs}, "scopeSpans": [{"scope": {"name": "x"}, "spans": spans}, 5]})
    rs.append(None)
    return {"result": {"resourceSpans": rs}}


def _spans(out):
    return {tid: [(s.span_id, s.parent_id, s.service, s.operation, s.start, s.end) for s in t.spans]
            for tid, t in out.items()}


def test_same_spans_and_resources_as_the_plain_parser():
    doc = _fixed_document()
    ref, ref_res = {}, {}
    fast, fast_res = {}, {}
    first = {}
    _reference_parse(doc, first)
    known = {next(iter(first))}  # one trace read already
    assert _reference_parse(doc, ref, ref_res, known) == parse_otlp(doc, fast, fast_res, known) > 0
    assert _spans(ref) == _spans(fast)
    assert {k: v["process.pid"] for k, v in fast_res.items()} == {k: v["process.pid"] for k, v in ref_res.items()}
    assert fast_res["payment"]["process.pids"] == [1002]
    # the same bytes through parse_answer (the JSON library it uses)
    again = {}
    parse_answer(json.dumps(doc).encode(), again, {}, known)
    assert _spans(again) == _spans(ref)


def test_same_segments_as_the_plain_parser():
    base_doc, head_doc = _fixed_document(1), _fixed_document(2)
    docs = []
    for parse in (_reference_parse, parse_otlp):
        sets = []
        for label, d in (("base", base_doc), ("head", head_doc)):
            out = {}
            parse(d, out)
            sets.append(TraceSet(label, label, analyse(list(out.values()))))
        docs.append(compare_sets("gateway", *sets))
    assert docs[0]["segments"] and docs[0] == docs[1]


def test_traces_json_writer_gives_the_same_document():
    from profkit.fastjson import dumps, loads

    out = {}
    parse_otlp(_fixed_document(3), out)
    half = list(out.values())
    doc = compare_sets("gw <script>\u202e", TraceSet("base", "b", analyse(half[:30])), TraceSet("head", "h", analyse(half[30:])))
    doc.update({"fetch": {"jaeger_seconds": 0.125, "big": 2**70}, "none": None, "ok": True})
    text = dumps(doc)
    assert text.endswith("}\n") and "\n  \"base\": {" in text
    assert json.loads(text) == json.loads(json.dumps(doc, indent=2)) == loads(text.encode())
