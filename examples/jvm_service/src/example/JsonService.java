// SPDX-License-Identifier: Apache-2.0
package example;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Example JVM service for profkit: parses large JSON order batches and returns per-category totals.
 *
 * <pre>
 *   POST /process          body: {"batch": .., "records": [{"id", "user", "category", "amount", "tags", "note"}, ..]}
 *   GET  /process?size=N   the same, on a batch of N records generated in the service (for wrk)
 *   GET  /stats            /process requests seen and, with --leak, results retained
 *   GET  /health
 * </pre>
 *
 * Usage: java -cp build example.JsonService [--port P] [--threads N] [--leak] [--leak-bytes B]
 */
public final class JsonService {
    static final int DEFAULT_SIZE = 1000;
    static final int MAX_SIZE = 50_000;
    static final int MAX_BODY = 32 << 20;
    static final String[] CATEGORIES = {"books", "garden", "kitchen", "music", "outdoor", "tools", "toys", "video"};

    static boolean leak;
    static int leakBytes = 1024;
    static final AtomicLong REQUESTS = new AtomicLong();
    // Generated batches are reused so that GET load measures parsing, not generation; a few sizes only.
    static final Map<Integer, String> GENERATED = new ConcurrentHashMap<>();

    private JsonService() {
    }

    public static void main(String[] args) throws IOException {
        int port = 8080;
        int threads = 4;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--port": port = intArg(args, ++i, "--port", 0, 65535); break;
                case "--threads": threads = intArg(args, ++i, "--threads", 1, 256); break;
                case "--leak": leak = true; break;
                case "--leak-bytes": leakBytes = intArg(args, ++i, "--leak-bytes", 0, 1 << 20); break;
                case "-h": case "--help":
                    System.out.println("usage: JsonService [--port P] [--threads N] [--leak] [--leak-bytes B]");
                    return;
                default: usage("unknown argument: " + args[i]);
            }
        }
        // Without TCP_NODELAY, headers and body go out as two writes and Nagle's algorithm meets the
        // client's delayed ACK: every response would wait ~40 ms, hiding the CPU work from load tests.
        System.setProperty("sun.net.httpserver.nodelay", "true");
        // Loopback only: this is a profiling target, not a service.
        HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 128);
        AtomicInteger n = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "worker-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        server.setExecutor(pool);
        server.createContext("/process", JsonService::handleProcess);
        server.createContext("/stats", ex -> {
            requireGet(ex);
            send(ex, 200, "{\"leak\":" + leak + ",\"requests\":" + REQUESTS.get() + ",\"cached\":" + ResultCache.size()
                    + ",\"retained_bytes\":" + ResultCache.retainedBytes() + "}");
        });
        server.createContext("/health", ex -> {
            requireGet(ex);
            send(ex, 200, "{\"status\":\"ok\",\"pid\":" + ProcessHandle.current().pid() + ",\"leak\":" + leak + "}");
        });
        server.start();
        System.out.println("JsonService listening on http://127.0.0.1:" + server.getAddress().getPort()
                + "/ (threads=" + threads + ", leak=" + (leak ? "on" : "off") + ")");
        System.out.flush();
    }

    static void handleProcess(HttpExchange ex) throws IOException {
        long request = REQUESTS.incrementAndGet();
        try {
            String payload;
            if ("POST".equals(ex.getRequestMethod())) {
                payload = readBody(ex);
            } else if ("GET".equals(ex.getRequestMethod())) {
                payload = generated(sizeParam(ex.getRequestURI().getRawQuery()));
            } else {
                throw new HttpError(405, "use GET or POST");
            }
            String result = aggregate(JsonParser.parse(payload), payload.length(), request);
            if (leak) {
                ResultCache.remember(request, result, payload, leakBytes);
            }
            send(ex, 200, result);
        } catch (HttpError e) {
            send(ex, e.status, errorJson(e.getMessage()));
        } catch (IllegalArgumentException e) {
            send(ex, 400, errorJson(e.getMessage()));
        } catch (RuntimeException e) {
            send(ex, 500, errorJson(e.toString()));
        }
    }

    /** Totals per category, distinct users and tags: the work a real batch endpoint would do. */
    static String aggregate(Object doc, int chars, long request) {
        if (!(doc instanceof Map)) {
            throw new IllegalArgumentException("expected a JSON object with a \"records\" array");
        }
        Object recs = ((Map<?, ?>) doc).get("records");
        if (!(recs instanceof List)) {
            throw new IllegalArgumentException("expected a JSON object with a \"records\" array");
        }
        Map<String, double[]> byCategory = new TreeMap<>();
        Set<String> users = new HashSet<>();
        long tags = 0;
        double total = 0;
        double max = 0;
        for (Object o : (List<?>) recs) {
            if (!(o instanceof Map)) {
                throw new IllegalArgumentException("each record must be an object");
            }
            Map<?, ?> r = (Map<?, ?>) o;
            double amount = r.get("amount") instanceof Number ? ((Number) r.get("amount")).doubleValue() : 0;
            String category = String.valueOf(r.get("category"));
            double[] cell = byCategory.computeIfAbsent(category, k -> new double[2]);
            cell[0] += 1;
            cell[1] += amount;
            users.add(String.valueOf(r.get("user")));
            if (r.get("tags") instanceof List) {
                tags += ((List<?>) r.get("tags")).size();
            }
            total += amount;
            max = Math.max(max, amount);
        }
        StringBuilder sb = new StringBuilder(256);
        sb.append("{\"request\":").append(request)
          .append(",\"records\":").append(((List<?>) recs).size())
          .append(",\"payload_chars\":").append(chars)
          .append(",\"total_amount\":").append(String.format(Locale.ROOT, "%.2f", total))
          .append(",\"max_amount\":").append(String.format(Locale.ROOT, "%.2f", max))
          .append(",\"distinct_users\":").append(users.size())
          .append(",\"tags\":").append(tags)
          .append(",\"categories\":{");
        boolean first = true;
        for (Map.Entry<String, double[]> e : byCategory.entrySet()) {
            if (!first) {
                sb.append(',');
            }
            first = false;
            quote(sb, e.getKey());
            sb.append(":{\"count\":").append((long) e.getValue()[0])
              .append(",\"amount\":").append(String.format(Locale.ROOT, "%.2f", e.getValue()[1])).append('}');
        }
        return sb.append("}}").toString();
    }

    /** A batch of n records, the same for the same n. */
    static String generate(int n) {
        Random rng = new Random(n);
        StringBuilder sb = new StringBuilder(n * 160);
        sb.append("{\"batch\":").append(n).append(",\"source\":\"generated\",\"records\":[");
        for (int i = 0; i < n; i++) {
            if (i > 0) {
                sb.append(",\n");
            }
            sb.append("{\"id\":").append(i)
              .append(",\"user\":\"user-").append(rng.nextInt(5000)).append('"')
              .append(",\"category\":\"").append(CATEGORIES[rng.nextInt(CATEGORIES.length)]).append('"')
              .append(",\"amount\":").append(rng.nextInt(100_000) / 100.0)
              .append(",\"paid\":").append(rng.nextBoolean())
              .append(",\"tags\":[\"t").append(rng.nextInt(50)).append("\",\"t").append(rng.nextInt(50)).append("\"]")
              .append(",\"note\":\"order ").append(i).append(" \\u2014 deliver to \\\"door ")
              .append(rng.nextInt(300)).append("\\\", leave with neighbour if out\"}");
        }
        return sb.append("]}").toString();
    }

    static String generated(int n) {
        String cached = GENERATED.get(n);
        if (cached != null) {
            return cached;
        }
        String made = generate(n);
        if (GENERATED.size() < 16) {
            GENERATED.put(n, made);
        }
        return made;
    }

    static int sizeParam(String query) {
        if (query == null) {
            return DEFAULT_SIZE;
        }
        for (String part : query.split("&")) {
            if (part.startsWith("size=")) {
                try {
                    int n = Integer.parseInt(part.substring(5));
                    if (n >= 1 && n <= MAX_SIZE) {
                        return n;
                    }
                } catch (NumberFormatException ignored) {
                    // falls through to the error below
                }
                throw new HttpError(400, "size must be an integer from 1 to " + MAX_SIZE);
            }
        }
        return DEFAULT_SIZE;
    }

    static String readBody(HttpExchange ex) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[64 << 10];
        try (InputStream in = ex.getRequestBody()) {
            for (int r; (r = in.read(buf)) > 0; ) {
                if (out.size() + r > MAX_BODY) {
                    throw new HttpError(413, "body larger than " + MAX_BODY + " bytes");
                }
                out.write(buf, 0, r);
            }
        }
        return new String(out.toByteArray(), StandardCharsets.UTF_8);
    }

    static void requireGet(HttpExchange ex) throws IOException {
        if (!"GET".equals(ex.getRequestMethod())) {
            send(ex, 405, errorJson("use GET"));
            throw new IOException("method not allowed");
        }
    }

    static void send(HttpExchange ex, int status, String json) throws IOException {
        byte[] body = json.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(status, body.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(body);
        }
    }

    static String errorJson(String message) {
        StringBuilder sb = new StringBuilder("{\"error\":");
        quote(sb, message);
        return sb.append('}').toString();
    }

    static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                sb.append('\\').append(c);
            } else if (c < 0x20) {
                sb.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        sb.append('"');
    }

    static int intArg(String[] args, int i, String name, int min, int max) {
        if (i >= args.length) {
            usage(name + " needs a value");
        }
        try {
            int v = Integer.parseInt(args[i]);
            if (v >= min && v <= max) {
                return v;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        usage(name + " must be an integer from " + min + " to " + max + ", not '" + args[i] + "'");
        return -1;
    }

    static void usage(String message) {
        System.err.println("JsonService: " + message);
        System.exit(2);
    }

    /** An error with its HTTP status. */
    static final class HttpError extends RuntimeException {
        final int status;

        private static final long serialVersionUID = 1L;

        HttpError(int status, String message) {
            super(message);
            this.status = status;
        }
    }
}
