#!/usr/bin/env bash
# Lays out Nucleus as it runs in production: the built workspaces (package.json + dist) and their
# production dependencies installed with `npm ci --omit=dev`, install scripts denied as in development.
# Used by the Dockerfile's build stage, build-rootfs.sh and pack-tarball.sh, so all three ship the same tree.
#
#   deploy/container/stage-app.sh <built checkout> <destination>
#
# The checkout must be built (`npm ci && npx tsc -b`). npm takes the packages from its cache when it can
# (`--prefer-offline`), so a machine that ran `npm ci` once needs no network here.
set -euo pipefail

src=$(cd "${1:?usage: stage-app.sh <built checkout> <destination>}" && pwd)
dest=${2:?usage: stage-app.sh <built checkout> <destination>}
[ -f "$src/core/dist/cli/main.js" ] || { echo "stage-app: $src is not built (run npx tsc -b there)" >&2; exit 2; }

rm -rf "$dest"
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)

# The root manifest without its scripts: `prepare` runs tsc, which a production install neither has nor needs.
node -e '
  const fs = require("fs");
  const p = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  delete p.scripts;
  fs.writeFileSync(process.argv[2], JSON.stringify(p, null, 2) + "\n");
' "$src/package.json" "$dest/package.json"
cp "$src/package-lock.json" "$dest/"

# Every workspace: its manifest and build output (npm ci links each one), plus the files it reads at run time.
for ws in sdk core plugins/*; do
  [ -f "$src/$ws/package.json" ] || continue
  mkdir -p "$dest/$ws"
  cp "$src/$ws/package.json" "$dest/$ws/"
  [ -d "$src/$ws/dist" ] && cp -R "$src/$ws/dist" "$dest/$ws/"
done
cp -R "$src/sdk/testing" "$dest/sdk/" && rm -rf "$dest/sdk/testing/src" "$dest/sdk/testing/tsconfig"*
cp -R "$src/core/bin" "$dest/core/"
cp -R "$src/plugins/builtin-models/models" "$dest/plugins/builtin-models/"
[ -f "$src/LICENSE" ] && cp "$src/LICENSE" "$dest/"

(cd "$dest" && npm ci --omit=dev --prefer-offline --no-audit --no-fund --strict-allow-scripts --loglevel=error)

# onnxruntime-node carries its native library for every platform; keep this one's (about 260 MB less).
ort="$dest/node_modules/onnxruntime-node/bin/napi-v6"
keep="$(node -p 'process.platform')/$(node -p 'process.arch')"
for dir in "$ort"/*/*; do
  [ "${dir#"$ort"/}" = "$keep" ] || rm -rf "$dir"
done
find "$ort" -mindepth 1 -type d -empty -delete
[ -f "$ort/$keep/onnxruntime_binding.node" ] || { echo "stage-app: no onnxruntime-node binding for $keep" >&2; exit 1; }
# Type declarations and source maps are for development only.
find "$dest/node_modules" "$dest/core" "$dest/sdk" "$dest/plugins" \( -name '*.d.ts' -o -name '*.d.ts.map' -o -name '*.js.map' \) -type f -delete
