#!/usr/bin/env bash
# Installs, from Debian's packages, whatever of PACKAGES is missing.
# Usage: scripts/deps.sh [extra-package ...]
set -euo pipefail
# Why each one is here (the README says the same):
#   gcc, make, cmake, pkg-config  build the library (CMake 3.25 is Debian 12's)
#   liburing-dev                  the io_uring backend's ring set-up and SQE helpers
#   libc6-dev                     glibc headers (strerrorname_np, futex)
#   mingw-w64-common              winerror.h / ntstatus.h: tacio-err's Windows tables (build time)
#   libunwind-dev                 the verifier's fast stack captures (unw_backtrace)
#   libdw-dev                     stack symbolisation (module!function+0xNN (file:line)): diag, verifier
#   libsystemd-dev                fault records to the systemd journal
#   gdb                           tests read first-chance dumps with gdb -batch
#   libssl-dev, openssl           TLS and certificates for the HTTPS front end
#   curl                          tests drive tacio-httpd with a real client
#   clang, libclang-rt-14-dev     the libFuzzer build of the HTTP parser fuzz target
PACKAGES=(gcc make cmake pkg-config liburing-dev libc6-dev mingw-w64-common libunwind-dev libdw-dev
          libsystemd-dev gdb libssl-dev openssl curl clang libclang-rt-14-dev "$@")
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: need root to install ${missing[*]} (apt-get)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
