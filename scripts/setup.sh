#!/usr/bin/env bash
# Installs everything strata and its tests need on Debian 12 (as root): Debian packages for
# the real components and interop peers, npm dependencies, and the compiled CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  runc              # RUN steps and containers
  gcc libc6-dev     # compiles strata-exec (native/), which runs a build's RUN steps in one runc container
  libdeflate-dev    # strata-deflate.node (native/deflate.c): gzip with libdeflate, ~1.2-1.6x zlib's speed
  busybox-static    # test base image without Docker Hub
  skopeo umoci      # OCI interop peers
  podman            # interop: pulls and runs what strata pushes
  docker-registry   # CNCF distribution 2.8: registry interop and benchmarks
  docker.io         # dockerd 20.10 for docker-archive interop and build fidelity
  buildah           # reference builder for the build benchmarks
  zstd pigz         # reference compressors for benchmarks
  uidmap
  debootstrap       # opt-in debian:bookworm test image
  attr              # getfattr/setfattr: xattrs and overlay opaque markers in layers
  tmux              # drives the interactive image explorer and `run -it` in their tests
  passt             # pasta: user-space network stack for `strata run` with published ports
  tini              # `strata run --init`
)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build

# First end-to-end demo (STRATA_SETUP_NO_DEMO=1 skips it).
if [ "${STRATA_SETUP_NO_DEMO:-0}" != 1 ]; then scripts/demo.sh; fi
