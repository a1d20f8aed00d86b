#!/usr/bin/env bash
# Builds, without any registry, the base image (the host's own Debian or Ubuntu release with
# Python and NumPy, by debootstrap from the host's apt mirror) and one image per example algorithm
# in submissions/. Idempotent: an image is rebuilt only when its build context changed.
# Every failing step prints the command that failed and the tail of its output.
#
#   infra/build-images.sh [--base-only]
#
# MEDARENA_BASE_IMAGE names the base image; APT_SOURCES_DIR (see apt-mirror.sh) where the mirror
# is read from.
set -euo pipefail
cd "$(dirname "$0")/.."
base_only=false
case "${1:-}" in
  "") ;;
  --base-only) base_only=true ;;
  *) echo "usage: infra/build-images.sh [--base-only]" >&2; exit 2 ;;
esac
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/infra/containers.conf}"
BASE=${MEDARENA_BASE_IMAGE:-localhost/medarena-base:latest}
source infra/steps.sh

# one build at a time (make images, a test session and a CI step may start together)
exec 9>"${TMPDIR:-/tmp}/medarena-build-images.lock"
flock 9

if ! podman image exists "$BASE"; then
  mirror=$(infra/apt-mirror.sh) || fail "finding the apt mirror" "infra/apt-mirror.sh"
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$suite" ] || fail "finding the release codename" "VERSION_CODENAME in /etc/os-release is empty"
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  components=main
  case "$mirror" in *ubuntu*) components=main,universe ;; esac
  echo "medarena: building $BASE ($suite from $mirror)"
  retry_reset() { rm -rf "$rootfs" && mkdir "$rootfs"; }
  step_retry 3 "debootstrap of $suite" debootstrap --variant=minbase --components="$components" \
    --include=python3-minimal,python3-numpy "$suite" "$rootfs" "$mirror"
  step "importing the base image" bash -c \
    "tar -C '$rootfs' -c . | podman import --change 'CMD [\"python3\"]' - '$BASE'"
fi
$base_only && exit 0

# contexts built FROM the base image first, then those built FROM another example
contexts=()
for pass in base example; do
  for ctx in submissions/*/; do
    [ -f "$ctx/Containerfile" ] || continue
    from=$(awk 'toupper($1) == "FROM" {print $2; exit}' "$ctx/Containerfile")
    case "$pass:$from" in
      base:localhost/medarena-example-*) ;;
      base:*|example:localhost/medarena-example-*) contexts+=("$ctx") ;;
    esac
  done
done
for ctx in "${contexts[@]}"; do
  name=$(basename "$ctx")
  image="localhost/medarena-example-$name:latest"
  # the context's files, and the example it is built FROM where it is built on another example
  from=$(awk 'toupper($1) == "FROM" {print $2; exit}' "$ctx/Containerfile")
  from_id=""
  case "$from" in localhost/medarena-example-*) from_id=$(podman image inspect --format '{{ .Id }}' "$from") ;; esac
  digest=$({ find "$ctx" -type f -print0 | sort -z | xargs -0 sha256sum; [ -z "$from_id" ] || echo "$from_id"; } \
    | sha256sum | cut -c1-16)
  have=$(podman image inspect --format '{{ index .Labels "medarena.context" }}' "$image" 2>/dev/null || true)
  [ "$have" = "$digest" ] && continue
  echo "medarena: building $image"
  old=$(podman image inspect --format '{{ .Id }}' "$image" 2>/dev/null || true)
  # no network: the builds need none, and netavark's (on Debian 13) needs nftables besides
  step "building $image" podman build -q --network=none --label "medarena.context=$digest" -t "$image" \
    -f "$ctx/Containerfile" "$ctx"
  # drop the build this one replaces, unless something still uses it
  [ -n "$old" ] && podman rmi "$old" >/dev/null 2>&1 || true
done
