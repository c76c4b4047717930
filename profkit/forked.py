# SPDX-License-Identifier: Apache-2.0
"""Two independent jobs at once: one in a forked child, one here.

Comparing two large profiles is two reads that share nothing (about a second each for 100k
deep stacks); on a machine with two cores they overlap. :func:`side_by_side` runs the first
job in a child made by ``fork`` (no pickling of the job itself, no start-up of a fresh
interpreter) and sends its result back pickled through a pipe: a keyed profile of 100k stacks
is about 12 MB and 0.1 s to send. Without ``fork`` or a second CPU, or when asked not to, both
jobs run here, one after the other.

Errors keep their meaning: a :class:`~profkit.errors.ProfkitError` raised in the child is
raised here again, same class, message and hint (so the CLI prints its one line and exit
code). Anything else becomes :class:`ChildFailed`, its message the error's last line and its
cause the child's whole traceback. The child never outlives the call: on any way out (Ctrl-C
included) it is killed and reaped.
"""
from __future__ import annotations

import os
import pickle
import signal
import sys
import traceback
from typing import Callable, Tuple, TypeVar

from profkit.errors import ChildFailed, ProfkitError

__all__ = ["ChildFailed", "PARALLEL_BYTES", "can_fork", "large_inputs", "side_by_side"]

A = TypeVar("A")
B = TypeVar("B")


class _ChildTraceback(Exception):
    """The traceback text of an error raised in the child."""


#: Above this many bytes of input in all, two reads are worth a fork (below it, it saves nothing).
PARALLEL_BYTES = 8 << 20


def large_inputs(*paths: str) -> bool:
    """True when the files together exceed :data:`PARALLEL_BYTES` (stdin, ``-``, never counts as large:
    only one side may read it)."""
    if "-" in paths:
        return False
    total = 0
    for path in paths:
        try:
            total += os.path.getsize(path)
        except OSError:
            pass
    return total > PARALLEL_BYTES


def can_fork() -> bool:
    """True when a second job can run beside this one: ``fork`` exists and there are two CPUs."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return hasattr(os, "fork") and cpus > 1


def side_by_side(first: Callable[[], A], second: Callable[[], B], *, parallel: bool = True) -> Tuple[A, B]:
    """``(first(), second())``, with ``first`` in a forked child when ``parallel`` and possible.

    When both fail, ``first``'s error is the one raised, as if they had run one after the other."""
    if not (parallel and can_fork()):
        return first(), second()
    _flush_all()  # else the child would inherit, and write again, what is buffered
    rfd, wfd = os.pipe()
    parent = os.getpid()
    # SIGINT is blocked across the fork: a Ctrl-C can then never raise KeyboardInterrupt in the
    # child (which ignores it; the parent kills it instead), only here once it is unblocked.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        os.close(rfd)
        os.close(wfd)
        raise
    if pid == 0:
        _child(first, rfd, wfd, parent)  # never returns
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    os.close(wfd)
    reaped = False
    try:
        with os.fdopen(rfd, "rb") as pipe:
            try:
                here = second()
            except ProfkitError:
                data = pipe.read()
                _, status = os.waitpid(pid, 0)
                reaped = True
                _outcome(data, status)  # first's error, if it failed too
                raise
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        reaped = True
    finally:
        if not reaped:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    return _outcome(data, status), here


def _flush_all() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except Exception:  # a closed or broken stream: nothing to keep
                pass


def _child(first: Callable[[], object], rfd: int, wfd: int, parent: int) -> None:
    """The forked side: run ``first``, send its outcome, and always end with ``os._exit``."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        _die_with(parent)
        os.close(rfd)
        payload = _run(first)
        with os.fdopen(wfd, "wb") as out:
            out.write(payload)
        code = 0
    except BaseException:  # noqa: B902 - a broken pipe: the parent is gone or gave up
        pass
    finally:
        try:
            _flush_all()
        finally:
            os._exit(code)


def _die_with(parent: int) -> None:
    """Have the kernel kill this child when the parent dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # not Linux: the parent's finally still kills it on every way out but SIGKILL
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _run(first: Callable[[], object]) -> bytes:
    """``first``'s outcome, pickled: its result, a ProfkitError to raise again, or a failure."""
    try:
        return pickle.dumps(("ok", first()), pickle.HIGHEST_PROTOCOL)
    except ProfkitError as e:
        try:
            return pickle.dumps(("error", (type(e), e.args, vars(e))), pickle.HIGHEST_PROTOCOL)
        except Exception:  # an error that does not pickle: send it as a failure
            return _failure(e)
    except BaseException as e:  # noqa: B902 - everything goes back to the parent
        return _failure(e)


def _failure(e: BaseException) -> bytes:
    summary = " ".join("".join(traceback.format_exception_only(type(e), e)).split())[:500]
    text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return pickle.dumps(("failed", (summary, text)), pickle.HIGHEST_PROTOCOL)


def _outcome(data: bytes, status: int) -> object:
    """The child's result, or its error raised here."""
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0) or not data:
        how = (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exit status {os.WEXITSTATUS(status)}")
        raise ChildFailed(f"the forked reader ended without a result ({how}; out of memory?)")
    try:
        kind, value = pickle.loads(data)
    except Exception as e:
        raise ChildFailed(f"the forked reader's result could not be read back ({type(e).__name__}: {e})") from None
    if kind == "ok":
        return value
    if kind == "error":
        cls, args, attributes = value
        err = cls.__new__(cls)  # as raised: same args, message, hint and extras, no __init__ rerun
        err.args = args
        vars(err).update(attributes)
        raise err
    summary, text = value
    raise ChildFailed(f"{summary} (in the forked reader)") from _ChildTraceback(text)
