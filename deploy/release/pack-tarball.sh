#!/usr/bin/env bash
# A self-contained release: Nucleus with its production dependencies, this machine's Node binary and a
# `bin/nucleus` launcher, as nucleus-<version>-<os>-<arch>.tar.gz. Unpack anywhere on a glibc Linux of
# the same architecture and run bin/nucleus serve; nothing else to install.
#
#   deploy/release/pack-tarball.sh [<out dir>]      (default .cache/release)
#
# Why not a single executable (Node SEA): Node 20's SEA embeds one CommonJS script, while Nucleus is ES
# modules that start worker threads from their own files and load onnxruntime-node's native library.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mkdir -p "${1:-$repo/.cache/release}" && cd "${1:-$repo/.cache/release}" && pwd)
version=$(node -p "require('$repo/core/package.json').version")
name="nucleus-$version-$(node -p process.platform)-$(node -p process.arch)"
stage="$out/$name"

"$repo/deploy/container/stage-app.sh" "$repo" "$stage"
mkdir -p "$stage/bin"
install -m 0755 "$(readlink -f "$(command -v node)")" "$stage/bin/node"
cat > "$stage/bin/nucleus" <<'LAUNCHER'
#!/bin/sh
# Runs Nucleus with the Node binary shipped beside it.
here=$(dirname "$(readlink -f "$0")")
exec "$here/node" "$here/../core/bin/nucleus.js" "$@"
LAUNCHER
chmod 0755 "$stage/bin/nucleus"
# NUCLEUS_GZIP_LEVEL trades size for time (1 packs in a fraction of the default's time; tests use it).
tar -C "$out" -cf - "$name" | gzip -"${NUCLEUS_GZIP_LEVEL:-6}" > "$out/$name.tar.gz"
rm -rf "$stage"
echo "pack-tarball: $out/$name.tar.gz ($(du -h "$out/$name.tar.gz" | cut -f1))"
