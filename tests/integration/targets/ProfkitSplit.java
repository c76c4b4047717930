// SPDX-License-Identifier: Apache-2.0
/**
 * A deterministic JVM target for profkit's reference tests (test_references.py).
 *
 * <pre>java -cp DIR ProfkitSplit SECONDS</pre>
 *
 * A thread named {@code profkit-split} repeats one fixed round until the JVM exits, SECONDS
 * after it printed {@code ready} (so that a recording started with {@code -agentpath} or
 * {@code -XX:StartFlightRecording} is written as the JVM exits). A round is 6 units of
 * {@link #heavy}, reached through {@link #DEPTH} nested calls of {@link #descend} so that its
 * stacks are deeper than the 64 frames {@code jfr print} is asked for; 3 units of {@link #medium};
 * and 1 unit of {@link #allocate}, which allocates {@code long[]} arrays (for
 * jdk.ObjectAllocationSample). The work is integer arithmetic only: no intrinsics such as
 * Math.sin, whose stubs JFR cannot walk.
 */
public final class ProfkitSplit {
    static final int DEPTH = 80;
    static final long UNIT = 400_000;
    static volatile long sink;

    static long mix(long rounds, long seed) {
        long x = seed;
        for (long i = 0; i < rounds; i++) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            x += i * 31 / (i % 7 + 1);
        }
        return x;
    }

    static long heavy(long rounds) {
        return mix(rounds, 0x9E3779B97F4A7C15L);
    }

    static long descend(int depth, long rounds) {
        // not a tail call (the JVM never removes frames anyway): every level stays on the stack
        return depth == 0 ? heavy(rounds) : descend(depth - 1, rounds) ^ depth;
    }

    static long medium(long rounds) {
        return mix(rounds, 0xC2B2AE3D27D4EB4FL);
    }

    static long allocate(long rounds) {
        long total = 0;
        for (long i = 0; i < rounds / 64; i++) {
            long[] block = new long[64 + (int) (i & 255)];
            block[(int) (i & 63)] = i;
            total += block.length + block[(int) ((i * 7) & 63)];
        }
        return total;
    }

    public static void main(String[] args) throws Exception {
        long seconds = Long.parseLong(args[0]);
        Thread worker = new Thread(() -> {
            while (true) {
                sink += descend(DEPTH, 6 * UNIT) + medium(3 * UNIT) + allocate(UNIT);
            }
        }, "profkit-split");
        worker.setDaemon(true);
        worker.start();
        System.out.println("ready");
        System.out.flush();
        Thread.sleep(seconds * 1000);
    }
}
