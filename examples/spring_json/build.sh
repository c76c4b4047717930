#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build the Spring Boot example into target/spring-json.jar (Maven; dependencies from Maven
# Central, cached in ~/.m2). Skipped when the jar is newer than every source file.
#   build.sh            (env: MVN, default mvn; JAVA_HOME as for Maven)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jar="$here/target/spring-json.jar"
mvn="${MVN:-mvn}"
if [ -f "$jar" ] && [ -z "$(find "$here/pom.xml" "$here/src" -newer "$jar" -print -quit)" ]; then
    echo "built $jar (up to date)"
    exit 0
fi
if ! command -v "$mvn" >/dev/null 2>&1; then
    echo "build.sh: mvn not found (apt-get install maven; a JDK 17 or newer)" >&2
    exit 1
fi
"$mvn" -B -q -Dstyle.color=never -f "$here/pom.xml" package -DskipTests
echo "built $jar"
