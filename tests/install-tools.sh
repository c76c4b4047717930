#!/usr/bin/env bash
# Installs every tool profkit's tests drive, on a fresh Debian machine (run as root):
#   Debian packages   perf, the JDK, lldb/gdb, eu-stack, wrk, Chromium + ChromeDriver, gcc, Go, Maven, Prometheus,
#                     PostgreSQL and sysbench (examples/database, tests/integration/test_bench_database.py)
#   Maven artifacts   async-profiler (its agent library is in the jar) and its JFR converter;
#                     the Spring Boot example's dependencies (examples/spring_json, built here)
#   built tools       .ci/tools builds them into ~/.cache/profkit/bin/NAME-VERSION (cached)
# Each step is skipped when what it installs is already there. The README's test line runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have chromium || need+=(chromium)
have chromedriver || need+=(chromium-driver)
have addr2line || need+=(binutils)
have perf || need+=(linux-perf)
have cc || need+=(gcc)
have wrk || need+=(wrk)
have sysbench || need+=(sysbench)
{ have initdb || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || need+=(postgresql)
have lldb || need+=(lldb)
have gdb || need+=(gdb)
have eu-stack || need+=(elfutils)
have mvn || need+=(maven)
have prometheus || need+=(prometheus)   # profkit red / bench --prometheus tests (tests/integration/servers.py)
{ have go || test -x /usr/local/go/bin/go; } || need+=(golang-go)
{ have javac && have jfr && have jcmd; } || need+=(openjdk-17-jdk-headless)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-tools: needs root to apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "install-tools: apt-get install ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Maven Central: the async-profiler jar (profkit extracts the agent from it) and async-profiler's
# own JFR converter (tests/integration/test_references.py checks profkit's parsers against it).
m2="${HOME}/.m2/repository/tools/profiler"
for artifact in async-profiler:4.1 jfr-converter:4.1; do
  name="${artifact%%:*}" version="${artifact##*:}"
  if [ ! -f "${m2}/${name}/${version}/${name}-${version}.jar" ]; then
    echo "install-tools: mvn dependency:get tools.profiler:${artifact}"
    mvn -q dependency:get -Dartifact="tools.profiler:${artifact}"
  fi
done

# The Spring Boot example (tests/integration/test_heap_spring.py): its Maven dependencies come
# from Maven Central into ~/.m2 (kept between runs); the jar is rebuilt only when a source changed.
echo "install-tools: examples/spring_json/build.sh"
nice -n 10 bash examples/spring_json/build.sh

bash .ci/tools
