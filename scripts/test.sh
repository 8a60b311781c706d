#!/usr/bin/env bash
# The whole test suite: a plain build, an ASan+UBSan build and a TSan build,
# each with -Wall -Wextra -Werror, each running its CTest set.
#   scripts/test.sh            everything but the 'slow' label
#   scripts/test.sh --slow     also the slow runs (10^7-operation stress)
#   TACIO_TEST_ONLY=plain|asan|tsan scripts/test.sh   one build only
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)
exclude="slow"
[ "${1:-}" = "--slow" ] && exclude="__none__"
only=${TACIO_TEST_ONLY:-}
failed=()

run() { # name cmake-args ctest-args
  local name=$1 dir=build-$1; shift
  local cargs=$1; shift
  [ -n "$only" ] && [ "$only" != "$name" ] && return 0
  echo "== [$name] configure and build ($dir)"
  # shellcheck disable=SC2086
  cmake -S . -B "$dir" -DTACIO_WERROR=ON $cargs >/dev/null
  if ! cmake --build "$dir" -j"$jobs" >"$dir/build.log" 2>&1; then
    cat "$dir/build.log"
    failed+=("$name:build")
    return 0
  fi
  echo "== [$name] ctest $*"
  if ! ctest --test-dir "$dir" --output-on-failure -j"$jobs" "$@"; then
    failed+=("$name")
  fi
}

export TACIO_TEST_TIMEOUT_MULT=${TACIO_TEST_TIMEOUT_MULT:-1}
# Every contract case runs on both backends (tests/tacio-test.h loops over them).
export TACIO_TEST_BACKENDS=${TACIO_TEST_BACKENDS:-io_uring,epoll}
run plain "-DCMAKE_BUILD_TYPE=RelWithDebInfo" -LE "$exclude"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  TACIO_TEST_TIMEOUT_MULT=3 run asan "-DCMAKE_BUILD_TYPE=Debug -DTACIO_SANITIZE=address" -LE "$exclude"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 TACIO_TEST_TIMEOUT_MULT=4 \
  run tsan "-DCMAKE_BUILD_TYPE=Debug -DTACIO_SANITIZE=thread" -L "core|pool|http|verifier"

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all test builds passed"
