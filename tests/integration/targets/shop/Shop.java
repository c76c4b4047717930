// SPDX-License-Identifier: Apache-2.0
package shop;

import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;

/**
 * A small JDK-only HTTP service of profkit's tests (issue 17), with one known culprit.
 *
 * <pre>java -cp DIR shop.Shop PORT</pre>
 *
 * Every request to {@code /page} is handled by a lambda that calls {@link Renderer#renderPage}:
 * the method whose garbage dominates the service (Strings, their byte[] and the StringBuilder's
 * arrays); {@link Catalog#lookup} allocates a little beside it. Prints {@code ready} once it
 * listens on 127.0.0.1:PORT.
 */
public final class Shop {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 64);
        server.setExecutor(Executors.newFixedThreadPool(4));
        server.createContext("/page", exchange -> {
            int[] ids = Catalog.lookup(exchange.getRequestURI().getQuery());
            byte[] body = Renderer.renderPage(ids).getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(200, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();
        System.out.println("ready");
        System.out.flush();
    }
}

final class Catalog {
    static int[] lookup(String query) {
        int[] ids = new int[64];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = i * 7 + (query == null ? 0 : query.length());
        }
        return ids;
    }
}

final class Renderer {
    static String renderPage(int[] ids) {
        StringBuilder page = new StringBuilder();
        for (int round = 0; round < 40; round++) {
            for (int id : ids) {
                String row = "<tr><td>" + id + "</td><td>item-" + Integer.toHexString(id * 31 + round)
                        + "</td><td>" + String.valueOf(id * 1.5) + "</td></tr>\n";
                page.append(row.toUpperCase());
            }
        }
        return page.toString();
    }
}
