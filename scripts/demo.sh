#!/usr/bin/env bash
# The main job: install what is missing, build, run the
# self-driven demos (echo on the port and on the pool, the seed case under
# the verifier, tacio-err, file-copy), then starts tacio-httpd.
# TACIO_DEMO_NO_HTTPD=1 stops before the server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
echo "== echo-server demo (examples/echo-server.c)"
build/examples/echo-server --demo --threads 2 --conns 16 --rounds 5000
echo "== the same, with each worker thread exiting after 500 entries and leaving its I/O pending"
echo "   (thread-agnostic I/O: the receives it started complete anyway)"
build/examples/echo-server --demo --threads 2 --conns 16 --rounds 5000 --churn 500
echo "== the same server on pool-bound callbacks (examples/echo-pool.c)"
build/examples/echo-pool --demo --threads 2 --conns 16 --rounds 5000
echo "== the seed case (examples/seed-repro): a backend that also completes a receive it"
echo "   answered BUFFER_OVERFLOW synchronously, caught by the verifier (TACIO_VERIFY=1)"
set +e
TACIO_BACKEND=io_uring TACIO_VERIFY=1 TACIO_FAULTS=seed=1,lie=0.05 TACIO_FAULT_LOG="$PWD/build/demo-faults.jsonl" \
  TACIO_DIAG_JOURNAL=0 build/examples/seed-repro --requests 300 2>&1 | grep -v 'libc_start\|_start+'
set -e
echo "   (the same report is a JSON fault record: build/tools/tacio-faults/tacio-faults show last -f build/demo-faults.jsonl)"
echo "== tacio-err: what those numbers mean"
build/tools/tacio-err/tacio-err 0x80000005 0xC0000120 0x80131506 995
if [ -x build/examples/file-copy ]; then
  echo "== file-copy demo (examples/file-copy.c)"
  tmp=$(mktemp -d)
  head -c $((32 << 20)) /dev/urandom > "$tmp/src"
  build/examples/file-copy --depth 8 "$tmp/src" "$tmp/dst"
  cmp "$tmp/src" "$tmp/dst" && echo "file-copy: destination is identical to the source"
  rm -rf "$tmp"
fi
# Last: the HTTPS front end, in the foreground (Ctrl-C or SIGTERM stops it
# cleanly). On first run it creates a development CA, server and client
# certificates and prints the curl commands that exercise it.
if [ -x build/tools/tacio-httpd/tacio-httpd ] && [ -z "${TACIO_DEMO_NO_HTTPD:-}" ]; then
  echo "== tacio-httpd on https://127.0.0.1:8443/ (Ctrl-C to stop)"
  exec build/tools/tacio-httpd/tacio-httpd
fi
