package example.spring;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.web.context.WebServerInitializedEvent;
import org.springframework.context.event.EventListener;

/** profkit's Spring Boot example: a JSON service that, with --leak, caches every document. */
@SpringBootApplication
public class Application {
    public static void main(String[] args) {
        SpringApplication.run(Application.class, args);
    }

    @EventListener
    public void listening(WebServerInitializedEvent event) {
        // the line scripts and tests wait for
        System.out.println("spring_json listening on http://127.0.0.1:" + event.getWebServer().getPort() + "/");
        System.out.flush();
    }
}
