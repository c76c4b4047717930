// SPDX-License-Identifier: Apache-2.0
// A heap of a given size for benchmarks/bench_hprof.py: a static cache of documents (maps,
// lists, strings, arrays: the object mix of a JSON service), then "ready"; it sleeps until killed.
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

public class HeapFill {
    static final Map<Integer, Doc> CACHE = new HashMap<>();

    static final class Doc {
        final Map<String, Object> fields = new HashMap<>();
        final List<Object> items = new ArrayList<>();
        final long id;
        Doc(long id) { this.id = id; }
    }

    public static void main(String[] args) throws Exception {
        long target = Long.parseLong(args[0]) << 20;
        Runtime rt = Runtime.getRuntime();
        int i = 0;
        while (rt.totalMemory() - rt.freeMemory() < target) {
            Doc d = new Doc(i);
            d.fields.put("name", "doc-" + i);
            d.fields.put("score", Integer.valueOf(i * 7));
            d.fields.put("tags", new String[] {"a" + (i % 97), "b" + (i % 89)});
            for (int k = 0; k < 6; k++) {
                d.items.add(new long[] {i, k});
            }
            d.items.add(new byte[24 + (i % 64)]);
            CACHE.put(i, d);
            i++;
            if (i % 100_000 == 0) {
                System.gc();
            }
        }
        System.out.println("ready " + i);
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }
}
