# SPDX-License-Identifier: Apache-2.0
"""Opening inputs: files or ``-`` (stdin), gzip read transparently, bounded line length.

Every failure to read becomes an :class:`~profkit.errors.InputError` (exit 2) with one line of
text: missing or unreadable file, empty input, binary junk, a truncated or corrupt gzip stream.
Lines longer than :data:`MAX_LINE` bytes are not held in memory: they are skipped, counted as
malformed and replaced by an empty line so that line numbers stay right.
"""
from __future__ import annotations

import gzip
import io
import os
import sys
import zlib
from functools import partial
from typing import BinaryIO, Iterator, Optional

from profkit.errors import Diagnostics, InputError

__all__ = ["MAX_LINE", "Source", "looks_binary"]

#: The longest line kept, in bytes (a 200-frame stack of long C++ names is well under this).
MAX_LINE = 16 * 1024 * 1024
HEAD_SIZE = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


class _Prefixed(io.RawIOBase):
    """A raw stream that serves ``head`` bytes first, then reads ``rest`` (for stdin after a peek)."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._head.nbytes:
            n = min(len(b), self._head.nbytes)
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)


#: every byte but the control characters text does not hold (all but tab, LF, FF and CR below 32)
_NOT_CTRL = bytes(c for c in range(256) if not (c < 32 and c not in (9, 10, 12, 13)))


def looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    if not head:
        return False
    ctrl = len(head[:4096].translate(None, _NOT_CTRL))  # the control characters, counted in C
    return ctrl > len(head[:4096]) * 0.1


class Source:
    """One input: a path or ``-`` for stdin. Opened lazily; can be read once.

    ``head()`` gives the first bytes (decompressed) for format sniffing without losing them.
    """

    def __init__(self, spec: str, diag: Optional[Diagnostics] = None, *, binary_ok: bool = False):
        self.spec = spec
        self.name = "<stdin>" if spec == "-" else spec
        self.diag = diag if diag is not None else Diagnostics(self.name)
        self.binary_ok = binary_ok
        self._stream: Optional[BinaryIO] = None
        self._head: Optional[bytes] = None
        self.compressed = False
        #: a run's capture: parsers whose timed samples cost noticeable time (perf) keep them only then
        self.timed = False

    @property
    def path(self) -> Optional[str]:
        """The file's path, or None for stdin."""
        return None if self.spec == "-" else self.spec

    # -- opening --------------------------------------------------------------------------
    def _open(self) -> BinaryIO:
        if self._stream is not None:
            return self._stream
        if self.spec == "-":
            raw: BinaryIO = sys.stdin.buffer
        else:
            if os.path.isdir(self.spec):
                raise InputError(f"{self.name}: is a directory, not a capture file")
            try:
                raw = open(self.spec, "rb", buffering=1 << 20)
            except FileNotFoundError:
                raise InputError(f"{self.name}: no such file") from None
            except OSError as e:
                raise InputError(f"{self.name}: cannot read: {e.strerror or e}") from None
        try:
            first = raw.read(HEAD_SIZE)
        except OSError as e:
            raise InputError(f"{self.name}: cannot read: {e.strerror or e}") from None
        if raw.seekable():
            # A regular file: read it again from the start rather than through _Prefixed,
            # which would copy every block once more.
            raw.seek(0)
            stream: BinaryIO = raw
        else:
            stream = io.BufferedReader(_Prefixed(first, raw), 1 << 20)
        if first[:2] == _GZIP_MAGIC:
            self.compressed = True
            stream = io.BufferedReader(gzip.GzipFile(fileobj=stream, mode="rb"), 1 << 20)  # type: ignore[arg-type]
        self._stream = stream
        try:
            head = stream.peek(HEAD_SIZE)[:HEAD_SIZE]
        except (EOFError, OSError, zlib.error) as e:
            raise self._corrupt(e) from None
        if not head:
            raise InputError(f"{self.name}: empty input", hint="was the capture written? check the collector's output")
        if not self.binary_ok and looks_binary(head):
            raise InputError(f"{self.name}: binary data, not a text capture",
                             hint="profkit collapse reads text captures (perf script output, folded stacks, …); "
                                  "a .jfr file needs --format jfr")
        self._head = bytes(head)
        return stream

    def binary_stream(self) -> BinaryIO:
        """The (decompressed) input as a binary stream from its start, for parsers that stream a format
        without lines (JSON); read errors are theirs to turn into :meth:`corrupt`."""
        return self._open()

    def corrupt(self, e: Exception) -> InputError:
        """The error of a read that failed (a truncated gzip stream, …)."""
        return self._corrupt(e)

    def _corrupt(self, e: Exception) -> InputError:
        what = "truncated or corrupt gzip stream" if self.compressed else "read failed"
        return InputError(f"{self.name}: {what} ({e or type(e).__name__})")

    def head(self) -> bytes:
        """Up to 64 KiB from the start of the (decompressed) input, without consuming it."""
        self._open()
        assert self._head is not None
        return self._head

    # -- reading --------------------------------------------------------------------------
    def byte_lines(self) -> Iterator[bytes]:
        """The input's lines as bytes (newline kept); overlong lines become ``b"\\n"`` and are counted."""
        stream = self._open()
        readline = partial(stream.readline, MAX_LINE)
        lineno = 0
        try:
            for line in iter(readline, b""):
                lineno += 1
                if len(line) >= MAX_LINE and line[-1:] != b"\n":
                    self.diag.malformed(lineno, line[:80])
                    self.diag.warn(f"{self.name}:{lineno}: line longer than {MAX_LINE >> 20} MiB skipped")
                    while True:
                        more = stream.readline(MAX_LINE)
                        if not more or more[-1:] == b"\n":
                            break
                    yield b"\n"
                    continue
                yield line
        except (EOFError, OSError, zlib.error) as e:
            raise self._corrupt(e) from None

    def text_lines(self) -> Iterator[str]:
        """The input's lines as text (UTF-8; invalid bytes kept as surrogate escapes)."""
        for line in self.byte_lines():
            yield line.decode("utf-8", "surrogateescape")

    def read_bytes(self, limit: Optional[int] = None) -> bytes:
        """The whole (decompressed) input, or its first ``limit`` bytes."""
        stream = self._open()
        try:
            return stream.read() if limit is None else stream.read(limit)
        except (EOFError, OSError, zlib.error) as e:
            raise self._corrupt(e) from None

    def close(self) -> None:
        """Close the underlying file (not stdin)."""
        if self._stream is not None and self.spec != "-":
            self._stream.close()
