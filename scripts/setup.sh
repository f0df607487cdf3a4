#!/usr/bin/env bash
# Installs what building and testing ckpt needs from Debian 12's packages, down to the
# compiler and CMake. Idempotent; silent when everything is already there.
#   scripts/setup.sh          build dependencies (enough for the demo)
#   scripts/setup.sh --test   also what the test suite needs (Python torch, Ceph, clang, ...)
set -euo pipefail

build_pkgs=(build-essential cmake ninja-build pkg-config git ca-certificates
  libcli11-dev libspdlog-dev nlohmann-json3-dev doctest-dev libxxhash-dev
  libcurl4-openssl-dev libssl-dev libtinyxml2-dev libtorch-dev)
test_pkgs=(python3 python3-torch groff-base man-db util-linux procps time hyperfine
  ceph-mon ceph-osd radosgw libgoogle-perftools4 clang libclang-rt-14-dev chromium zsh fish)

pkgs=("${build_pkgs[@]}")
[ "${1:-}" = "--test" ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
