// SPDX-License-Identifier: Apache-2.0
/**
 * A JVM target for profkit's live tests, with known hot methods.
 *
 * <pre>java -cp DIR ProfkitHot cpu|alloc [SECONDS]</pre>
 *
 * {@code cpu}: a thread named {@code profkit-hot} spends its time in {@link #spin} (integer
 * arithmetic only: no intrinsics such as Math.sin, whose stubs JFR cannot walk).
 * {@code alloc}: a thread named {@code profkit-alloc} spends it in {@link #allocate}, which
 * allocates {@code long[]} arrays. It prints {@code ready} once running, and exits after
 * SECONDS (default: never).
 */
public final class ProfkitHot {
    static volatile long sink;

    static long spin(long rounds) {
        long x = 0x9E3779B97F4A7C15L;
        for (long i = 0; i < rounds; i++) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            x += i * 31 / (i % 7 + 1);
        }
        return x;
    }

    static long allocate(int count) {
        long total = 0;
        for (int i = 0; i < count; i++) {
            long[] block = new long[256 + (i & 1023)];
            block[i & 255] = i;
            total += block.length + block[(i * 7) & 255];
        }
        return total;
    }

    public static void main(String[] args) throws Exception {
        boolean alloc = args.length > 0 && args[0].equals("alloc");
        long seconds = args.length > 1 ? Long.parseLong(args[1]) : 0;
        Thread worker = new Thread(() -> {
            while (true) {
                sink += alloc ? allocate(10_000) : spin(5_000_000);
            }
        }, alloc ? "profkit-alloc" : "profkit-hot");
        worker.setDaemon(true);
        worker.start();
        System.out.println("ready");
        System.out.flush();
        if (seconds > 0) {
            Thread.sleep(seconds * 1000);
        } else {
            Thread.sleep(Long.MAX_VALUE);
        }
    }
}
