# SPDX-License-Identifier: Apache-2.0
"""What holds the memory: shortest paths from GC roots to the instances of suspect classes,
grouped by holder chain, and the retained size of each chain's holder.

    HeapGraph ─ BFS from the roots (numpy, one frontier a level) → parent and field of each object
      durable roots first: every class (its statics), threads, JNI globals, monitors; stack locals
      only for what nothing durable reaches, so a cache is shown through its static field
    per suspect class: each reachable instance's path, read up the BFS tree (memoised) as a chain
      ``static a.Cache.ENTRIES → java.util.HashMap → java.util.HashMap$Node[] → … → the class``;
      a run of objects of one class (a linked chain) shows once; the chains that hold most
      instances are kept
    retained bytes of a chain's holder (the object its root refers to: the static field's value,
      the thread…) = the bytes reachable from the roots minus those still reachable with the
      holder removed: exactly what a dominator tree gives the holder, by one more BFS

Only class names, field names, counts and sizes come out: never a field's value.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from profkit.heap.hprof import KIND_CLASS, ROOT_KINDS, TRANSIENT_ROOTS, HeapGraph
from profkit.heap.hprof_graph import CLASS_ROOT

__all__ = ["Paths", "class_histogram", "retaining_paths", "stack_held", "MAX_ITEMS"]

#: the most items of a path shown (its start and its end; the middle becomes "…")
MAX_ITEMS = 12


class Paths:
    """The BFS tree of a graph, kept as one path signature per object: ``sig[i]`` (-1 if
    unreachable) and ``holder[i]`` (the object that the path's root refers to: a static field's
    value, or the root object itself). A signature is a root item and a chain of classes (a run of
    one class once); ``_sig_parent``/``_sig_cls``/``_sig_via`` spell it out."""

    def __init__(self, g: HeapGraph):
        self.g = g
        n = g.nodes
        self.sig = np.full(n, -1, dtype=np.int32)
        self.holder = np.full(n, -1, dtype=np.int32)
        self._sig_parent: List[int] = []
        self._sig_cls: List[int] = []
        self._sig_via: List[int] = []
        self._sig_root: Dict[int, str] = {}
        self._index: Dict[Tuple[int, int], int] = {}
        self.root_tag: Dict[int, int] = dict(zip(g.roots.tolist(), g.root_tags.tolist()))
        transient = np.isin(g.root_tags, list(TRANSIENT_ROOTS))
        self.reached = _bfs(g, g.roots[~transient], None, self)
        late = g.roots[transient]
        late = late[~self.reached[late]]
        #: objects that only stack locals hold (work in progress, not kept by the application)
        self.late = np.zeros(n, dtype=bool)
        if late.size:
            self.late = _bfs(g, late, self.reached.copy(), self)
            self.reached |= self.late
        self.reachable_bytes = int(g.size[self.reached].sum())
        self._retained: Dict[Tuple[int, ...], int] = {}

    # -- signatures, level by level (called by the BFS) --
    def _new(self, key: Tuple[int, int], parent: int, cls: int, via: int, root: Optional[str] = None) -> int:
        i = self._index.get(key)
        if i is None:
            i = self._index[key] = len(self._sig_cls)
            self._sig_parent.append(parent), self._sig_cls.append(cls), self._sig_via.append(via)
            if root is not None:
                self._sig_root[i] = root
        return i

    def _roots(self, nodes: np.ndarray) -> None:
        g = self.g
        for r in nodes.tolist():
            tag = self.root_tag.get(r, 0xFF)
            if tag == CLASS_ROOT:
                continue  # a class: its static fields start the paths of the next level
            label = ROOT_KINDS.get(tag, ("root", 0))[0]
            self.sig[r] = self._new((-2 - tag, int(g.cls[r])), -1, int(g.cls[r]), -1, label)
            self.holder[r] = r

    def _level(self, src: np.ndarray, nb: np.ndarray, via: np.ndarray) -> None:
        g = self.g
        psig = self.sig[src]
        cls = g.cls[nb].astype(np.int64)
        out = np.empty(nb.size, dtype=np.int32)
        static = psig < 0  # the parent is a class (a root): the edge is a static field (or its loader)
        if static.any():
            keys = (src[static].astype(np.int64) << 32) | via[static].astype(np.int64)
            ks, inv = np.unique(np.stack([keys, cls[static]]), axis=1, return_inverse=True)
            ids = np.array([self._static_sig(int(k) >> 32, int(k) & 0xFFFFFFFF, int(c)) for k, c in ks.T], dtype=np.int32)
            out[static] = ids[inv.ravel()]
            self.holder[nb[static]] = nb[static]
        rest = ~static
        if rest.any():
            ps = psig[rest].astype(np.int64)
            cs = cls[rest]
            same = np.asarray(self._sig_cls_arr(), dtype=np.int64)[ps] == cs  # a run of one class: once
            keys = ps * len(g.class_names) + cs
            ks, inv = np.unique(keys, return_inverse=True)
            vs = via[rest]
            first = np.zeros(ks.size, dtype=np.int64)
            first[inv[::-1]] = np.arange(inv.size)[::-1]
            ids = np.array([self._new((int(k // len(g.class_names)), int(k % len(g.class_names))),
                                      int(k // len(g.class_names)), int(k % len(g.class_names)), int(vs[f]))
                            for k, f in zip(ks.tolist(), first.tolist())], dtype=np.int32)
            got = ids[inv]
            got[same] = ps[same]
            out[rest] = got
            self.holder[nb[rest]] = self.holder[src[rest]]
        self.sig[nb] = out

    def _sig_cls_arr(self):
        if getattr(self, "_cls_cache", None) is None or len(self._cls_cache) != len(self._sig_cls):
            self._cls_cache = np.array(self._sig_cls, dtype=np.int64)
        return self._cls_cache

    def _static_sig(self, cnode: int, via: int, cls: int) -> int:
        g = self.g
        name = g.labels[via]
        item = f"class loader of {g.class_names[g.cls[cnode]]}" if via == 1 else f"static {g.class_names[g.cls[cnode]]}.{name}"
        root = self._new((-1, hash(item)), -1, -1, -1, item)
        return self._new((root, cls), root, cls, via)

    def chain(self, s: int) -> Tuple[List[str], List[str]]:
        """A signature's path items (root first) and the field by which each next item is reached."""
        items, fields = [], []
        while s >= 0:
            if s in self._sig_root:
                items.append(self._sig_root[s])
                if self._sig_cls[s] >= 0:  # a root object: its class is the next item
                    items.insert(-1, self.g.class_names[self._sig_cls[s]])
                    fields.append("")
                break
            items.append(self.g.class_names[self._sig_cls[s]])
            fields.append(self.g.labels[self._sig_via[s]] if self._sig_via[s] >= 0 else "")
            s = self._sig_parent[s]
        items.reverse()
        fields.reverse()
        return items, fields

    def retained(self, holders: Iterable[int]) -> int:
        """Bytes that only ``holders`` keep alive (with the holders themselves)."""
        key = tuple(sorted(set(int(h) for h in holders)))
        if key not in self._retained:
            blocked = np.zeros(self.g.nodes, dtype=bool)
            blocked[list(key)] = True
            roots = self.g.roots[~blocked[self.g.roots]]
            still = _bfs(self.g, roots, blocked, None)
            still[list(key)] = False
            self._retained[key] = self.reachable_bytes - int(self.g.size[still & self.reached].sum())
        return self._retained[key]


def _bfs(g: HeapGraph, roots: np.ndarray, visited: Optional[np.ndarray], paths: Optional[Paths]) -> np.ndarray:
    """Visit everything reachable from ``roots`` (not through ``visited``); with ``paths``, give
    each object its path signature. Returns the mask of the nodes this BFS visited."""
    seen = np.zeros(g.nodes, dtype=bool) if visited is None else visited
    before = seen.copy() if visited is not None else None
    frontier = np.unique(roots[~seen[roots]]).astype(np.int64)
    seen[frontier] = True
    if paths is not None:
        paths._roots(frontier)
    indptr, dst, label = g.indptr, g.dst, g.label
    while frontier.size:
        starts = indptr[frontier]
        counts = indptr[frontier + 1] - starts
        total = int(counts.sum())
        if not total:
            break
        first = np.repeat(np.cumsum(counts) - counts, counts)
        edge = np.repeat(starts, counts) + (np.arange(total, dtype=np.int64) - first)
        nb = dst[edge]
        new = ~seen[nb]
        nb, edge = nb[new], edge[new]
        nb, keep = np.unique(nb, return_index=True)
        if paths is not None:
            paths._level(np.repeat(frontier, counts)[new][keep], nb, label[edge[keep]])
        seen[nb] = True
        frontier = nb.astype(np.int64)
    return seen if before is None else seen & ~before


def class_histogram(g: HeapGraph, paths: Optional[Paths] = None, mask: Optional[np.ndarray] = None) -> List[Tuple[str, int, int]]:
    """(class, instances, shallow bytes) of the dump's objects (reachable ones when ``paths`` is
    given, those of ``mask``), most bytes first; class objects left out."""
    m = g.kind != KIND_CLASS
    if paths is not None:
        m &= paths.reached
    if mask is not None:
        m &= mask
    n = np.bincount(g.cls[m], minlength=len(g.class_names))
    b = np.bincount(g.cls[m], weights=g.size[m], minlength=len(g.class_names))
    order = np.argsort(-b, kind="stable")
    return [(g.class_names[i], int(n[i]), int(b[i])) for i in order if n[i]]


def retaining_paths(g: HeapGraph, p: Paths, class_name: str, top: int = 3) -> List[dict]:
    """The chains that hold most of the reachable instances of ``class_name`` (by their bytes):
    ``[{"path": [...], "fields": [...], "instances", "bytes", "retained_bytes", "holders"}]``;
    ``bytes`` is the shallow size of those instances, ``retained_bytes`` what their holder keeps."""
    try:
        ci = g.class_names.index(class_name)
    except ValueError:
        return []
    targets = np.flatnonzero((g.cls == ci) & p.reached & (g.kind != KIND_CLASS))
    if not targets.size:
        return []
    sigs, inv, counts = np.unique(p.sig[targets], return_inverse=True, return_counts=True)
    weight = np.bincount(inv.ravel(), weights=g.size[targets], minlength=sigs.size)
    out = []
    for k in np.lexsort((-counts, -weight))[:top].tolist():
        items, fields = p.chain(int(sigs[k]))
        holders = _stack_holders(g, np.unique(p.holder[targets[p.sig[targets] == sigs[k]]]))
        if len(items) > MAX_ITEMS:
            items = items[:8] + ["…"] + items[-3:]
            fields = fields[:7] + ["…"] + fields[-3:]
        out.append({"path": items, "fields": fields, "instances": int(counts[k]), "bytes": int(weight[k]),
                    "retained_bytes": p.retained(holders.tolist()), "holders": int(holders.size)})
    return out


def _stack_holders(g: HeapGraph, holders: np.ndarray) -> np.ndarray:
    """A chain that starts at a thread's stack local is held by that whole stack (its frames share
    what they build): the holders become every stack root of the same threads."""
    stack = np.isin(g.root_tags, list(TRANSIENT_ROOTS))
    is_root = np.isin(g.roots, holders) & stack
    threads = set(g.root_threads[is_root].tolist()) - {0}
    if not threads:
        return holders
    same = stack & np.isin(g.root_threads, list(threads))
    return np.union1d(holders, g.roots[same])


def stack_held(g: HeapGraph, p: Paths, top: int = 5) -> dict:
    """What only threads' stacks hold (objects no static field, thread object or JNI global
    reaches): their bytes, the thread that holds most and its stack at the dump, the classes."""
    bytes_ = int(g.size[p.late].sum())
    out: Dict[str, object] = {"bytes": bytes_, "share": round(bytes_ / max(1, p.reachable_bytes), 3),
                              "classes": [], "thread_stack": [], "thread_bytes": 0}
    if not bytes_:
        return out
    thread_of = dict(zip(g.roots.tolist(), g.root_threads.tolist()))
    holders = p.holder[p.late]
    uniq, inv = np.unique(holders, return_inverse=True)
    per_holder = np.bincount(inv.ravel(), weights=g.size[p.late])
    by_thread: Dict[int, float] = {}
    for h, b in zip(uniq.tolist(), per_holder.tolist()):
        t = thread_of.get(h, 0)
        by_thread[t] = by_thread.get(t, 0.0) + b
    thread, tb = max(by_thread.items(), key=lambda kv: kv[1])
    out["thread_bytes"] = int(tb)
    frames = g.traces.get(thread, [])
    # the OutOfMemoryError's own constructor frames are where it was thrown, not what was allocating
    while frames and frames[0].startswith(("java.lang.OutOfMemoryError.", "java.lang.Throwable.", "java.lang.Error.",
                                           "java.lang.VirtualMachineError.")):
        frames = frames[1:]
    out["thread_stack"] = frames[:40]
    out["classes"] = [{"name": c, "instances": n, "bytes": b} for c, n, b in class_histogram(g, p, p.late)[:top]]
    return out
