# SPDX-License-Identifier: Apache-2.0
"""The one way profkit writes a file: whole or not at all.

:func:`atomic_write` writes into a temporary file in the destination's own directory, flushes
and fsyncs it, gives it the permissions a plain ``open()`` would (``0o666`` less the umask;
``mkstemp`` makes files private), and renames it over the destination. On any failure the
temporary file is removed, so a full disk leaves no ``*.tmp`` behind and the old file (if any)
stays as it was. A full, over-quota or read-only file system is :class:`~profkit.errors.DiskFull`
(exit 1) naming the path; other OS errors keep their type.

A leaf module: it imports only the standard library and :mod:`profkit.errors`.
"""
from __future__ import annotations

import errno
import os
from typing import IO, Any, Callable, Union

from profkit.errors import DiskFull

__all__ = ["DISK_FULL_ERRNOS", "atomic_write", "atomic_write_json", "disk_full", "umask"]

#: errno values that mean "the file system cannot take this write".
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})

Writer = Callable[[IO[Any]], Any]


def umask() -> int:
    """The process umask (reading it means setting it; set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def disk_full(e: OSError, path: str) -> DiskFull:
    """The :class:`DiskFull` error for an OSError raised while writing ``path``."""
    what = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system"}.get(e.errno, e.strerror or str(e))
    return DiskFull(f"cannot write {path}: {what}", hint="free some space (or choose another -o directory) and run "
                                                          "again; what was written before is kept")


def _temp_file(directory: str, base: str):
    """A new private file ``.BASE.RANDOM.tmp`` in ``directory`` (what tempfile.mkstemp does,
    without importing tempfile, which costs a CLI start-up more than the whole write)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", directory)


def atomic_write(path: str, data: Union[str, bytes, Writer], *, binary: bool = False, mode: int = 0o666,
                 honour_umask: bool = True, sync: bool = True) -> None:
    """Write ``data`` (text, bytes, or a function given the open file) to ``path`` atomically.

    Text is UTF-8 with ``surrogateescape`` (undecodable bytes of frame names round-trip) and
    ``\\n`` line ends. ``mode`` is filtered by the umask, as ``open()`` does, unless
    ``honour_umask`` is false (a library another user's process must be able to load).
    ``sync=False``: no fsync before the rename (still atomic for every reader of this system; a
    power loss may lose it), for files superseded in seconds or kept durably elsewhere.
    """
    directory = os.path.dirname(os.path.abspath(path))
    binary = binary or isinstance(data, (bytes, bytearray))
    try:
        fd, tmp = _temp_file(directory, os.path.basename(path))
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:
            raise disk_full(e, path) from None
        raise
    try:
        if binary:
            fh: IO[Any] = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="\n")
        with fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode & ~umask() if honour_umask else mode)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            raise disk_full(e, path) from None
        raise


def atomic_write_json(path: str, value: Any, *, indent: int = 2, default: Any = None, sync: bool = True) -> None:
    """``value`` as JSON (sorted keys, a final newline), written atomically: by orjson where it
    is installed and can write the value (the same document; non-ASCII as UTF-8, not ``\\u``
    escapes), else by the standard library, whose indenting encoder is pure Python (a run's
    manifest is written at every step of the engine: the agent writes several per window)."""
    # one string, one write: json.dump would make a write call per token (thousands per manifest)
    atomic_write(path, _dumps_sorted(value, indent, default), sync=sync)


def _dumps_sorted(value: Any, indent: int, default: Any) -> Union[str, bytes]:
    if indent == 2:
        try:
            import orjson

            return orjson.dumps(value, default=default,
                                option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
                                | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS)
        except ImportError:  # pragma: no cover - the standard library then
            pass
        except TypeError:  # what orjson cannot write (surrogates, non-str keys, ints past 64 bits);
            pass  # datetimes and dataclasses go to ``default``, as the standard library's do
    import json

    return json.dumps(value, indent=indent, sort_keys=True, default=default) + "\n"
