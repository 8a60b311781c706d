#!/usr/bin/env bash
# The main job: install what is missing, build, run the echo server's
# self-driven demo (2 workers, 16 connections over loopback).
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
if [ -x build/examples/file-copy ]; then
  echo "== file-copy demo (examples/file-copy.c)"
  tmp=$(mktemp -d)
  head -c $((32 << 20)) /dev/urandom > "$tmp/src"
  build/examples/file-copy --depth 8 "$tmp/src" "$tmp/dst"
  cmp "$tmp/src" "$tmp/dst" && echo "file-copy: destination is identical to the source"
  rm -rf "$tmp"
fi
