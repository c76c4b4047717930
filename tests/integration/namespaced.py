# SPDX-License-Identifier: Apache-2.0
"""A process in a container made by ``unshare`` alone (no container runtime): new PID and mount
namespaces, a root file system of its own and a private tmpfs ``/tmp``, as a container has.

:func:`start_in_container` starts ``argv`` as PID 1 of a new PID namespace, pivoted (``pivot_root``, as runtimes do) into a tmpfs
root that holds only bind mounts of the host's ``/usr``, ``/etc``, ``/dev`` (and what ``binds``
names, at the same paths), the files of ``app`` copied into ``/app`` (its working directory)
and an empty tmpfs ``/tmp`` (read-only with ``tmp_read_only``). Nothing else of the host is visible inside: not its ``/tmp``, not
``/root``, not profkit's cache, so a tool that hands the target a host path fails as it would
against a real container. The returned :class:`Contained` is a ``support.Proc`` of ``unshare``
(reaped at teardown with its namespace) whose :attr:`Contained.pid` is the target's host PID.
"""
import os
import shutil
import subprocess

from support import Proc, wait_until

# unshare's child runs this with $1 the root's mount point, $2 the app directory, $3 the
# colon-separated extra binds; the rest is the target's argv.
_SETUP = r'''
set -e
R="$1"; APP="$2"; BINDS="$3"; shift 3
mount -t tmpfs -o size=256m,mode=755 profkit-ctr-root "$R"
for d in /usr /lib /lib64 /lib32 /bin /sbin /etc /dev; do
  if [ -L "$d" ]; then ln -s "$(readlink "$d")" "$R$d"
  elif [ -d "$d" ]; then mkdir -p "$R$d"; mount --rbind "$d" "$R$d"; fi
done
IFS=:
for b in $BINDS; do [ -n "$b" ] && { mkdir -p "$R$b"; mount --rbind "$b" "$R$b"; mount -o remount,bind,ro "$R$b"; }; done
unset IFS
mkdir -p "$R/proc" "$R/tmp" "$R/app"
mount -t tmpfs -o "size=128m,mode=1777${PROFKIT_CTR_TMP_RO:+,ro}" profkit-ctr-tmp "$R/tmp"
[ -n "$APP" ] && cp -a "$APP"/. "$R/app/"
mount -t proc proc "$R/proc"
# pivot_root, as container runtimes do: the new root becomes the namespace's root mount, so the
# host reads the target's paths (/proc/PID/maps, exe) as the container sees them
mkdir "$R/.old"
cd "$R"
pivot_root . .old
umount -l /.old
rmdir /.old
cd /app
exec "$@"
'''


class Contained(Proc):
    """``unshare`` and, as :attr:`pid`, the host PID of the target it runs in its namespaces."""

    def __init__(self, argv, root, app=None, binds=(), env=None, tmp_read_only=False):
        self.root_mount = str(root)
        os.makedirs(self.root_mount, exist_ok=True)
        super().__init__(["unshare", "--pid", "--mount", "--fork", "--kill-child", "--mount-proc",
                          "sh", "-c", _SETUP, "sh", self.root_mount, str(app or ""), ":".join(map(str, binds)),
                          *argv], env={**(env or {}), **({"PROFKIT_CTR_TMP_RO": "1"} if tmp_read_only else {})})
        self.unshare_pid = self.popen.pid
        program = os.path.basename(str(argv[0]))

        def target():
            with open(f"/proc/{self.unshare_pid}/task/{self.unshare_pid}/children") as fh:
                kids = fh.read().split()
            for kid in kids:
                if os.path.basename(os.readlink(f"/proc/{kid}/exe")).startswith(program):
                    return int(kid)
            if self.popen.poll() is not None:
                raise AssertionError(f"the container exited: {self.text('stderr')}")
            return None
        self.pid = wait_until(target, 30, f"{program} to start in its namespaces")

    def _signal_group(self, sig):
        # the group is unshare's (the target runs in it, as PID 1 of its namespace)
        try:
            os.killpg(self.unshare_pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def text(self, stream="stdout"):
        with self._cond:
            return "".join(self._lines[stream])

    def inside(self, path):
        """A path inside the container, reached from the host."""
        return f"/proc/{self.pid}/root/{path.lstrip('/')}"

    def tmp_entries(self):
        """What is in the container's /tmp (names), for checking that nothing of profkit's is left."""
        return sorted(os.listdir(self.inside("/tmp")))


def start_in_container(argv, root, app=None, binds=(), env=None, tmp_read_only=False):
    """Start ``argv`` (absolute program path as the container sees it) in a container; see
    :mod:`namespaced`. The caller stops it (``with`` or the ``start_process``-like fixture)."""
    assert shutil.which("unshare") and shutil.which("pivot_root"), "util-linux unshare and pivot_root are needed"
    assert os.geteuid() == 0, "making namespaces and mounts needs root"
    return Contained(argv, root, app, binds, env, tmp_read_only)


def nspid_of(pid):
    """``NSpid`` of a process: (host PID, …, PID in its own namespace)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("NSpid:"):
                return tuple(int(n) for n in line.split()[1:])
    raise AssertionError(f"no NSpid for {pid}")


def run_checked(*argv):
    return subprocess.run(list(map(str, argv)), check=True, capture_output=True, text=True, timeout=120)


def start_jvm_in_container(classes, root, main="ProfkitHot", *args, heap="128m"):
    """A JVM (the host's JDK, bind-mounted at the same /usr path) running ``main`` from the
    compiled ``classes`` (copied to /app) in a container of its own; waits for its ``ready``."""
    java = os.path.realpath(shutil.which("java"))
    assert java.startswith("/usr/"), f"{java}: the container binds /usr only; install the JDK under /usr"
    jvm = start_in_container([java, f"-Xmx{heap}", "-cp", "/app", main, *map(str, args)], root, app=classes)
    jvm.wait_line(r"^ready$", 60)
    return jvm


def start_python_in_container(script_dir, root, script, *args, tmp_read_only=False):
    """profkit's own interpreter (its installation bind-mounted read-only at the same path, so
    memray is importable inside) running ``/app/SCRIPT`` from ``script_dir``; waits for ``ready``."""
    import sys

    py = os.path.realpath(sys.executable)
    proc = start_in_container([py, f"/app/{script}", *map(str, args)], root, app=script_dir, binds=[sys.base_prefix],
                              tmp_read_only=tmp_read_only)
    proc.wait_line(r"^ready$", 60)
    return proc
