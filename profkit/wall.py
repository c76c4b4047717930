# SPDX-License-Identifier: Apache-2.0
"""Wall-clock profiles split into idle and working threads (pure functions over a Profile).

A wall-clock sample of a thread is one of:

* **idle**: the thread waits for work, with no request in progress: a pool worker blocked on
  its queue (``ThreadPoolExecutor.getTask``, a Python pool loop's ``Queue.get``), a server's
  accept or select loop (``serve_forever``), an event loop with nothing to do, a runtime thread
  of the JVM or of a library with no application frame, waiting;
* **working, running**: the thread was running (its leaf is not a blocking call);
* **working, waiting**: a blocking call made on behalf of work in progress: a socket read, a lock,
  a sleep, a subprocess, a queue, a select; reported with the application function that waits
  (its deepest frame in the target's own code, :mod:`profkit.attribution`) and the library frame
  it waits in.

Whether a leaf blocks is read from its name (:data:`WAIT_KINDS`): py-spy shows the Python frame
that made a C call, so an application function that calls ``time.sleep`` or ``socket.recv``
directly counts as running unless the run used ``--native``.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from profkit.attribution import Rules, frame_classes
from profkit.frames import split_kind
from profkit.model import Frame, Number, Profile

__all__ = ["IDLE_POINTS", "REQUEST_FRAMES", "WAIT_KINDS", "WallSplit", "WaitRow", "wall_split"]

#: (kind, pattern on a frame's text): the blocking calls, first match wins when read from the
#: application frame down (so ``Popen.communicate`` → ``select`` is a subprocess wait).
WAIT_KINDS: Sequence[Tuple[str, str]] = (
    ("subprocess", r"\A(?:Popen\.(?:wait|communicate|_wait|_try_wait|_communicate)|_try_wait|waitpid"
                   r"|java\.lang\.Process(?:Impl)?\.waitFor|java\.lang\.ProcessHandleImpl\.waitForProcessExit0)\b"),
    ("socket connect", r"\A(?:create_connection|socket\.connect|sun\.nio\.ch\.Net\.connect0?|java\.net\.Socket\.connect)\b"),
    ("socket read", r"\A(?:SocketIO\.readinto|SSLSocket\.(?:recv_into|recv|read)|SSLObject\.read|socket\.recv\w*) "
                    r"\((?:.*/)?(?:socket|ssl)\.py\)"
                    r"|\A(?:java\.net\.SocketInputStream\.socketRead0?|sun\.nio\.ch\.NioSocketImpl\.(?:read|timedRead|park)"
                    r"|sun\.nio\.ch\.SocketDispatcher\.read0?|sun\.nio\.ch\.SocketChannelImpl\.read|recv|recvfrom|read)\Z"),
    ("accept", r"\A(?:socket\.accept|socket\._accept|accept4?|sun\.nio\.ch\.Net\.accept0?|java\.net\.ServerSocket\.accept"
               r"|sun\.nio\.ch\.NioSocketImpl\.accept)\b"),
    ("queue", r"\A(?:(?:Queue|SimpleQueue|LifoQueue|PriorityQueue)\.get|_worker) \((?:.*/)?(?:queue|concurrent/futures/thread)\.py\)"
              r"|\Ajava\.util\.concurrent\.(?:LinkedBlockingQueue|ArrayBlockingQueue|SynchronousQueue|LinkedTransferQueue"
              r"|ScheduledThreadPoolExecutor\$DelayedWorkQueue|LinkedBlockingDeque|PriorityBlockingQueue)\.(?:take|poll)\b"),
    ("sleep", r"\A(?:time\.sleep|sleep|java\.lang\.Thread\.sleep0?|nanosleep|clock_nanosleep|__GI___nanosleep)\b"),
    ("select", r"\A(?:\w*Selector\.select|select|poll|ppoll|epoll_wait|epoll_pwait|sun\.nio\.ch\.EPoll\.wait"
               r"|sun\.nio\.ch\.\w*SelectorImpl\.(?:doSelect|select)) ?"),
    ("lock", r"\A(?:Condition\.wait|Event\.wait|Semaphore\.acquire|Barrier\.wait|Thread\._wait_for_tstate_lock|Thread\.join"
             r"|_wait_for_tstate_lock) \((?:.*/)?threading\.py\)"
             r"|\A(?:jdk\.internal\.misc\.Unsafe\.park|java\.util\.concurrent\.locks\.LockSupport\.park\w*|java\.lang\.Object\.wait0?"
             r"|java\.lang\.ref\.Reference\.waitForReferencePendingList|pthread_cond_\w*wait|futex_wait\w*|__lll_lock_wait"
             r"|__futex_abstimed_wait_common\w*|syscall)\Z"),
)
#: Library loops whose waits are a thread waiting for work (see the module docstring).
IDLE_POINTS = (r"\A(?:BaseServer\.serve_forever|BaseEventLoop\.(?:run_forever|_run_once)|Arbiter\.(?:sleep|run)"
               r"|_worker \((?:.*/)?concurrent/futures/thread\.py\)"
               r"|java\.util\.concurrent\.ThreadPoolExecutor\.getTask|java\.util\.concurrent\.ForkJoinPool\.awaitWork"
               r"|sun\.net\.httpserver\.ServerImpl\$Dispatcher\.run|java\.lang\.ref\.ReferenceQueue\.remove"
               r"|java\.lang\.ref\.Reference\.processPendingReferences|jdk\.internal\.misc\.InnocuousThread\.run"
               r"|io\.netty\.channel\.nio\.NioEventLoop\.run|org\.eclipse\.jetty\.util\.thread\.QueuedThreadPool.*\.idleJobPoll)\b")
#: Frames that mean a request is in progress on the thread.
REQUEST_FRAMES = (r"\A(?:BaseServer\.(?:finish_request|process_request|_handle_request_noblock)|ThreadingMixIn\.process_request\w*"
                  r"|BaseRequestHandler\.__init__|BaseHTTPRequestHandler\.handle(?:_one_request)?|WSGIRequestHandler\.\w+"
                  r"|\w*Worker\.handle(?:_request)?|BaseHandler\.get_response|Flask\.(?:wsgi_app|full_dispatch_request)"
                  r"|\w+\.run_asgi|\w+\.do_(?:GET|POST|PUT|DELETE|HEAD|PATCH|OPTIONS)"
                  r"|sun\.net\.httpserver\.ServerImpl\$Exchange\.run|j(?:akarta|avax)\.servlet\.http\.HttpServlet\.service"
                  r"|java\.util\.concurrent\.FutureTask\.run|java\.util\.concurrent\.CompletableFuture\$\w+\.run"
                  r"|io\.netty\.channel\.AbstractChannelHandlerContext\.invokeChannelRead|org\.eclipse\.jetty\.server\.HttpChannel\.handle"
                  r"|io\.undertow\.server\.Connectors\.executeRootHandler)\b")
_KINDS = [(k, re.compile(p)) for k, p in WAIT_KINDS]
_IDLE_POINT = re.compile(IDLE_POINTS)
_REQUEST = re.compile(REQUEST_FRAMES)
_APP_LOOP_WAIT = re.compile(r"\A(?:(?:Queue|SimpleQueue|LifoQueue|PriorityQueue)\.get|Condition\.wait|Event\.wait) "
                            r"\((?:.*/)?(?:queue|threading)\.py\)")


@dataclass(frozen=True)
class WaitRow:
    """One wait of working threads: the application function that waits, on what, in which frame."""

    app: Optional[str]
    kind: str
    frame: str
    weight: Number
    share: float      #: % of all samples
    working_share: float  #: % of the working samples


@dataclass
class WallSplit:
    """A wall-clock profile split into idle and working samples."""

    total: Number = 0
    idle: Number = 0
    running: Number = 0
    waiting: Number = 0
    working: Optional[Profile] = None                    #: the working samples only
    waits: List[WaitRow] = field(default_factory=list)   #: the working threads' waits, heaviest first
    idle_points: List[Tuple[str, str, float]] = field(default_factory=list)  #: (what waits, on what, % of all)

    def pct(self, w: Number) -> float:
        """``w`` as a share (%) of all samples."""
        return 100.0 * w / (self.total or 1)


def _kind_of(frames: Dict[str, Frame], code: Tuple[str, ...], start: int) -> Optional[Tuple[str, str]]:
    """(kind, frame id) of the first blocking call from ``start`` (the application frame) down."""
    for fid in code[start:]:
        text = frames[fid].text
        for kind, rx in _KINDS:
            if rx.search(text):
                return kind, fid
    return None


def _leaf_waits(frames: Dict[str, Frame], leaf: str) -> bool:
    text = frames[leaf].text
    return any(rx.search(text) for _, rx in _KINDS)


def _is_idle(frames, code, app_index: Optional[int], first_app: Optional[int], marks) -> bool:
    """A waiting stack is idle when no request is in progress and it waits in a library loop
    below the application's frames, or on its queue or condition right in the thread's first
    application frame (a pool loop written in the application), or has no application frame."""
    idle_at, request = marks
    if request:
        return False
    if app_index is None:
        return True
    if idle_at is not None and idle_at > app_index:
        return True
    nxt = app_index + 1
    return app_index == first_app and nxt < len(code) and bool(_APP_LOOP_WAIT.search(frames[code[nxt]].text))


def wall_split(profile: Optional[Profile], rules: Rules = Rules(), n: int = 10) -> WallSplit:
    """Split a wall-clock profile into idle and working samples (see the module docstring)."""
    out = WallSplit()
    if not profile:
        return out
    keyed = profile if profile.is_keyed else profile.keyed()
    frames = keyed.frames
    app_of, skip = frame_classes(keyed, rules)
    marks: Dict[str, Tuple[bool, bool]] = {f: (bool(_IDLE_POINT.search(frames[f].text)),
                                               bool(_REQUEST.search(frames[f].text))) for f in frames}
    waits_leaf: Dict[str, bool] = {}
    working = Profile(keyed.unit, keyed.meta, keyed=True)
    waits: Counter = Counter()
    idle_points: Counter = Counter()
    for key, w in keyed.items():
        out.total += w
        code = tuple(f for f in key if not skip[f])
        if not code:
            continue
        leaf = code[-1]
        if leaf not in waits_leaf:
            waits_leaf[leaf] = _leaf_waits(frames, leaf)
        apps = [i for i, f in enumerate(code) if app_of[f]]
        app_index = apps[-1] if apps else None
        if not waits_leaf[leaf]:
            out.running += w
            working.add_tokens(key, w)
            continue
        idle_at = max((i for i, f in enumerate(code) if marks[f][0]), default=None)
        request = any(marks[f][1] for f in code)
        kind = _kind_of(frames, code, (app_index or 0) + (1 if app_index is not None else 0)) or ("wait", leaf)
        who = code[app_index] if app_index is not None else None
        if _is_idle(frames, code, app_index, apps[0] if apps else None, (idle_at, request)):
            out.idle += w
            idle_points[(who or code[idle_at if idle_at is not None else -1], kind[0])] += w
            continue
        out.waiting += w
        working.add_tokens(key, w)
        waits[(who, kind[0], kind[1])] += w
    out.working = working
    work = (out.running + out.waiting) or 1
    out.waits = [WaitRow(None if a is None else split_kind(a)[0], k, split_kind(f)[0], w, out.pct(w), 100.0 * w / work)
                 for (a, k, f), w in sorted(waits.items(), key=lambda x: (-x[1], str(x[0])))[:n]]
    out.idle_points = [(split_kind(a)[0], k, out.pct(w)) for (a, k), w in idle_points.most_common(3)]
    return out
