package example.spring;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.springframework.beans.factory.annotation.Value;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestBody;
import org.springframework.web.bind.annotation.RestController;

import java.util.Iterator;
import java.util.Map;

/** POST /documents: a JSON document in, a summary of it out. GET /health: the JVM's PID and mode. */
@RestController
public class DocumentController {
    private final ObjectMapper mapper;
    private final boolean leak;

    public DocumentController(ObjectMapper mapper, @Value("${example.leak:false}") boolean leak) {
        this.mapper = mapper;
        this.leak = leak;
    }

    @PostMapping(path = "/documents", consumes = "application/json", produces = "application/json")
    public ObjectNode ingest(@RequestBody JsonNode document) {
        ObjectNode out = mapper.createObjectNode();
        out.put("fields", countFields(document));
        out.put("numbers", sumNumbers(document));
        if (leak) {
            // the bug: every parsed document stays reachable from a static cache
            out.put("id", DocumentCache.remember(document));
        }
        return out;
    }

    @GetMapping(path = "/health", produces = "application/json")
    public ObjectNode health() {
        ObjectNode out = mapper.createObjectNode();
        out.put("pid", ProcessHandle.current().pid());
        out.put("leak", leak);
        out.put("cached", DocumentCache.size());
        return out;
    }

    static int countFields(JsonNode node) {
        int n = 0;
        if (node.isObject()) {
            Iterator<Map.Entry<String, JsonNode>> it = node.fields();
            while (it.hasNext()) {
                n += 1 + countFields(it.next().getValue());
            }
        } else if (node.isArray()) {
            for (JsonNode child : node) {
                n += countFields(child);
            }
        }
        return n;
    }

    static double sumNumbers(JsonNode node) {
        if (node.isNumber()) {
            return node.asDouble();
        }
        double s = 0;
        for (JsonNode child : node) {
            s += sumNumbers(child);
        }
        return s;
    }
}
