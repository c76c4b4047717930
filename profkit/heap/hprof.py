# SPDX-License-Identifier: Apache-2.0
"""A streaming HPROF 1.0.2 reader (the format of ``jcmd PID GC.heap_dump`` and of
``-XX:+HeapDumpOnOutOfMemoryError``) into a compact object graph.

    file (mmap, read once, front to back)
      header "JAVA PROFILE 1.0.2" · id size · time
      records: tag · time · length (checked against the file's size)
        STRING, LOAD_CLASS                       → class and field names (symbols, not values)
        HEAP_DUMP / HEAP_DUMP_SEGMENT sub-records → ROOT_* · CLASS_DUMP · INSTANCE_DUMP ·
                                                    OBJ_ARRAY_DUMP · PRIM_ARRAY_DUMP
    → HeapGraph: numpy arrays, one entry per object (id, class, estimated shallow size) and the
      references as CSR (indptr, dst, field label): no Python object per heap object.

The one pass keeps only where each object's data is (offset and count) in compact arrays; the
references are then read from the mapped file class by class with numpy. Field *values*
(primitives, strings' bytes) are never decoded: only class names, field names and sizes leave
this module.

Shallow sizes are estimated as HotSpot lays objects out on a 64-bit JVM with compressed oops
and class pointers (the default below 32 GB of heap): a 12-byte header (16 for arrays), 4-byte
references, rounded up to 8 bytes; a class's size is its static fields'.
"""
from __future__ import annotations

import mmap
import os
import re
import struct
from array import array
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np

from profkit.errors import InputError

__all__ = ["HeapGraph", "ROOT_KINDS", "read_hprof"]

MAGIC = b"JAVA PROFILE 1.0."
#: basic type → size in the dump (2, an object reference, is the id size)
_TYPE_SIZE = {4: 1, 5: 2, 6: 4, 7: 8, 8: 1, 9: 2, 10: 4, 11: 8}
_PRIM_NAMES = {4: "boolean[]", 5: "char[]", 6: "float[]", 7: "double[]", 8: "byte[]", 9: "short[]",
               10: "int[]", 11: "long[]"}
#: sub-record tag of a GC root → (label in paths, bytes after the object id besides it)
ROOT_KINDS: Dict[int, Tuple[str, int]] = {
    0xFF: ("unknown root", 0), 0x01: ("JNI global", -1), 0x02: ("JNI local", 8), 0x03: ("Java frame (local)", 8),
    0x04: ("native stack", 4), 0x05: ("system class", 0), 0x06: ("thread block", 4), 0x07: ("monitor", 0),
    0x08: ("thread", 8),
}
#: transient roots: a path through them is taken only where no static field or thread holds the object
TRANSIENT_ROOTS = frozenset((0x02, 0x03, 0x04))
_HIDDEN = re.compile(r"/0x[0-9a-f]+$|\+0x[0-9a-f]+$|\$\$Lambda\$\d+")
KIND_CLASS, KIND_INSTANCE, KIND_OBJ_ARRAY, KIND_PRIM_ARRAY = 0, 1, 2, 3


def java_name(internal: str) -> str:
    """``java/util/HashMap$Node`` → ``java.util.HashMap$Node``; ``[Ljava/lang/Object;`` → ``java.lang.Object[]``."""
    from collectors.jvm_heap import display_class

    return display_class(_HIDDEN.sub("", internal).replace("/", "."))


@dataclass
class ClassInfo:
    name_id: int
    super_id: int
    loader_id: int
    #: instance fields declared by this class: (name string id, basic type)
    fields: List[Tuple[int, int]] = field(default_factory=list)
    #: static fields holding references: (name string id, object id)
    static_refs: List[Tuple[int, int]] = field(default_factory=list)
    static_bytes: int = 0


@dataclass
class HeapGraph:
    """The object graph of a heap dump. Node i: ``ids[i]``, ``kind[i]``, ``cls[i]`` (index into
    ``class_names``), ``size[i]`` (estimated shallow bytes). Edges of i: ``dst[indptr[i]:indptr[i+1]]``
    with ``label`` (index into ``labels``: a field name, ``[]`` for array elements)."""

    path: str
    id_size: int
    ids: np.ndarray
    kind: np.ndarray
    cls: np.ndarray
    size: np.ndarray
    indptr: np.ndarray
    dst: np.ndarray
    label: np.ndarray
    class_names: List[str]
    labels: List[str]
    #: root nodes and their ROOT_* tags, durable roots first; the thread serial of stack roots (else 0)
    roots: np.ndarray
    root_tags: np.ndarray
    root_threads: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: thread serial → its stack at the dump, innermost first ("pkg.Class.method")
    traces: Dict[int, List[str]] = field(default_factory=dict)
    file_bytes: int = 0

    @property
    def nodes(self) -> int:
        return int(self.ids.size)


class _Scan:
    """State of the one pass over the file."""

    def __init__(self, buf, path: str, id_size: int):
        self.buf, self.path, self.id_size = buf, path, id_size
        self.strings: Dict[int, bytes] = {}
        self.class_name: Dict[int, int] = {}     # class object id → name string id
        self.classes: Dict[int, ClassInfo] = {}
        # four entries per instance / array: object id, class id (prim arrays: the basic type),
        # data offset, count (bytes of an instance, elements of an array) | kind << 56
        self.objs = array("Q")
        self.root_ids, self.root_tags, self.root_threads = array("Q"), array("B"), array("I")
        # stack traces (symbols only): class serial → name, frame id → (method, class serial), thread → frames
        self.class_serial: Dict[int, int] = {}
        self.frames: Dict[int, Tuple[int, int]] = {}
        self.traces: Dict[int, List[int]] = {}

    def corrupt(self, pos: int, what: str) -> InputError:
        return InputError(f"{self.path}: not a valid HPROF heap dump: {what} at offset {pos}",
                          hint="the dump may be damaged or still being written; take a new one (jcmd PID GC.heap_dump FILE)")


def read_hprof(path: str) -> HeapGraph:
    """Read ``path`` into a :class:`HeapGraph`; a file that is not a complete HPROF dump is one
    :class:`InputError` naming the offset."""
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise InputError(f"cannot read heap dump {path}: {e.strerror}") from e
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 31:
            raise InputError(f"{path}: not an HPROF heap dump ({size} bytes)")
        buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            scan = _read_records(buf, path, size)
            return _build(scan, buf, size)
        finally:
            try:
                buf.close()
            except BufferError:  # a numpy view still alive: the mapping closes when it goes
                pass


def _read_records(buf, path: str, size: int) -> _Scan:
    from profkit.heap.hprof_scan import scan_segment

    nul = buf.find(b"\0", 0, 64)
    if nul < 0 or not buf[:nul].startswith(MAGIC):
        raise InputError(f"{path}: not an HPROF heap dump (no 'JAVA PROFILE 1.0.x' header)")
    id_size = struct.unpack_from(">I", buf, nul + 1)[0]
    if id_size not in (4, 8):
        raise InputError(f"{path}: not a valid HPROF heap dump: identifier size {id_size}")
    scan = _Scan(buf, path, id_size)
    idf = ">Q" if id_size == 8 else ">I"
    load_class = struct.Struct(">I" + idf[1:] + "I" + idf[1:])
    pos, seen_heap = nul + 1 + 4 + 8, False
    while pos < size:
        if pos + 9 > size:
            raise InputError(f"{path}: heap dump truncated: a record header at offset {pos} is cut off",
                             hint="the dump was not written completely (disk full, or the JVM died while writing)")
        tag = buf[pos]
        length = struct.unpack_from(">I", buf, pos + 5)[0]
        body = pos + 9
        if body + length > size:
            raise InputError(f"{path}: heap dump truncated: the record at offset {pos} declares {length} bytes, "
                             f"only {size - body} remain",
                             hint="the dump was not written completely (disk full, or the JVM died while writing)")
        if tag == 0x01:
            sid = struct.unpack_from(idf, buf, body)[0]
            scan.strings[sid] = bytes(buf[body + id_size:body + length])
        elif tag == 0x02:
            serial, cid, _, nid = load_class.unpack_from(buf, body)
            scan.class_name[cid] = nid
            scan.class_serial[serial] = nid
        elif tag == 0x04:  # FRAME: frame id, method name, signature, source file, class serial, line
            fid, mid = struct.unpack_from(idf + idf[1:], buf, body)
            scan.frames[fid] = (mid, struct.unpack_from(">I", buf, body + 4 * id_size)[0])
        elif tag == 0x05:  # TRACE: serial, thread serial, frame count, frame ids
            _, thread, nframes = struct.unpack_from(">III", buf, body)
            if thread and 12 + nframes * id_size <= length:
                scan.traces[thread] = list(struct.unpack_from(">" + idf[1:] * nframes, buf, body + 12))
        elif tag in (0x0C, 0x1C):
            seen_heap = True
            scan_segment(scan, body, body + length)
            _drop_pages(buf)
        elif tag not in (0x03, 0x06, 0x07, 0x0A, 0x0B, 0x0D, 0x0E, 0x2C):
            raise scan.corrupt(pos, f"unknown record tag 0x{tag:02x}")
        pos = body + length
    if not seen_heap:
        raise InputError(f"{path}: an HPROF file without a heap dump (no HEAP_DUMP records)")
    return scan


def _drop_pages(buf) -> None:
    """Give back the mapped file's pages read so far (they stay in the page cache): the dump's
    size does not add to profkit's resident memory."""
    try:
        buf.madvise(mmap.MADV_DONTNEED)
    except (AttributeError, OSError, ValueError):
        pass


def stack_of(scan: _Scan, thread: int) -> List[str]:
    """A thread's stack at the dump as ``pkg.Class.method`` names, innermost first."""
    out = []
    for fid in scan.traces.get(thread, []):
        mid, serial = scan.frames.get(fid, (0, 0))
        cls = java_name(_string(scan, scan.class_serial.get(serial, 0)))
        out.append(f"{cls}.{_string(scan, mid)}")
    return out


def _string(scan: _Scan, sid: int) -> str:
    return scan.strings.get(sid, b"?").decode("utf-8", "replace")


def _build(scan: _Scan, buf, size: int) -> HeapGraph:
    from profkit.heap.hprof_graph import build_graph

    return build_graph(scan, buf, size)
