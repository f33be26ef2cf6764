#!/usr/bin/env bash
# Runs every test of banditflow: unit, property, integration and CLI tests (default profile).
# The integration tests start their own tansu broker and redis-server on free loopback ports
# and stop them again; this script installs both when they are missing, and only then, so a
# second run on the same machine starts straight away.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/services.sh

if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo is not installed (this project needs a Rust toolchain)" >&2
  exit 1
fi
ensure_services

cargo test --locked 2>&1
