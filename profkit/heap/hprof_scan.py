# SPDX-License-Identifier: Apache-2.0
"""The hot loop of the HPROF reader: one heap-dump segment's sub-records, front to back.

Per object it keeps four integers (id, class, data offset, count) in compact arrays; the data
itself stays in the mapped file. Every sub-record's length is checked against its segment's end.
"""
from __future__ import annotations

import struct

from profkit.heap.hprof import _TYPE_SIZE, ROOT_KINDS, ClassInfo, KIND_INSTANCE, KIND_OBJ_ARRAY, KIND_PRIM_ARRAY

__all__ = ["scan_segment"]


def scan_segment(scan, pos: int, end: int) -> None:
    """Read the sub-records in ``[pos, end)`` of the mapped file into ``scan``'s arrays."""
    buf, n = scan.buf, scan.id_size
    q = "Q" if n == 8 else "I"
    inst = struct.Struct(f">{q}I{q}I")      # id, stack serial, class id, byte count
    oarr = struct.Struct(f">{q}II{q}")      # id, stack serial, length, array class id
    parr = struct.Struct(f">{q}IIB")        # id, stack serial, length, element type
    one = struct.Struct(f">{q}")
    ih, oh, ph = inst.size, oarr.size, parr.size
    # per object: id, class id (prim arrays: the element type), data offset, count | kind << 56
    put = scan.objs.extend
    KI, KO, KP = KIND_INSTANCE << 56, KIND_OBJ_ARRAY << 56, KIND_PRIM_ARRAY << 56
    roots, rtags, rthreads = scan.root_ids.append, scan.root_tags.append, scan.root_threads.append
    u4 = struct.Struct(">I")
    tsize = _TYPE_SIZE
    while pos < end:
        tag = buf[pos]
        pos += 1
        if tag == 0x21:
            if pos + ih > end:
                raise scan.corrupt(pos - 1, "an instance record past its segment's end")
            oid, _, cid, nb = inst.unpack_from(buf, pos)
            put((oid, cid, pos + ih, nb | KI))
            pos += ih + nb
        elif tag == 0x23:
            if pos + ph > end:
                raise scan.corrupt(pos - 1, "an array record past its segment's end")
            oid, _, length, et = parr.unpack_from(buf, pos)
            es = tsize.get(et)
            if es is None:
                raise scan.corrupt(pos - 1, f"primitive array of unknown type {et}")
            put((oid, et, pos + ph, length | KP))
            pos += ph + length * es
        elif tag == 0x22:
            if pos + oh > end:
                raise scan.corrupt(pos - 1, "an array record past its segment's end")
            oid, _, length, cid = oarr.unpack_from(buf, pos)
            put((oid, cid, pos + oh, length | KO))
            pos += oh + length * n
        elif tag == 0x20:
            pos = _class_dump(scan, pos, end)
            continue
        elif tag in ROOT_KINDS:
            extra = ROOT_KINDS[tag][1]
            roots(one.unpack_from(buf, pos)[0]), rtags(tag)
            rthreads(u4.unpack_from(buf, pos + n)[0] if tag in (0x02, 0x03, 0x04, 0x06, 0x08) else 0)
            pos += n + (n if extra < 0 else extra)
        else:
            raise scan.corrupt(pos - 1, f"unknown heap-dump sub-record tag 0x{tag:02x}")
        if pos > end:
            raise scan.corrupt(pos, "a heap-dump sub-record that runs past its segment's end")


def _class_dump(scan, pos: int, end: int) -> int:
    """CLASS_DUMP: super class, loader, constant pool, static fields (references kept, values
    skipped), instance field names and types."""
    buf, n = scan.buf, scan.id_size
    q = "Q" if n == 8 else "I"
    head = struct.Struct(f">{q}I{q}{q}{q}{q}{q}{q}IH")
    if pos + head.size > end:
        raise scan.corrupt(pos - 1, "a class record past its segment's end")
    cid, _, sup, loader, _, _, _, _, _, ncp = head.unpack_from(buf, pos)
    pos += head.size
    info = ClassInfo(name_id=scan.class_name.get(cid, 0), super_id=sup, loader_id=loader)
    oid = struct.Struct(f">{q}")
    for _ in range(ncp):
        t = buf[pos + 2]
        pos += 3 + (n if t == 2 else _size(scan, t, pos))
    (nst,) = struct.unpack_from(">H", buf, pos)
    pos += 2
    for _ in range(nst):
        name, t = oid.unpack_from(buf, pos)[0], buf[pos + n]
        pos += n + 1
        if t == 2:
            ref = oid.unpack_from(buf, pos)[0]
            if ref:
                info.static_refs.append((name, ref))
            info.static_bytes += 4
            pos += n
        else:
            s = _size(scan, t, pos)
            info.static_bytes += s
            pos += s
        if pos > end:
            raise scan.corrupt(pos, "a class record past its segment's end")
    (nf,) = struct.unpack_from(">H", buf, pos)
    pos += 2
    for _ in range(nf):
        info.fields.append((oid.unpack_from(buf, pos)[0], buf[pos + n]))
        pos += n + 1
    if pos > end:
        raise scan.corrupt(pos, "a class record past its segment's end")
    scan.classes[cid] = info
    return pos


def _size(scan, t: int, pos: int) -> int:
    s = _TYPE_SIZE.get(t)
    if s is None:
        raise scan.corrupt(pos, f"a field of unknown type {t}")
    return s
