#!/usr/bin/env bash
# Compiles strata's native parts with the system's C compiler; without one (or without what a part
# needs) strata still works, only slower:
# - strata-exec (native/strata-exec.c), the process that runs a build's RUN steps inside one
#   long-lived runc container (src/runtime/session.ts). Static, so it needs nothing from the
#   container it runs in. Without it each RUN step starts runc.
# - strata-deflate.node (native/deflate.c), a Node-API addon deflating parallel gzip's blocks with
#   libdeflate (Debian's libdeflate-dev, linked statically); needs Node's headers (node_api.h, in
#   the Node install's include/node). Without it gzip uses zlib (src/archive/deflate-engine.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
compiler="${CC:-cc}"
if ! command -v "$compiler" >/dev/null; then
  echo "build-native: no C compiler ($compiler): RUN steps will start one runc each, gzip uses zlib" >&2
  exit 0
fi
mkdir -p dist/native
"$compiler" -O2 -Wall -Wextra -static -o dist/native/strata-exec.tmp native/strata-exec.c
mv dist/native/strata-exec.tmp dist/native/strata-exec

node_include=$(node -p "require('node:path').resolve(process.execPath, '../../include/node')")
if [ ! -f "$node_include/node_api.h" ]; then
  echo "build-native: no Node headers in $node_include: gzip uses zlib" >&2
elif ! echo '#include <libdeflate.h>' | "$compiler" -E - >/dev/null 2>&1; then
  echo "build-native: no libdeflate.h (Debian package libdeflate-dev): gzip uses zlib" >&2
else
  "$compiler" -O2 -Wall -Wextra -shared -fPIC -I"$node_include" \
    -o dist/native/strata-deflate.node.tmp native/deflate.c -l:libdeflate.a
  mv dist/native/strata-deflate.node.tmp dist/native/strata-deflate.node
fi
