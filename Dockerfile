# profkit with every collector: py-spy and memray (PyPI), perf, lldb and the JDK tools (Debian),
# async-profiler (Maven Central).
#
# Build:   docker build -t profkit .
# Profile a process of the host or of another container (it needs the target's PID namespace
# and permission to ptrace it; perf also needs perf events):
#   docker run --rm -it --pid=host --cap-add SYS_PTRACE --cap-add PERFMON \
#       -v "$PWD/runs:/work/runs" profkit attach --pid 1234 --duration 30
# Without --pid=host the target's PID is not visible; without SYS_PTRACE py-spy, memray and jcmd
# cannot attach (profkit doctor says which is missing). A JVM target must see the same /tmp as
# jcmd (its attach socket lives there): add -v /tmp:/tmp when the JVM runs in another container.

# async-profiler's jar from Maven Central carries the native library; Maven fetches it, and it is
# laid out as an ASYNC_PROFILER_HOME (lib/libasyncProfiler.so; profkit attaches it with jcmd).
FROM maven:3.9-eclipse-temurin-17 AS async-profiler
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /opt/ap
RUN mvn -q dependency:copy -Dartifact=tools.profiler:async-profiler:4.1 -DoutputDirectory=/opt/ap \
    && jar xf async-profiler-4.1.jar \
    && mkdir -p /opt/async-profiler/lib \
    && arch="$(uname -m | sed -e 's/x86_64/x64/' -e 's/aarch64/arm64/')" \
    && cp "linux-${arch}/libasyncProfiler.so" /opt/async-profiler/lib/

FROM python:3.11-slim-bookworm AS profkit
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        linux-perf=6.1.* binutils=2.40-* lldb=1:14.0-* openjdk-17-jdk-headless=17.0.* \
    && rm -rf /var/lib/apt/lists/*
COPY --from=async-profiler /opt/async-profiler /opt/async-profiler
ENV ASYNC_PROFILER_HOME=/opt/async-profiler \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY profkit ./profkit
COPY collectors ./collectors
COPY flamegraph ./flamegraph
# The project itself, with the dependency ranges its pyproject.toml declares.
# hadolint ignore=DL3013
RUN pip install ".[live]"
WORKDIR /work
ENTRYPOINT ["profkit"]
CMD ["--help"]

# --target agent: `profkit agent` as each node's continuous profiler (examples/kubernetes/):
#   docker build --target agent -t profkit:agent .
#   docker run -d --pid=host --cap-drop ALL --cap-add SYS_PTRACE --cap-add PERFMON --cap-add KILL \
#       --cap-add CHOWN --cap-add DAC_OVERRIDE --security-opt seccomp=unconfined --read-only \
#       --tmpfs /tmp -v profkit-spool:/var/lib/profkit -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
#       profkit:agent --cgroup /system.slice/docker.service --export parca=http://parca:7070
# It runs with a read-only root file system: nothing is written outside /tmp and the spool.
FROM profkit AS agent
ENV PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/tmp/.cache
WORKDIR /var/lib/profkit
ENTRYPOINT ["profkit", "agent"]
CMD ["--help"]

# The default target (docker build without --target): the whole CLI, as above.
FROM profkit AS cli
