#!/usr/bin/env bash
# Runs every test of banditflow: clippy over the workspace (warnings are errors), then unit,
# property, integration and CLI tests of every crate (default profile).
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
if ! cargo clippy --version >/dev/null 2>&1; then
  echo "test.sh: installing clippy (rustup component add clippy)" >&2
  rustup component add clippy
fi
ensure_services

cargo clippy --locked --workspace --all-targets -- -D warnings 2>&1
cargo test --locked --workspace 2>&1
