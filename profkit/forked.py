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

from profkit.errors import ProfkitError

__all__ = ["ChildFailed", "can_fork", "side_by_side"]

A = TypeVar("A")
B = TypeVar("B")


class ChildFailed(RuntimeError):
    """The forked job failed with an unexpected error: the message is its last line (one line,
    as the CLI shows it); the child's whole traceback is the ``__cause__`` (``--debug`` shows it)."""


class _ChildTraceback(Exception):
    """The traceback text of an error raised in the child."""


def can_fork() -> bool:
    """True when a second job can run beside this one: ``fork`` exists and there are two CPUs."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return hasattr(os, "fork") and cpus > 1


def side_by_side(first: Callable[[], A], second: Callable[[], B], *, parallel: bool = True) -> Tuple[A, B]:
    """``(first(), second())``, with ``first`` in a forked child when ``parallel`` and possible."""
    if not (parallel and can_fork()):
        return first(), second()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()  # else the child would inherit, and write again, what is buffered
        except (OSError, ValueError):
            pass
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run the job, send the outcome, never return into the caller
        code = 0
        try:
            os.close(rfd)
            try:
                payload = pickle.dumps(("ok", first()), pickle.HIGHEST_PROTOCOL)
            except ProfkitError as e:
                payload = pickle.dumps(("error", (type(e), e.args, vars(e))), pickle.HIGHEST_PROTOCOL)
            except KeyboardInterrupt:
                code = 130
                payload = b""
            except BaseException:  # noqa: B902 - everything goes back to the parent
                payload = pickle.dumps(("failed", traceback.format_exc()), pickle.HIGHEST_PROTOCOL)
            with os.fdopen(wfd, "wb") as out:
                out.write(payload)
        except BaseException:  # noqa: B902 - a broken pipe or a second Ctrl-C: just go
            code = code or 1
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(code)
    os.close(wfd)
    done = False
    try:
        with os.fdopen(rfd, "rb") as pipe:
            here = second()
            data = pipe.read()
        os.waitpid(pid, 0)
        done = True
    finally:
        if not done:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    if not data:
        raise ChildFailed("the forked reader ended without a result (killed, perhaps out of memory)")
    status, value = pickle.loads(data)
    if status == "ok":
        return value, here
    if status == "error":
        cls, args, attributes = value
        err = cls.__new__(cls)  # as raised: same args, message, hint and extras, no __init__ rerun
        err.args = args
        vars(err).update(attributes)
        raise err
    last = value.strip().splitlines()[-1] if value.strip() else "unknown error"
    raise ChildFailed(f"{last} (in the forked reader)") from _ChildTraceback(value)
