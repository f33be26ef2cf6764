# Sourced by test.sh and bench-live.sh: installs the real services the tests and benchmarks
# start themselves (tansu, redis-server) and promtool (Debian's prometheus) when they are
# missing, and only then.

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_services() {
  # Debian packages: a C toolchain for the vendored librdkafka, redis-server, prometheus,
  # chromium.
  local missing=()
  command -v cc >/dev/null 2>&1 || missing+=(build-essential)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  # Headless Chromium opens the HTML report in tests/report.rs.
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  # tests/growthbook.rs puts GrowthBook's Python SDK into a throwaway venv.
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "services: installing ${missing[*]}" >&2
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  # tansu: a Kafka-protocol broker (a release build: ~13 minutes on 2 cores, once per machine).
  if ! command -v tansu >/dev/null 2>&1; then
    echo "services: installing tansu 0.6.0 (cargo install, takes a while)" >&2
    cargo install tansu --version 0.6.0 --features dynostore,libsql --locked
  fi
}
