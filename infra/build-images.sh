#!/usr/bin/env bash
# Builds, without any registry, the base image (Debian with Python and NumPy, by debootstrap) and
# one image per example algorithm in submissions/. Idempotent: an image is rebuilt only when its
# build context changed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/infra/containers.conf}"
BASE=localhost/medarena-base:bookworm

# one build at a time (make images, a test session and a CI step may start together)
exec 9>"${TMPDIR:-/tmp}/medarena-build-images.lock"
flock 9

if ! podman image exists "$BASE"; then
  mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
           | grep -v security | head -1 | awk '{print $2}')
  [ -n "$mirror" ] || { echo "medarena: no Debian mirror found in /etc/apt sources" >&2; exit 1; }
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  echo "medarena: building $BASE from $mirror"
  debootstrap --variant=minbase --include=python3-minimal,python3-numpy bookworm "$rootfs" "$mirror" >/dev/null
  tar -C "$rootfs" -c . | podman import --change 'CMD ["python3"]' - "$BASE" >/dev/null
fi

for ctx in submissions/*/; do
  name=$(basename "$ctx")
  [ -f "$ctx/Containerfile" ] || continue
  image="localhost/medarena-example-$name:latest"
  digest=$(find "$ctx" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  have=$(podman image inspect --format '{{ index .Labels "medarena.context" }}' "$image" 2>/dev/null || true)
  [ "$have" = "$digest" ] && continue
  echo "medarena: building $image"
  old=$(podman image inspect --format '{{ .Id }}' "$image" 2>/dev/null || true)
  podman build -q --label "medarena.context=$digest" -t "$image" -f "$ctx/Containerfile" "$ctx" >/dev/null
  # drop the build this one replaces, unless something still uses it
  [ -n "$old" ] && podman rmi "$old" >/dev/null 2>&1 || true
done
