#!/usr/bin/env bash
# Builds the Nucleus image without a container engine or registry: the same layout as the Dockerfile's
# runtime stage, assembled from this machine's Node binary and the shared libraries it and
# onnxruntime-node link (found with ldd), tini, and the production app from stage-app.sh.
#
#   deploy/container/build-rootfs.sh <out> [--oci <archive.tar>]
#
# Writes <out>/rootfs (the file tree) and <out>/config.json (user, entrypoint, environment, volumes and
# health check, in OCI image-config terms). With --oci, buildah commits the tree as an OCI archive that
# `podman load` or `skopeo copy oci-archive:…` takes. Needs: node, ldd, tini (Debian package `tini`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:?usage: build-rootfs.sh <out> [--oci <archive.tar>]}
oci=''
if [ "${2:-}" = --oci ]; then oci=${3:?--oci needs a file name}; fi

tini=$(command -v tini-static || true)
[ -n "$tini" ] || { echo "build-rootfs: tini-static not found (apt-get install tini)" >&2; exit 2; }
command -v ldd >/dev/null || { echo "build-rootfs: ldd not found" >&2; exit 2; }
node_bin=$(readlink -f "$(command -v node)")

# The numeric user Kubernetes' runAsNonRoot can check without reading /etc/passwd.
uid=10001
rm -rf "$out/rootfs"
mkdir -p "$out"
root=$(cd "$out" && pwd)/rootfs
mkdir -p "$root"/{usr/local/bin,usr/bin,etc,opt,proc,dev,sys,tmp,var/cache/nucleus,var/cache/huggingface}
chmod 1777 "$root/tmp"

"$here/stage-app.sh" "$repo" "$root/opt/nucleus"
install -m 0755 "$node_bin" "$root/usr/local/bin/node"
install -m 0755 "$tini" "$root/usr/bin/tini"

# Shared libraries by ldd, at the paths the loader looks them up, plus the name-service modules glibc
# opens at run time (user and host lookups) that ldd cannot see.
binding=$(find "$root/opt/nucleus/node_modules/onnxruntime-node/bin" -name onnxruntime_binding.node | head -1)
libs=$( {
  ldd "$node_bin" "$binding" "$(dirname "$binding")"/libonnxruntime.so.* | awk '/=> \//{print $3} /^[ \t]+\//{print $1}'
  ls /lib/*-linux-gnu/libnss_files.so.2 /lib/*-linux-gnu/libnss_dns.so.2 /lib/*-linux-gnu/libresolv.so.2
} | grep -v "^$root" | sort -u)
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# Debian's /lib, /lib64 and /bin are links into /usr; keep the paths the loader names valid.
for link in lib lib64; do
  if [ -L "/$link" ] && [ -d "$root/$link" ] && [ ! -L "$root/$link" ]; then
    mkdir -p "$root/usr/$link" && cp -a "$root/$link/." "$root/usr/$link/" && rm -rf "${root:?}/$link"
    ln -s "usr/$link" "$root/$link"
  fi
done

cat > "$root/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/usr/sbin/nologin
nucleus:x:$uid:$uid:Nucleus:/var/cache/nucleus:/usr/sbin/nologin
PASSWD
cat > "$root/etc/group" <<GROUP
root:x:0:
nucleus:x:$uid:
GROUP
echo 'hosts: files dns' > "$root/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$root/etc/hosts"
chown -R "$uid:$uid" "$root/var/cache/nucleus" "$root/var/cache/huggingface"

# The same settings as the Dockerfile's runtime stage (a test compares the two).
node - "$root/.." "$uid" <<'NODE'
const [dir, uid] = process.argv.slice(2);
const config = {
  User: `${uid}:${uid}`,
  WorkingDir: '/opt/nucleus',
  Entrypoint: ['/usr/bin/tini', '--', '/usr/local/bin/node', '/opt/nucleus/core/bin/nucleus.js'],
  Cmd: ['serve'],
  Env: [
    'PATH=/usr/local/bin:/usr/bin',
    'NODE_ENV=production',
    'HOME=/var/cache/nucleus',
    'NUCLEUS_SERVER_HOST=0.0.0.0',
    'NUCLEUS_PLUGINS_WATCH=false',
    'NUCLEUS_CACHE_DIR=/var/cache/nucleus',
    'HF_HOME=/var/cache/huggingface',
    'TMPDIR=/tmp',
  ],
  ExposedPorts: { '8080/tcp': {} },
  Volumes: { '/var/cache/nucleus': {}, '/var/cache/huggingface': {}, '/tmp': {} },
  StopSignal: 'SIGTERM',
  Healthcheck: {
    Test: [
      'CMD',
      '/usr/local/bin/node',
      '-e',
      "fetch('http://127.0.0.1:'+(process.env.NUCLEUS_SERVER_PORT||8080)+'/livez').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))",
    ],
  },
};
require('fs').writeFileSync(`${dir}/config.json`, JSON.stringify(config, null, 2) + '\n');
NODE

echo "build-rootfs: $(du -sh "$root" | cut -f1) in $root"

if [ -n "$oci" ]; then
  command -v buildah >/dev/null || { echo "build-rootfs: --oci needs buildah (apt-get install buildah)" >&2; exit 2; }
  cfg() { node -p "const c=require('$root/../config.json'); $1"; }
  ctr=$(buildah from scratch)
  trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
  buildah copy "$ctr" "$root" / >/dev/null
  buildah config --user "$(cfg c.User)" --workingdir "$(cfg c.WorkingDir)" \
    --entrypoint "$(cfg 'JSON.stringify(c.Entrypoint)')" --cmd "$(cfg 'c.Cmd.join(" ")')" \
    $(cfg 'c.Env.map(e=>"--env "+e).join(" ")') --port 8080/tcp \
    --volume /var/cache/nucleus --volume /var/cache/huggingface --volume /tmp \
    --stop-signal SIGTERM "$ctr"
  buildah commit --format oci "$ctr" "oci-archive:$oci" >/dev/null
  echo "build-rootfs: OCI archive $oci ($(du -h "$oci" | cut -f1))"
fi
