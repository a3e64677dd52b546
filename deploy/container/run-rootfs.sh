#!/usr/bin/env bash
# Runs the root filesystem from build-rootfs.sh the way a container engine would, with util-linux alone:
# own PID and mount namespaces (tini is PID 1), the tree mounted read-only, tmpfs on /tmp, and the model
# cache and HF_HOME on the host folders given (the only places it can write). Shares the host network.
#
#   deploy/container/run-rootfs.sh <out> <cache dir> [nucleus arguments…]    (root only)
#
# The environment comes from <out>/config.json; variables already set (NUCLEUS_*) win.
set -euo pipefail
out=$(cd "${1:?usage: run-rootfs.sh <out> <cache dir> [args…]}" && pwd)
cache=$(mkdir -p "${2:?cache dir}" && cd "$2" && pwd)
shift 2
[ "$(id -u)" = 0 ] || { echo "run-rootfs: needs root (namespaces, mounts, chroot)" >&2; exit 2; }
mkdir -p "$cache/models" "$cache/huggingface"
chown 10001:10001 "$cache/models" "$cache/huggingface"

# A clean environment, as a container gets: the image's, then the caller's NUCLEUS_* and HF_* over it.
mapfile -t envs < <(node -e '
  const env = new Map(require(process.argv[1]).Env.map((e) => [e.slice(0, e.indexOf("=")), e]));
  for (const [k, v] of Object.entries(process.env)) if (/^(NUCLEUS|HF)_/.test(k)) env.set(k, `${k}=${v}`);
  for (const e of env.values()) console.log(e);
' "$out/config.json")
user=$(node -p 'require(process.argv[1]).User' "$out/config.json")
mapfile -t entry < <(node -e 'const c=require(process.argv[1]); for (const a of [...c.Entrypoint, ...(process.argv.length > 2 ? process.argv.slice(2) : c.Cmd)]) console.log(a)' "$out/config.json" "$@")

# The tree is mounted on <out>/mnt inside a private mount namespace: nothing stays mounted after the exit.
mkdir -p "$out/mnt"
exec unshare --pid --fork --kill-child --mount --propagation private -- /bin/sh -ec '
  root=$1 mnt=$2 cache=$3; shift 3
  mount --bind "$root" "$mnt"
  mount -o remount,bind,ro "$mnt"
  mount -t proc proc "$mnt/proc"
  mount -t tmpfs -o mode=1777,size=256m tmpfs "$mnt/tmp"
  mount -t tmpfs -o mode=755,size=1m tmpfs "$mnt/dev"
  for d in null zero random urandom; do touch "$mnt/dev/$d"; mount --bind "/dev/$d" "$mnt/dev/$d"; done
  mount --bind "$cache/models" "$mnt/var/cache/nucleus"
  mount --bind "$cache/huggingface" "$mnt/var/cache/huggingface"
  exec env -i "$@"
' run-rootfs "$out/rootfs" "$out/mnt" "$cache" "${envs[@]}" "$(command -v chroot)" --userspec="$user" "$out/mnt" "${entry[@]}"
