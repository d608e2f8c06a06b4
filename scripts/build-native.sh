#!/usr/bin/env bash
# Compiles strata-exec (native/strata-exec.c), the process that runs a build's RUN steps inside
# one long-lived runc container (src/runtime/session.ts). Static, so it needs nothing from the
# container it runs in. Without a C compiler strata still works: each RUN step starts runc.
set -euo pipefail
cd "$(dirname "$0")/.."
compiler="${CC:-cc}"
if ! command -v "$compiler" >/dev/null; then
  echo "build-native: no C compiler ($compiler): RUN steps will start one runc each" >&2
  exit 0
fi
mkdir -p dist/native
"$compiler" -O2 -Wall -Wextra -static -o dist/native/strata-exec.tmp native/strata-exec.c
mv dist/native/strata-exec.tmp dist/native/strata-exec
