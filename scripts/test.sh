#!/usr/bin/env bash
# Runs every test of banditflow: unit, property, integration and CLI tests (default profile).
# Installs only what is missing, so a second run on the same machine starts straight away.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo is not installed (this project needs a Rust toolchain)" >&2
  exit 1
fi
# librdkafka and friends build from source later on; a C compiler is the only system need now.
if ! command -v cc >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq build-essential
fi

cargo test --locked 2>&1
