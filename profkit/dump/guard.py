# SPDX-License-Identifier: Apache-2.0
"""The guard: runs one ptrace-based stack tool and makes sure the target is never left stopped.

Run as a script (standard library only, so it starts in a few milliseconds and imports
nothing of profkit)::

    python -I -S guard.py TARGET_PID TIMEOUT TOOL [ARG…]

Why it exists (measured on Linux 6.x, see tests/data/dump/README.md): eu-stack and gdb attach
with ``PTRACE_ATTACH``, which stops each thread with a SIGSTOP. A tool that dies between
sending that SIGSTOP and consuming it (SIGKILL, a crash, its parent-death signal when profkit
is killed) is detached by the kernel, and the still-pending SIGSTOP is then delivered with no
tracer: the *whole process* goes into group stop (state ``T``) and stays there. profkit itself
can do nothing after it was SIGKILLed, so this small process sits between profkit and the tool:

* profkit starts it as a :class:`profkit.targets.ChildTool`, so it gets SIGTERM when profkit
  dies (parent-death signal) and sits in a session of its own;
* it starts the tool as its own child, in a process group of its own, with SIGKILL as the
  tool's parent-death signal;
* on SIGTERM, SIGINT or SIGHUP (profkit died or asked it to stop), or after TIMEOUT seconds,
  it SIGKILLs the tool's whole process group (anything the tool forked too) and reaps the
  tool: once reaped, the kernel has detached it from every thread. A tool that ends by itself
  has its group SIGKILLed too, so nothing it forked outlives it;
* after any run that did not end with exit status 0 (killed, timed out, crashed, failed), and
  after a successful one that still left a thread stopped, it sends the target **one SIGCONT**
  — unless the target was already stopped (``T``/``t``) before the tool started, which is
  someone else's stop to keep. SIGCONT also discards a SIGSTOP still pending, so the target
  cannot stop a moment later. This is the one signal profkit ever sends a target.

Exit status: the tool's own; 128+N if a signal N ended it; 124 on the timeout; 130 when it was
told to stop. A line ``profkit-guard: …`` on stderr says what it did when it did anything.
"""
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
POLL = 0.02


def _states(pid):
    """The one-letter state of each thread of ``pid`` ({} when it is gone)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        out[tid] = stat[stat.rindex(b")") + 2:][:1].decode()
    return out


def _stopped(pid):
    return any(s in ("T", "t") for s in _states(pid).values())


class _Stop:
    """Set by the signals that mean 'stop now' (profkit died, or asked)."""

    signum = 0

    @classmethod
    def handler(cls, signum, frame):
        """Remember the first stop signal; the wait loop acts on it."""
        cls.signum = cls.signum or signum


def _tool_preexec():
    libc = ctypes.CDLL(None, use_errno=True)

    def child():
        """In the tool, before exec: a process group of its own, and death with the guard."""
        os.setpgid(0, 0)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    return child


def _exited(pid):
    """Whether the tool has ended, without reaping it (its group id stays its own meanwhile)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _run(target, timeout, argv):
    """Run the tool; returns (exit status, why it was ended early or None).

    The tool leads a process group of its own, and the whole group is SIGKILLed before the tool
    is reaped: whatever it forked goes with it (gdb forks a child that stops itself with SIGSTOP
    to probe ptrace features; if gdb dies before it set PTRACE_O_EXITKILL on it, that child would
    otherwise stay stopped, orphaned, for ever).
    """
    try:
        tool = subprocess.Popen(argv, stdin=subprocess.DEVNULL, preexec_fn=_tool_preexec())
    except OSError as e:
        sys.stderr.write(f"profkit-guard: cannot run {argv[0]}: {e}\n")
        return 127, None
    deadline = time.monotonic() + timeout
    why = None
    while not _exited(tool.pid):
        if _Stop.signum:
            why = f"stopped by signal {_Stop.signum}"
        elif time.monotonic() >= deadline:
            why = f"timed out after {timeout:g} s"
        if why:
            break
        time.sleep(POLL)
    try:
        os.killpg(tool.pid, signal.SIGKILL)  # the tool (alive, or a zombie not reaped yet) and its children
    except (ProcessLookupError, PermissionError):
        pass
    rc = tool.wait()  # reaped: the kernel has detached it from every thread
    return (rc if rc >= 0 else 128 - rc), why


def main(args):
    """``TARGET_PID TIMEOUT TOOL [ARG…]``; see the module docstring."""
    target, timeout, argv = int(args[0]), float(args[1]), args[2:]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _Stop.handler)
    stopped_before = _stopped(target)
    status, why = _run(target, timeout, argv)
    if why:
        sys.stderr.write(f"profkit-guard: {os.path.basename(argv[0])} {why}; it was killed\n")
    if not stopped_before and (status != 0 or _stopped(target)):
        try:
            os.kill(target, signal.SIGCONT)
            sys.stderr.write(f"profkit-guard: sent SIGCONT to {target} after {os.path.basename(argv[0])} "
                             f"ended with status {status}\n")
        except ProcessLookupError:
            pass
    sys.stderr.flush()
    if why:
        return 130 if _Stop.signum else 124
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
