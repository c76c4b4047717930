# SPDX-License-Identifier: Apache-2.0
"""Finding async-profiler's agent library (``libasyncProfiler.so``) and handing it to a JVM.

:func:`find_library` looks, in order, at an explicit path (``--asprof`` or ``$PROFKIT_ASPROF``:
asprof, the ``.so``, an async-profiler directory or the Maven jar), ``$ASYNC_PROFILER_HOME``,
``asprof`` on PATH, and the newest ``tools.profiler:async-profiler`` jar in the local Maven
repository, whose native library is extracted once into profkit's cache. :func:`library_for`
gives a JVM the library it already has loaded (one JVM must never run two async-profilers), or a
copy it can read when it runs as another user.
"""
from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Optional, Tuple

from profkit.atomic import atomic_write
from profkit.errors import CollectorNotInstalled, EnvironmentProblem, TargetNotFound

__all__ = ["AgentLibrary", "INSTALL_HINT", "LIBRARY", "find_library", "library_for", "loaded_agent"]

INSTALL_HINT = ("fetch it from Maven Central: mvn dependency:get -Dartifact=tools.profiler:async-profiler:4.1 "
                "(or set ASYNC_PROFILER_HOME, or PROFKIT_ASPROF to asprof, libasyncProfiler.so or the jar)")
LIBRARY = "libasyncProfiler.so"


@dataclass(frozen=True)
class AgentLibrary:
    """A ``libasyncProfiler.so`` for this machine, its version ("" if unknown) and where it came from."""

    path: str
    version: str
    origin: str


def _platform() -> Optional[str]:
    """The jar's directory for this machine (``linux-x64``, ``linux-arm64``), None elsewhere."""
    if sys.platform != "linux":
        return None
    return {"x86_64": "linux-x64", "amd64": "linux-x64", "aarch64": "linux-arm64",
            "arm64": "linux-arm64"}.get(platform.machine().lower())


def _version_key(v: str) -> Tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", v))


def _asprof_version(asprof: str) -> str:
    try:
        out = subprocess.run([asprof, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    m = re.search(r"(\d+\.\d+(?:\.\d+)?)", out)
    return m.group(1) if m else ""


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "profkit")


def _from_jar(jar: str) -> AgentLibrary:
    """The jar's native library for this machine, extracted once into profkit's cache and reused."""
    plat = _platform()
    m = re.search(r"async-profiler-([^/]+)\.jar$", jar)
    version = m.group(1) if m else ""
    if plat is None:
        raise CollectorNotInstalled(f"the async-profiler jar has no native library for {sys.platform}/{platform.machine()}")
    member = f"{plat}/{LIBRARY}"
    target = os.path.join(_cache_dir(), f"async-profiler-{version or 'jar'}", plat, LIBRARY)
    try:
        with zipfile.ZipFile(jar) as zf:
            info = zf.getinfo(member)
            if not (os.path.isfile(target) and os.path.getsize(target) == info.file_size):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with zf.open(info) as src:
                    # atomic, so a concurrent run never loads a half-written library
                    atomic_write(target, lambda out: shutil.copyfileobj(src, out), binary=True, mode=0o755,
                                 honour_umask=False)
    except KeyError:
        raise CollectorNotInstalled(f"{jar} has no {member}", hint=INSTALL_HINT) from None
    except (OSError, zipfile.BadZipFile) as e:
        raise CollectorNotInstalled(f"cannot extract {member} from {jar}: {e}", hint=INSTALL_HINT) from None
    return AgentLibrary(target, version, jar)


def _from_spec(spec: str) -> AgentLibrary:
    """A library from an explicit path: asprof, the .so, an async-profiler directory or the jar."""
    if os.path.isdir(spec):
        for cand in (os.path.join(spec, "lib", LIBRARY), os.path.join(spec, LIBRARY)):
            if os.path.isfile(cand):
                return AgentLibrary(os.path.abspath(cand), _asprof_version(os.path.join(spec, "bin", "asprof")), spec)
    elif spec.endswith(".jar") and os.path.isfile(spec):
        return _from_jar(os.path.abspath(spec))
    elif spec.endswith(".so") and os.path.isfile(spec):
        return AgentLibrary(os.path.abspath(spec), "", spec)
    elif os.path.isfile(spec):  # asprof: the library is in ../lib of its real location
        real = os.path.realpath(spec)
        cand = os.path.join(os.path.dirname(os.path.dirname(real)), "lib", LIBRARY)
        if os.path.isfile(cand):
            return AgentLibrary(cand, _asprof_version(real), spec)
    raise CollectorNotInstalled(f"async-profiler not found at {spec} (no {LIBRARY} there)", hint=INSTALL_HINT)


def find_library(asprof: str = "") -> AgentLibrary:
    """Find async-profiler's agent library: ``asprof`` (or ``$PROFKIT_ASPROF``), then
    ``$ASYNC_PROFILER_HOME``, then ``asprof`` on PATH, then the newest
    ``tools.profiler:async-profiler`` jar in the local Maven repository (``~/.m2``)."""
    spec = asprof or os.environ.get("PROFKIT_ASPROF", "")
    if spec:
        return _from_spec(spec)
    home = os.environ.get("ASYNC_PROFILER_HOME")
    if home:
        return _from_spec(home)
    on_path = shutil.which("asprof")
    if on_path:
        return _from_spec(on_path)
    m2 = os.path.join(os.path.expanduser("~"), ".m2", "repository", "tools", "profiler", "async-profiler")
    jars = []
    for v in os.listdir(m2) if os.path.isdir(m2) else []:
        jar = os.path.join(m2, v, f"async-profiler-{v}.jar")
        if os.path.isfile(jar):
            jars.append((_version_key(v), jar))
    if jars:
        return _from_jar(max(jars)[1])
    raise CollectorNotInstalled("async-profiler not found ($PROFKIT_ASPROF, $ASYNC_PROFILER_HOME, asprof on PATH, "
                                "~/.m2/repository/tools/profiler/async-profiler)", hint=INSTALL_HINT)


def loaded_agent(pid: int) -> Optional[str]:
    """The path of the async-profiler library already loaded in a JVM (as the JVM sees it), if any."""
    try:
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.rstrip("\n").split(None, 5)
                if len(parts) == 6 and LIBRARY in os.path.basename(parts[5].replace(" (deleted)", "")):
                    return parts[5]
    except OSError:
        pass
    return None


def _world_readable(path: str) -> bool:
    """Whether any user can read ``path`` (every directory above it searchable by others)."""
    path = os.path.realpath(path)
    if not os.stat(path).st_mode & stat.S_IROTH:
        return False
    d = os.path.dirname(path)
    while True:
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return False
        if d == "/":
            return True
        d = os.path.dirname(d)


def library_for(lib: str, pid: int) -> str:
    """The library path to give JVM ``pid``: the agent it already has (one JVM must never run
    two async-profilers), else ``lib``, copied to a root-owned, world-readable place when the
    JVM's user could not read it (profkit as root, a JVM of a service user)."""
    loaded = loaded_agent(pid)
    if loaded is not None:
        if loaded.endswith(" (deleted)") or not os.path.exists(f"/proc/{pid}/root{loaded}"):
            raise EnvironmentProblem(f"JVM {pid} has async-profiler loaded from {loaded}, which is gone; loading "
                                     "another copy would run two profilers in one JVM",
                                     hint="use -c jfr, or restart the JVM to profile it with async-profiler")
        return loaded
    try:
        owner = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        raise TargetNotFound(f"process {pid} exited") from None
    if owner == os.geteuid() or _world_readable(lib):
        return lib
    with open(lib, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()[:16]
    # Content-addressed, so reruns give the JVM the same path (see loaded_agent above).
    stage = os.path.join(tempfile.gettempdir(), f"profkit-{os.geteuid()}-async-profiler-{digest}")
    os.makedirs(stage, mode=0o755, exist_ok=True)
    st = os.lstat(stage)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise EnvironmentProblem(f"{stage} exists but is not profkit's own directory; refusing to load a library from it",
                                 hint=f"remove {stage}")
    os.chmod(stage, 0o755)
    staged = os.path.join(stage, LIBRARY)
    if not os.path.isfile(staged):
        with open(lib, "rb") as src:
            atomic_write(staged, lambda out: shutil.copyfileobj(src, out), binary=True, mode=0o755, honour_umask=False)
    return staged
