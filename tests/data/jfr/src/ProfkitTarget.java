// SPDX-License-Identifier: Apache-2.0
// A tiny JVM target for profkit's parser tests: hotLoop() burns most of the CPU,
// allocate() allocates small arrays (inside TLABs) and large ones (outside TLABs).
// Usage: java ProfkitTarget SECONDS
import java.util.ArrayList;
import java.util.List;

public final class ProfkitTarget {
    static volatile long sink;
    static volatile Object keep;

    static long hotLoop(long n) {
        long x = 0;
        for (long i = 0; i < n; i++) {
            x += (i * 31) ^ (x >>> 3);
        }
        return x;
    }

    static void allocate(int rounds) {
        List<Object> small = new ArrayList<>();
        for (int i = 0; i < rounds; i++) {
            small.add(new byte[64]);
            small.add(Integer.toString(i));
        }
        keep = small;
        // 4 MiB is far above any TLAB's fast path, so it is allocated outside a TLAB.
        keep = new long[512 * 1024];
    }

    public static void main(String[] args) throws Exception {
        double seconds = args.length > 0 ? Double.parseDouble(args[0]) : 4.0;
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        Thread worker = new Thread(() -> {
            while (System.nanoTime() < deadline) {
                sink += hotLoop(5_000_000L);
                allocate(2_000);
            }
        }, "profkit-worker");
        worker.start();
        worker.join();
    }
}
