#!/usr/bin/env bash
# Runs every test of banditflow: unit, property, integration and CLI tests (default profile).
# The integration tests start their own tansu broker and redis-server on free loopback ports
# (and stop them); this script installs both when they are missing, and only then, so a second
# run on the same machine starts straight away.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo is not installed (this project needs a Rust toolchain)" >&2
  exit 1
fi

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages: a C toolchain for the vendored librdkafka, and redis-server.
missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}" >&2
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# tansu: the Kafka-protocol broker of the integration tests (a release build: ~13 minutes on
# 2 cores, once per machine).
if ! command -v tansu >/dev/null 2>&1; then
  echo "test.sh: installing tansu 0.6.0 (cargo install, takes a while)" >&2
  cargo install tansu --version 0.6.0 --features dynostore,libsql --locked
fi

cargo test --locked 2>&1
