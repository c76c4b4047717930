// SPDX-License-Identifier: Apache-2.0
/**
 * A JVM target for {@code profkit dump}: two real Java-level deadlocks.
 *
 * <pre>java -cp DIR ProfkitDeadlock</pre>
 *
 * Monitors: thread {@code profkit-left} holds the monitor of a {@code Left} and wants the one of
 * a {@code Right}; thread {@code profkit-right} holds the {@code Right} and wants the {@code Left}.
 * Ownable synchronizers: thread {@code profkit-lock-a} holds {@link ReentrantLock} {@code A} and
 * wants {@code B}; {@code profkit-lock-b} holds {@code B} and wants {@code A}. Each pair meets
 * at a barrier once both hold their first lock, so the deadlocks are certain. It prints
 * {@code ready} once all four threads are blocked on their second lock; the main thread then
 * waits for ever.
 */
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.locks.ReentrantLock;

public final class ProfkitDeadlock {
    static final class Left { }
    static final class Right { }

    static final Object LEFT = new Left();
    static final Object RIGHT = new Right();
    static final CyclicBarrier MONITORS_HELD = new CyclicBarrier(2);
    static final ReentrantLock A = new ReentrantLock();
    static final ReentrantLock B = new ReentrantLock();
    static final CyclicBarrier LOCKS_HELD = new CyclicBarrier(2);

    static void takeLeftThenRight() throws Exception {
        synchronized (LEFT) {
            MONITORS_HELD.await();
            synchronized (RIGHT) {
                System.out.println("never");
            }
        }
    }

    static void takeRightThenLeft() throws Exception {
        synchronized (RIGHT) {
            MONITORS_HELD.await();
            synchronized (LEFT) {
                System.out.println("never");
            }
        }
    }

    static void lockBoth(ReentrantLock first, ReentrantLock second) throws Exception {
        first.lock();
        try {
            LOCKS_HELD.await();
            second.lock();
            second.unlock();
        } finally {
            first.unlock();
        }
    }

    interface Body {
        void run() throws Exception;
    }

    static Thread start(String name, Body body) {
        Thread t = new Thread(() -> {
            try {
                body.run();
            } catch (Exception e) {
                e.printStackTrace();
            }
        }, name);
        t.setDaemon(true);
        t.start();
        return t;
    }

    public static void main(String[] args) throws Exception {
        Thread left = start("profkit-left", ProfkitDeadlock::takeLeftThenRight);
        Thread right = start("profkit-right", ProfkitDeadlock::takeRightThenLeft);
        Thread a = start("profkit-lock-a", () -> lockBoth(A, B));
        Thread b = start("profkit-lock-b", () -> lockBoth(B, A));
        while (left.getState() != Thread.State.BLOCKED || right.getState() != Thread.State.BLOCKED
               || !B.hasQueuedThread(a) || !A.hasQueuedThread(b)) {
            Thread.sleep(10);
        }
        System.out.println("ready");
        System.out.flush();
        left.join();
    }
}
