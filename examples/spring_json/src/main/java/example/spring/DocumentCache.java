package example.spring;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/** The application's cache of parsed documents: with --leak, nothing is ever evicted. */
public final class DocumentCache {
    static final Map<Long, Entry> ENTRIES = new ConcurrentHashMap<>();
    private static final AtomicLong NEXT = new AtomicLong();

    /** One cached document: the parsed tree and when it came. */
    static final class Entry {
        final JsonNode document;
        final long receivedMillis;

        Entry(JsonNode document, long receivedMillis) {
            this.document = document;
            this.receivedMillis = receivedMillis;
        }
    }

    private DocumentCache() {
    }

    static long remember(JsonNode document) {
        long id = NEXT.incrementAndGet();
        ENTRIES.put(id, new Entry(document, System.currentTimeMillis()));
        return id;
    }

    static int size() {
        return ENTRIES.size();
    }
}
