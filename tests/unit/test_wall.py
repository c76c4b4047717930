# SPDX-License-Identifier: Apache-2.0
"""Wall-clock profiles: idle threads set apart, the working threads' waits named."""
import pytest

from profkit.model import Profile
from profkit.wall import wall_split

REQ = ("_bootstrap (threading.py:1);run (threading.py:2);ThreadingMixIn.process_request_thread (socketserver.py:3);"
       "BaseServer.finish_request (socketserver.py:4);BaseHTTPRequestHandler.handle_one_request (http/server.py:5);"
       "Handler.do_GET (svc.py:10)")


def make(lines):
    p = Profile()
    for stack, w in lines:
        p.add(stack.split(";"), w)
    return p


def test_python_service():
    p = make([
        ("_bootstrap (threading.py:1);run (threading.py:2);pool_worker (svc.py:50);Queue.get (queue.py:3);"
         "Condition.wait (threading.py:4)", 40),                                                  # idle pool worker
        ("<module> (svc.py:1);main (svc.py:2);BaseServer.serve_forever (socketserver.py:3);"
         "_PollLikeSelector.select (selectors.py:4)", 20),                                          # idle accept loop
        (REQ + ";fetch (svc.py:30);HTTPResponse.begin (http/client.py:1);SocketIO.readinto (socket.py:7)", 25),
        (REQ + ";render (svc.py:40);JSONEncoder.encode (json/encoder.py:9)", 10),                    # running
        (REQ + ";update (svc.py:60);Condition.wait (threading.py:4)", 5),                           # a lock in a request
    ])
    w = wall_split(p)
    assert (w.total, w.idle, w.running, w.waiting) == (100, 60, 10, 30)
    assert w.idle_points[0] == ("pool_worker (svc.py)", "queue", 40.0)
    assert [(r.app, r.kind, r.frame) for r in w.waits] == [("fetch (svc.py)", "socket read", "SocketIO.readinto (socket.py)"),
                                                           ("update (svc.py)", "lock", "Condition.wait (threading.py)")]
    assert w.waits[0].working_share == pytest.approx(62.5)
    assert w.working.total == 40


def test_jvm_pool_runtime_threads_and_subprocess():
    p = make([
        ("java/lang/Thread.run;java/util/concurrent/ThreadPoolExecutor.runWorker;"
         "java/util/concurrent/ThreadPoolExecutor.getTask;java/util/concurrent/LinkedBlockingQueue.take;"
         "jdk/internal/misc/Unsafe.park", 50),                                                      # idle pool
        ("java/lang/ref/Reference.processPendingReferences;java/lang/ref/Reference.waitForReferencePendingList", 10),
        ("java/lang/Thread.run;java/util/concurrent/ThreadPoolExecutor.runWorker;"
         "sun/net/httpserver/ServerImpl$Exchange.run;com/example/Api.handle;com/example/Db.query;"
         "java/net/SocketInputStream.socketRead0", 30),
        ("main (tool.py:1);build (tool.py:5);Popen.communicate (subprocess.py:1);Popen._communicate (subprocess.py:2);"
         "_PollLikeSelector.select (selectors.py:4)", 10),
    ])
    w = wall_split(p)
    assert (w.idle, w.waiting) == (60, 40)
    assert [(r.app, r.kind) for r in w.waits] == [("com.example.Db.query", "socket read"), ("build (tool.py)", "subprocess")]
