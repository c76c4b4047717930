// SPDX-License-Identifier: Apache-2.0
// Known object graphs for profkit's HPROF reader tests (tests/unit/test_hprof.py): the test takes a
// heap dump of this process (jcmd PID GC.heap_dump) and checks the paths and sizes it finds.
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

public class HeapShapes {
    // a cache: a static map of 10,000 entries, each holding a byte[100]
    static final Map<String, Entry> ENTRIES = new HashMap<>();
    // a cycle of three objects
    static Ring RING;
    // an array of objects
    static Leaf[] LEAVES;
    // a thread-local value, held only by its thread
    static final ThreadLocal<Payload> LOCAL = new ThreadLocal<>();

    static final class Entry {
        final byte[] data;
        Entry(int n) { data = new byte[n]; }
    }

    static final class Ring {
        Ring next;
        final byte[] pad = new byte[64];
    }

    static final class Leaf {
        final long[] values = new long[4];
    }

    static final class Payload {
        final byte[] data = new byte[1 << 20];
    }

    // built in methods of their own: no stack slot of main() refers to them
    static Ring ring() {
        Ring a = new Ring(), b = new Ring(), c = new Ring();
        a.next = b;
        b.next = c;
        c.next = a;
        return a;
    }

    static Leaf[] leaves() {
        Leaf[] out = new Leaf[500];
        for (int i = 0; i < out.length; i++) {
            out[i] = new Leaf();
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        for (int i = 0; i < 10_000; i++) {
            ENTRIES.put("k" + i, new Entry(100));
        }
        RING = ring();
        LEAVES = leaves();
        CountDownLatch set = new CountDownLatch(1);
        Thread holder = new Thread(() -> {
            LOCAL.set(new Payload());
            set.countDown();
            try {
                Thread.sleep(Long.MAX_VALUE);
            } catch (InterruptedException e) {
                // ends with the process
            }
        }, "payload-holder");
        holder.setDaemon(true);
        holder.start();
        set.await();
        System.out.println("ready");
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }
}
