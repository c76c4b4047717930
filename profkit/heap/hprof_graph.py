# SPDX-License-Identifier: Apache-2.0
"""From the HPROF pass's compact arrays to the :class:`~profkit.heap.hprof.HeapGraph`: node
arrays sorted by object id, references read from the mapped file class by class (numpy), CSR.

Edges: a class's static reference fields and its class loader; an instance's reference fields
(its own and its super classes', as the dump lays them out), except ``java.lang.ref.Reference``'s
``referent`` (weak, soft and phantom references do not hold their target); an object array's
elements. Every class is a root (its statics are what an application's caches hang from).
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from profkit.heap.hprof import (_PRIM_NAMES, _TYPE_SIZE, KIND_CLASS, KIND_INSTANCE, KIND_OBJ_ARRAY,
                                KIND_PRIM_ARRAY, TRANSIENT_ROOTS, HeapGraph, _drop_pages, _string, java_name, stack_of)

__all__ = ["build_graph", "CLASS_ROOT"]

#: the root tag given to class objects (not an HPROF tag: every class holds its statics)
CLASS_ROOT = 0x120
#: elements per batch when reading object arrays (bounds the temporary arrays)
BATCH = 1 << 20


def _align8(n):
    return (n + 7) & ~7


class _Reader:
    """Big-endian ids at arbitrary byte offsets of the mapped file, without copying it: one
    read-only view per alignment."""

    def __init__(self, buf, size: int, id_size: int):
        dt = ">u8" if id_size == 8 else ">u4"
        self.n = id_size
        self.buf = buf
        self._read = 0
        self.views = [np.frombuffer(buf, dtype=dt, offset=s, count=(size - s) // id_size) for s in range(id_size)]

    def read(self, addr: np.ndarray) -> np.ndarray:
        out = np.empty(addr.size, dtype=np.uint64)
        rem = addr % self.n
        for s, view in enumerate(self.views):
            m = rem == s
            if m.any():
                out[m] = view[(addr[m] - s) // self.n]
        return out

    @property
    def read_bytes(self) -> int:
        return self._read

    @read_bytes.setter
    def read_bytes(self, n: int) -> None:
        self._read = n
        if n > BATCH:  # every million references: give the pages back
            self._read = 0
            _drop_pages(self.buf)

    def close(self) -> None:
        self.views.clear()


class _Labels:
    def __init__(self, scan):
        self.scan = scan
        self.names: List[str] = ["[]", "<class loader>"]
        self.index: Dict[str, int] = {}

    def of(self, sid: int) -> int:
        name = _string(self.scan, sid)
        i = self.index.get(name)
        if i is None:
            i = self.index[name] = len(self.names)
            self.names.append(name)
        return i


def _layouts(scan, labels: _Labels):
    """Per class id: (reference field offsets in its instance data, their labels, shallow size)."""
    n = scan.id_size
    ref_name = next((cid for cid, ci in scan.classes.items() if _string(scan, ci.name_id) == "java/lang/ref/Reference"), None)
    out: Dict[int, Tuple[np.ndarray, np.ndarray, int]] = {}
    for cid in scan.classes:
        offs, labs, pos, heap_bytes, c, seen = [], [], 0, 12, cid, 0
        while c and c in scan.classes and seen < 64:
            info = scan.classes[c]
            for name, t in info.fields:
                if t == 2:
                    if not (c == ref_name and _string(scan, name) == "referent"):
                        offs.append(pos)
                        labs.append(labels.of(name))
                    pos += n
                    heap_bytes += 4
                else:
                    s = _TYPE_SIZE.get(t, 0)
                    pos += s
                    heap_bytes += s
            c, seen = info.super_id, seen + 1
        out[cid] = (np.array(offs, dtype=np.int64), np.array(labs, dtype=np.int32), _align8(heap_bytes))
    return out


def build_graph(scan, buf, size: int) -> HeapGraph:
    labels = _Labels(scan)
    names: List[str] = []
    name_index: Dict[str, int] = {}

    def name_of(text: str) -> int:
        i = name_index.get(text)
        if i is None:
            i = name_index[text] = len(names)
            names.append(text)
        return i

    class_ids = np.fromiter(scan.classes.keys(), dtype=np.uint64, count=len(scan.classes))
    class_cls = np.array([name_of(java_name(_string(scan, scan.classes[int(c)].name_id))) for c in class_ids], dtype=np.int32)
    # views of the pass's array (no copies): id, class id, data offset; the count and kind split out
    objs = np.frombuffer(scan.objs, dtype=np.uint64).reshape(-1, 4) if len(scan.objs) else np.zeros((0, 4), np.uint64)
    obj_ids, raw_cls = objs[:, 0], objs[:, 1]
    off = objs[:, 2].view(np.int64)
    obj_kind = (objs[:, 3] >> np.uint64(56)).astype(np.int8)
    cnt = (objs[:, 3] & np.uint64((1 << 56) - 1)).view(np.int64)
    _drop_pages(buf)
    layouts = _layouts(scan, labels)

    # node order: by object id (classes and objects together)
    all_ids = np.concatenate([class_ids, obj_ids])
    order = np.argsort(all_ids, kind="stable")
    ids = all_ids[order]
    del all_ids
    nc, N = class_ids.size, ids.size
    pos_of = np.empty(N, dtype=np.int32)
    pos_of[order] = np.arange(N, dtype=np.int32)
    del order
    class_node, obj_node = pos_of[:nc], pos_of[nc:]

    def resolve(refs: np.ndarray):
        i = np.searchsorted(ids, refs).astype(np.int32)
        i[i >= N] = 0
        ok = (refs != 0) & (ids[i] == refs)
        return i, ok

    kind = np.empty(N, dtype=np.int8)
    cls = np.empty(N, dtype=np.int32)
    sz = np.empty(N, dtype=np.int64)
    kind[class_node] = KIND_CLASS
    cls[class_node] = class_cls
    sz[class_node] = [scan.classes[int(c)].static_bytes for c in class_ids]

    obj_cls, obj_sz, oarr = _object_classes(raw_cls, obj_kind, cnt, class_ids, class_cls, name_of)
    kind[obj_node] = obj_kind
    cls[obj_node] = obj_cls
    del obj_cls

    reader = _Reader(buf, size, scan.id_size)
    try:
        src_parts, dst_parts, lab_parts = [], [], []

        def add(src, refs, lab):
            i, ok = resolve(refs)
            src_parts.append(src[ok].astype(np.int32))
            dst_parts.append(i[ok].astype(np.int32))
            lab_parts.append(lab[ok] if isinstance(lab, np.ndarray) else np.full(int(ok.sum()), lab, dtype=np.int32))

        _static_edges(scan, class_ids, class_node, labels, add)
        _instance_edges(obj_kind, raw_cls, off, obj_node, obj_sz, layouts, reader, add)
        sz[obj_node] = obj_sz
        _array_edges(np.nonzero(oarr)[0], off, cnt, obj_node, reader, add)
    finally:
        reader.close()
    # the pass's arrays are done with: free them before the edges are sorted
    del objs, obj_ids, raw_cls, off, cnt, obj_kind, oarr
    scan.objs = None
    _drop_pages(buf)
    indptr, dst, lab = _csr(src_parts, dst_parts, lab_parts, N)
    roots, tags, threads = _roots(scan, class_node, resolve)
    traces = {t: stack_of(scan, t) for t in set(threads.tolist()) if t in scan.traces}
    return HeapGraph(path=scan.path, id_size=scan.id_size, ids=ids, kind=kind, cls=cls, size=sz, indptr=indptr,
                     dst=dst, label=lab, class_names=names, labels=labels.names, roots=roots, root_tags=tags,
                     root_threads=threads, traces=traces, file_bytes=size)


def _object_classes(raw_cls, obj_kind, cnt, class_ids, class_cls, name_of):
    """Each object's class name index and shallow size (instances get theirs from their layout
    later); and the mask of object arrays."""
    obj_cls = np.zeros(raw_cls.size, dtype=np.int32)
    obj_sz = np.zeros(raw_cls.size, dtype=np.int64)
    prim = obj_kind == KIND_PRIM_ARRAY
    for et, text in _PRIM_NAMES.items():
        m = prim & (raw_cls == et)
        obj_cls[m] = name_of(text)
        obj_sz[m] = _align8(16 + cnt[m] * _TYPE_SIZE[et])
    cid_to_name = dict(zip(class_ids.tolist(), class_cls.tolist()))
    nonprim = ~prim
    uniq, inv = np.unique(raw_cls[nonprim], return_inverse=True)
    unknown = name_of("(unknown class)")
    lut = np.array([cid_to_name.get(int(c), unknown) for c in uniq], dtype=np.int32)
    obj_cls[nonprim] = lut[inv] if uniq.size else 0
    oarr = obj_kind == KIND_OBJ_ARRAY
    obj_sz[oarr] = _align8(16 + 4 * cnt[oarr])
    return obj_cls, obj_sz, oarr


def _csr(src_parts, dst_parts, lab_parts, n: int):
    """The edges sorted by source: (indptr, dst, label)."""
    src = np.concatenate(src_parts) if src_parts else np.zeros(0, np.int32)
    src_parts.clear()
    dst = np.concatenate(dst_parts) if dst_parts else np.zeros(0, np.int32)
    dst_parts.clear()
    lab = np.concatenate(lab_parts) if lab_parts else np.zeros(0, np.int32)
    lab_parts.clear()
    e_order = np.argsort(src, kind="stable")
    dst, lab = dst[e_order], lab[e_order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return indptr, dst, lab


def _static_edges(scan, class_ids, class_node, labels, add) -> None:
    src, refs, labs = [], [], []
    for cid, node in zip(class_ids.tolist(), class_node.tolist()):
        info = scan.classes[cid]
        for name, ref in info.static_refs:
            src.append(node), refs.append(ref), labs.append(labels.of(name))
        if info.loader_id:
            src.append(node), refs.append(info.loader_id), labs.append(1)
    if src:
        add(np.array(src, dtype=np.int64), np.array(refs, dtype=np.uint64), np.array(labs, dtype=np.int32))


def _instance_edges(obj_kind, raw_cls, off, obj_node, obj_sz, layouts, reader, add) -> None:
    inst = np.nonzero(obj_kind == KIND_INSTANCE)[0]
    if not inst.size:
        return
    by = np.argsort(raw_cls[inst], kind="stable")
    inst = inst[by]
    keys = raw_cls[inst]
    bounds = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [inst.size]])
    for a, b in zip(starts.tolist(), ends.tolist()):
        members = inst[a:b]
        layout = layouts.get(int(keys[a]))
        if layout is None:
            obj_sz[members] = 16
            continue
        offs, labs, shallow = layout
        obj_sz[members] = shallow
        if not offs.size:
            continue
        for lo in range(0, members.size, max(1, BATCH // offs.size)):
            part = members[lo:lo + max(1, BATCH // offs.size)]
            addr = (off[part][:, None] + offs[None, :]).ravel()
            add(np.repeat(obj_node[part], offs.size), reader.read(addr), np.tile(labs, part.size))
            reader.read_bytes += addr.size


def _array_edges(arrays, off, cnt, obj_node, reader, add) -> None:
    n = reader.n
    i = 0
    while i < arrays.size:
        j, total = i, 0
        while j < arrays.size and (total == 0 or total + cnt[arrays[j]] <= BATCH):
            total += int(cnt[arrays[j]])
            j += 1
        part = arrays[i:j]
        counts = cnt[part]
        if total:
            first = np.repeat(np.cumsum(counts) - counts, counts)
            addr = np.repeat(off[part], counts) + (np.arange(total, dtype=np.int64) - first) * n
            add(np.repeat(obj_node[part], counts), reader.read(addr), 0)
            reader.read_bytes += addr.size
        i = j


def _roots(scan, class_node, resolve):
    """Root nodes, each once: classes, then durable GC roots (threads, JNI globals, monitors…),
    then transient ones (stack locals); with the thread serial of each (0: none)."""
    def arr(a, dt):
        return np.frombuffer(a, dtype=dt).astype(np.int64) if len(a) else np.zeros(0, np.int64)

    rid = np.frombuffer(scan.root_ids, dtype=np.uint64) if len(scan.root_ids) else np.zeros(0, np.uint64)
    rtag, rthr = arr(scan.root_tags, np.uint8), arr(scan.root_threads, np.uint32)
    i, ok = resolve(rid)
    i, rtag, rthr = i[ok], rtag[ok], rthr[ok]
    transient = np.isin(rtag, list(TRANSIENT_ROOTS))
    nodes = np.concatenate([class_node, i[~transient], i[transient]])
    tags = np.concatenate([np.full(class_node.size, CLASS_ROOT, np.int64), rtag[~transient], rtag[transient]])
    thr = np.concatenate([np.zeros(class_node.size, np.int64), rthr[~transient], rthr[transient]])
    _, first = np.unique(nodes, return_index=True)
    first.sort()
    return nodes[first].astype(np.int32), tags[first], thr[first]
