#!/usr/bin/env bash
# Run every check and test kefu has: formatting, lints and the layer rule, the release build (benches and tools use it), the Rust tests of the
# whole workspace, the Autobahn TestSuite against the echo app, then the browser tests of the web
# pages in headless Chromium. Exits non-zero on any failure.
#
#   bash tools/test.sh
#
# Tests run in the release profile: `cargo build --release` is needed anyway, so the dependency
# graph is compiled once (only the dev-dependencies are extra) instead of a second time at
# opt-level 0, and the property tests and the server under test run faster. On 2 cores that is
# the faster total.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
step() { printf '\n==> %s\n' "$*"; }
# CI must build exactly the committed Cargo.lock; a developer may have just added a dependency.
locked=()
if [ "${CI:-}" = true ]; then locked=(--locked); fi

# Cheap checks first: a formatting difference, a lint or an import going up a layer fails the
# run before any test (docs/architecture.md).
step "cargo fmt --all --check"
cargo fmt --all --check

step "tools/layers.py"
python3 tools/layers.py

step "cargo clippy --workspace --all-targets -- -D warnings"
# Release profile: shares the dependency builds with everything below.
cargo clippy --release "${locked[@]}" --workspace --all-targets -- -D warnings

step "cargo build --release"
cargo build --release "${locked[@]}"

step "cargo test --release --workspace"
# --no-fail-fast: one failing test binary must not hide the others' results from CI.
cargo test --release "${locked[@]}" --workspace --no-fail-fast

step "kefu tests again on PostgreSQL (KEFU_TEST_STORE=postgres: each starts its own server)"
KEFU_TEST_STORE=postgres cargo test --release "${locked[@]}" \
  --test kefu_routing --test kefu_history --test kefu_durability --test kefu_presence \
  --test kefu_errors --test kefu_search --test kefu_reports --test kefu_webhooks

step "tools/autobahn/run.sh"
bash tools/autobahn/run.sh

step "tools/autobahn/run-tls.sh (the same cases over wss://)"
bash tools/autobahn/run-tls.sh

step "tests/e2e/run.sh (headless Chromium)"
bash tests/e2e/run.sh

printf '\ntools/test.sh: all passed in %ss\n' "$(($(date +%s) - started))"
