// SPDX-License-Identifier: Apache-2.0
/**
 * A JVM target with a time structure, for the timed-sample tests of async-profiler (test_asprof_timed.py).
 *
 * <pre>java -cp DIR ProfkitPhases GO_FILE SECONDS</pre>
 *
 * Prints {@code ready}, waits until GO_FILE exists (so that a test can start its profiler first),
 * then its {@code profkit-phases} thread runs {@link #phaseA} for SECONDS and {@link #phaseB} for
 * as long, printing {@code A <epoch>}, {@code B <epoch>} and {@code end <epoch>} (seconds) as each
 * begins and as B ends; it then sleeps until killed. Integer arithmetic only.
 */
import java.nio.file.Files;
import java.nio.file.Paths;

public final class ProfkitPhases {
    static volatile long sink;

    static long phaseA(long until) {
        long x = 0x9E3779B97F4A7C15L;
        while (System.nanoTime() < until) {
            for (int i = 0; i < 100_000; i++) {
                x ^= x << 13;
                x ^= x >>> 7;
                x += i * 31 / (i % 7 + 1);
            }
        }
        return x;
    }

    static long phaseB(long until) {
        long x = 0xC2B2AE3D27D4EB4FL;
        while (System.nanoTime() < until) {
            for (int i = 0; i < 100_000; i++) {
                x ^= x >>> 11;
                x ^= x << 5;
                x += i * 17 / (i % 5 + 1);
            }
        }
        return x;
    }

    static void mark(String what) {
        System.out.println(what + " " + (System.currentTimeMillis() / 1000.0));
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        long nanos = Long.parseLong(args[1]) * 1_000_000_000L;
        Thread worker = new Thread(() -> {
            try {
                while (!Files.exists(Paths.get(args[0]))) {
                    Thread.sleep(10);
                }
            } catch (InterruptedException e) {
                return;
            }
            mark("A");
            sink += phaseA(System.nanoTime() + nanos);
            mark("B");
            sink += phaseB(System.nanoTime() + nanos);
            mark("end");
        }, "profkit-phases");
        worker.setDaemon(true);
        worker.start();
        System.out.println("ready");
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }
}
