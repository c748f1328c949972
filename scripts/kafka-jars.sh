#!/usr/bin/env bash
# Fetches Apache Kafka's broker jars from Maven Central for the tests and benchmarks (a real single-node KRaft
# broker, started by lib/testing/kafka/broker.ts). No tarball mirror needed: Maven resolves the exact artifact
# and its runtime dependencies. Safe to run again: does nothing when the jars are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

KAFKA_VERSION="${VIGIL_KAFKA_VERSION:-4.1.1}"
dest="${VIGIL_KAFKA_LIBS:-.vigil/kafka/libs}"
stamp="$dest/.complete-$KAFKA_VERSION"
log() { printf 'kafka-jars: %s\n' "$*" >&2; }

if [ -f "$stamp" ]; then
  exit 0
fi
command -v mvn >/dev/null 2>&1 || {
  log "maven (mvn) is not installed"
  exit 1
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# A throw-away project whose only purpose is to name the dependency.
cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>vigil</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF

log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven Central"
partial="$dest.partial"
rm -rf "$partial"
mkdir -p "$partial"
mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$(cd "$partial" && pwd)" >&2
# Moved into place only when complete, so an interrupted download is never mistaken for a good one.
rm -rf "$dest"
mv "$partial" "$dest"
touch "$stamp"
log "$(find "$dest" -name '*.jar' | wc -l) jars, $(du -sh "$dest" | cut -f1) in $dest"
