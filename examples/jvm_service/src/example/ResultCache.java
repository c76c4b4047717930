// SPDX-License-Identifier: Apache-2.0
package example;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

/**
 * The leak (only with --leak): every result is kept, keyed by request number, in a static map that
 * is never trimmed. A class histogram shows example.ResultCache$Entry (and the byte[] it holds)
 * growing with every request.
 */
final class ResultCache {
    private static final Map<Long, Entry> ENTRIES = new HashMap<>();
    private static long retainedBytes;

    static final class Entry {
        final long request;
        final long createdNanos;
        final String result;
        final byte[] payloadHead;

        Entry(long request, String result, byte[] payloadHead) {
            this.request = request;
            this.createdNanos = System.nanoTime();
            this.result = result;
            this.payloadHead = payloadHead;
        }
    }

    private ResultCache() {
    }

    /** Keeps the result and the first headBytes characters of the payload, forever. */
    static void remember(long request, String result, String payload, int headBytes) {
        byte[] head = payload.substring(0, Math.min(headBytes, payload.length())).getBytes(StandardCharsets.UTF_8);
        synchronized (ResultCache.class) {
            ENTRIES.put(request, new Entry(request, result, head)); // leak site; examples/README.md cites this line
            retainedBytes += result.length() + head.length;
        }
    }

    static synchronized int size() {
        return ENTRIES.size();
    }

    static synchronized long retainedBytes() {
        return retainedBytes;
    }
}
