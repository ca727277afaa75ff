#!/usr/bin/env bash
# Builds fuse-hostd and runs every test: Bazel's unit tests (plain, and
# again under AddressSanitizer and UBSan), the Python
# SDK's unit tests (tests/client/python, pytest), the Node.js SDK's
# (client/node/tests, node --test), then the integration suite
# (tests/integration, pytest as root against the real binaries through
# /dev/fuse). Prints each stage as it goes and ends with one line
# "N passed, N failed" (sums of them all). Exits non-zero if anything failed
# or if no test ran.
#
#   scripts/test.sh                 everything
#   SKIP_SETUP=1 scripts/test.sh    do not run scripts/setup.sh first
#   PYTEST_ARGS="-k memory" scripts/test.sh   extra pytest arguments
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
REPO=$(pwd)
LOGDIR=$(mktemp -d /tmp/fuse-hostd-test.XXXXXX)
PYTHON=/usr/bin/python3   # Debian's: has pytest/grpc; another python3 may come first on PATH

unit_passed=0
unit_failed=0
san_passed=0
san_failed=0
sdk_passed=0
sdk_failed=0
node_passed=0
node_failed=0
it_passed=0
it_failed=0
extra_failed=0   # stages that failed as a whole (setup, build)

stage() {
  echo
  echo "==================== $* ===================="
}

# Prints "PASSED FAILED" of a pytest junit XML file.
junit_counts() {
  "$PYTHON" - "$1" <<'EOF'
import sys
import xml.etree.ElementTree as ET
# Count tests, not junit entries: a test that fails and then also errors in
# teardown appears twice; it is one failed test.
root = ET.parse(sys.argv[1]).getroot()
outcome = {}
for case in root.iter("testcase"):
    key = (case.get("classname"), case.get("name"))
    if case.find("failure") is not None or case.find("error") is not None:
        state = "failed"
    elif case.find("skipped") is not None:
        state = "skipped"
    else:
        state = "passed"
    prev = outcome.get(key)
    if prev != "failed":
        outcome[key] = state if prev is None or state == "failed" else prev
states = list(outcome.values())
print(states.count("passed"), states.count("failed"))
EOF
}

finish() {
  local passed=$((unit_passed + san_passed + sdk_passed + node_passed + it_passed))
  local failed=$((unit_failed + san_failed + sdk_failed + node_failed + it_failed + extra_failed))
  stage "summary"
  echo "unit tests (bazel test):  ${unit_passed} passed, ${unit_failed} failed"
  echo "unit tests (sanitized):   ${san_passed} passed, ${san_failed} failed"
  echo "Python SDK (pytest):      ${sdk_passed} passed, ${sdk_failed} failed"
  echo "Node.js SDK (node --test): ${node_passed} passed, ${node_failed} failed"
  echo "integration (pytest):     ${it_passed} passed, ${it_failed} failed"
  if (( extra_failed > 0 )); then
    echo "failed stages:            ${extra_failed}"
  fi
  echo "logs: ${LOGDIR}"
  echo "${passed} passed, ${failed} failed"
  if (( failed > 0 || passed == 0 )); then
    exit 1
  fi
  exit 0
}

# --- setup ----------------------------------------------------------------------
if [[ "${SKIP_SETUP:-0}" != 1 ]]; then
  stage "setup (scripts/setup.sh)"
  if ! "$REPO/scripts/setup.sh"; then
    echo "test.sh: setup failed" >&2
    extra_failed=$((extra_failed + 1))
    finish
  fi
fi

BAZEL_FLAGS=(--color=no --curses=no)

# --- build ----------------------------------------------------------------------
stage "build (bazel build //...)"
bazel build "${BAZEL_FLAGS[@]}" //... 2>&1 | tee "$LOGDIR/build.log"
build_rc=${PIPESTATUS[0]}
if (( build_rc != 0 )); then
  echo "test.sh: bazel build failed (exit ${build_rc})" >&2
  extra_failed=$((extra_failed + 1))
  finish
fi

# --- unit tests -----------------------------------------------------------------
# Runs `bazel test` with the given arguments, output in $LOGDIR/$1.log, and
# prints "PASSED FAILED" counts of test targets.
bazel_tests() {
  local log="$LOGDIR/$1.log"
  shift
  # --nocache_test_results: every run runs every test, so that running the
  # command again is a real second try (a test that fails now and then shows).
  bazel test "${BAZEL_FLAGS[@]}" --nocache_test_results --test_summary=short "$@" \
    2>&1 | tee "$log" >&2
  local rc=${PIPESTATUS[0]}
  # Bazel's summary: one line per test target, e.g.
  #   //tests/daemon/fuse:node_table_test            PASSED in 0.1s
  #   //tests/daemon/fuse:node_table_test   (cached) PASSED in 0.1s
  #   //tests/daemon/mounting:x_test                 FAILED in 2.0s
  #   //tests/...:y_test       NO STATUS / TIMEOUT / FAILED TO BUILD
  local passed failed
  passed=$(grep -cE '^//[^ ]+[[:space:]]+(\(cached\)[[:space:]]+)?(PASSED|FLAKY)' \
    "$log" || true)
  failed=$(grep -cE '^//[^ ]+[[:space:]]+(\(cached\)[[:space:]]+)?(FAILED|TIMEOUT|NO STATUS|INCOMPLETE|FAILED TO BUILD)' \
    "$log" || true)
  case "$rc" in
    0) ;;
    4) echo "test.sh: bazel found no unit test targets" >&2 ;;   # not a failure
    *)
      if (( failed == 0 )); then
        # Failed without naming a target (e.g. an analysis error).
        echo "test.sh: bazel test failed (exit ${rc})" >&2
        failed=1
      fi
      ;;
  esac
  echo "$passed $failed"
}

stage "unit tests (bazel test //...)"
read -r unit_passed unit_failed < <(bazel_tests unit //...)
echo "unit tests: ${unit_passed} passed, ${unit_failed} failed"

stage "unit tests under AddressSanitizer and UBSan (bazel test --config=sanitize)"
read -r san_passed san_failed < <(bazel_tests sanitize --config=sanitize //tests/...)
echo "unit tests (sanitized): ${san_passed} passed, ${san_failed} failed"

# --- Python SDK unit tests ------------------------------------------------------
stage "Python SDK unit tests (pytest tests/client/python)"
SDK_JUNIT="$LOGDIR/python-sdk.xml"
"$PYTHON" -m pytest "$REPO/tests/client/python" -q -rfE -p no:cacheprovider \
  --junitxml="$SDK_JUNIT" 2>&1 | tee "$LOGDIR/python-sdk.log"
sdk_rc=${PIPESTATUS[0]}
if [[ -s "$SDK_JUNIT" ]]; then
  read -r sdk_passed sdk_failed < <(junit_counts "$SDK_JUNIT")
fi
if [[ "$sdk_rc" != 0 ]] && (( sdk_failed == 0 )); then
  # Failed without a failing test (no test collected, an import error).
  echo "test.sh: pytest of the Python SDK failed (exit ${sdk_rc})" >&2
  sdk_failed=1
fi
echo "Python SDK unit tests: ${sdk_passed} passed, ${sdk_failed} failed"

# --- Node.js SDK unit tests -------------------------------------------------------
stage "Node.js SDK unit tests (node --test client/node/tests)"
NODE_LOG="$LOGDIR/node-sdk.log"
(cd "$REPO/client/node" && node --test --test-reporter=tap tests/) 2>&1 | tee "$NODE_LOG"
node_rc=${PIPESTATUS[0]}
# The TAP summary: "# pass N" and "# fail N".
node_passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$NODE_LOG" | tail -1)
node_failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$NODE_LOG" | tail -1)
node_passed=${node_passed:-0}
node_failed=${node_failed:-0}
if [[ "$node_rc" != 0 ]] && (( node_failed == 0 )); then
  echo "test.sh: node --test failed (exit ${node_rc})" >&2
  node_failed=1
fi
echo "Node.js SDK unit tests: ${node_passed} passed, ${node_failed} failed"

# --- integration tests -------------------------------------------------------------
stage "integration tests (pytest tests/integration, as root)"
JUNIT="$LOGDIR/integration.xml"
TIMEOUT_ARGS=()
# A safety net on top of the suite's own per-command timeouts.
if "$PYTHON" -c 'import pytest_timeout' 2>/dev/null; then
  TIMEOUT_ARGS=(--timeout=600)
fi
# shellcheck disable=SC2086
timeout --kill-after=30 3000 "$PYTHON" -m pytest "$REPO/tests/integration" \
  -q -rfE -p no:cacheprovider --junitxml="$JUNIT" "${TIMEOUT_ARGS[@]}" \
  ${PYTEST_ARGS:-} 2>&1 \
  | tee "$LOGDIR/integration.log"
it_rc=${PIPESTATUS[0]}
if [[ -s "$JUNIT" ]]; then
  read -r it_passed it_failed < <(junit_counts "$JUNIT")
fi
case "$it_rc" in
  0|1) ;;
  5) echo "test.sh: pytest collected no integration tests" >&2 ;;
  *)
    echo "test.sh: pytest ended abnormally (exit ${it_rc})" >&2
    if (( it_failed == 0 )); then it_failed=1; fi
    ;;
esac
echo "integration tests: ${it_passed} passed, ${it_failed} failed"

finish
