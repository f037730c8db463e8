#!/usr/bin/env bash
# Install the Debian packages the ns-3 scenarios need (used by `make`, CI and the Dockerfile).
# Does nothing when they are all present; needs root (or sudo) otherwise.
set -euo pipefail
PACKAGES=(g++ make cmake pkg-config libzmq3-dev cppzmq-dev libprotobuf-dev protobuf-compiler
          nlohmann-json3-dev)
missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "error: missing Debian packages ${missing[*]} and not root; install them with:" >&2
    echo "  apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
