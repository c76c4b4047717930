// SPDX-License-Identifier: Apache-2.0
/**
 * Two named JVM threads with different hot methods, for profkit's thread tests (test_timeline.py).
 *
 * <pre>java -cp DIR ProfkitThreads SECONDS</pre>
 *
 * {@code profkit-alpha} runs {@link #alphaWork} and {@code profkit-beta} {@link #betaWork}, each
 * integer arithmetic only, until SECONDS have passed (0: until killed); prints {@code ready}.
 */
public final class ProfkitThreads {
    static volatile long sink;

    static long mix(long x, long i) {
        x ^= x << 13;
        x ^= x >>> 7;
        x ^= x << 17;
        return x + i * 31 / (i % 7 + 1);
    }

    static long alphaWork(long rounds) {
        long x = 0x9E3779B97F4A7C15L;
        for (long i = 0; i < rounds; i++) {
            x = mix(x, i);
        }
        return x;
    }

    static long betaWork(long rounds) {
        long x = 0xC2B2AE3D27D4EB4FL;
        for (long i = 0; i < rounds; i++) {
            x = mix(x, i) ^ i;
        }
        return x;
    }

    static Thread worker(String name, boolean alpha, long end) {
        Thread t = new Thread(() -> {
            while (end == 0 || System.nanoTime() < end) {
                sink += alpha ? alphaWork(200_000) : betaWork(200_000);
            }
        }, name);
        t.start();
        return t;
    }

    public static void main(String[] args) throws InterruptedException {
        double seconds = args.length > 0 ? Double.parseDouble(args[0]) : 0;
        long end = seconds > 0 ? System.nanoTime() + (long) (seconds * 1e9) : 0;
        Thread a = worker("profkit-alpha", true, end);
        Thread b = worker("profkit-beta", false, end);
        System.out.println("ready");
        System.out.flush();
        a.join();
        b.join();
    }
}
