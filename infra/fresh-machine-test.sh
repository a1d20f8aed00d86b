#!/usr/bin/env bash
# Proves that the README's two commands set up a fresh machine: builds a bare root file system of
# a release with debootstrap (minbase, deb822 apt sources only, no /etc/apt/sources.list, no
# images, no pip cache), imports it as a podman image, and runs in it, as root, a clean clone of
# the committed tree: `make demo` (without serving: DEMO_ARGS=--no-serve) and `make test`.
#
#   infra/fresh-machine-test.sh DISTRO [--no-tests] [--reuse-image] [--keep] [PYTEST_ARGS...]
#
#   DISTRO         debian12 | debian13 | ubuntu2404
#   --no-tests     stop after the demo
#   --reuse-image  use the bare image of an earlier run if there is one (it is never modified)
#   --keep         keep the work folder (clone, virtualenv, nested image storage, the container's
#                  /tmp); a failed run always keeps it
#   PYTEST_ARGS    passed to pytest by `make test` (default: the whole suite)
#
# MEDARENA_FRESH_FIND_LINKS=FOLDER gives pip in the container a folder of wheels besides its index
# (read-only, as PIP_FIND_LINKS), for a network whose index lacks what a machine elsewhere would
# download: the grand-challenge example tests need the CPU build of torch, which PyPI does not
# carry (its Linux torch is the CUDA build, whose nvidia-* packages some mirrors do not serve) and
# which comes from download.pytorch.org where that is reachable.
#
# Prints each phase with its duration and ends with `fresh machine DISTRO: ok` or the phase that
# failed. Needs root, podman, runc and debootstrap on the host, and the apt mirrors and PyPI.
#
# How podman runs inside the container (measured on a Debian 12 host, podman 4.3, cgroups v1):
# - `--privileged`: the nested podman mounts overlays, creates cgroups and network namespaces.
# - the nested image storage (/var/lib/containers) is a folder of the host's file system mounted
#   into the container: the container's own root is an overlay, and overlay on overlay fails;
#   on a bind-mounted ext4/xfs folder the nested podman's native overlay driver works, so neither
#   vfs (slow: a full copy per layer) nor fuse-overlayfs with /dev/fuse is needed. /tmp is such a
#   folder too, for the tests' own private podman storages.
# - cgroups: podman on cgroups v1 shares the host's cgroup namespace, and with --privileged
#   /sys/fs/cgroup is writable, so runc (the runtime infra/containers.conf selects) can set the
#   memory, CPU and pids limits of nested containers.
# - `--pids-limit -1` and `--shm-size 2g`: the test suite runs Ray (many processes, an object store
#   in /dev/shm) and fork-bomb tests limited by their own nested --pids-limit.
# - the default bridge network reaches the mirrors and PyPI; nested containers run with
#   --network=none and need nothing from it.
# - the Ubuntu root file system is bootstrapped with the host's debootstrap when it knows no
#   `noble` (Debian 12's does not) through its generic Ubuntu script `gutsy`, and with
#   --no-check-gpg when the host lacks Ubuntu's keyring; apt inside then verifies everything with
#   the ubuntu-keyring that the bootstrap installed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
source "$REPO/infra/steps.sh"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$REPO/infra/containers.conf}"

usage() { echo "usage: $0 debian12|debian13|ubuntu2404 [--no-tests] [--reuse-image] [--keep] [PYTEST_ARGS...]" >&2; exit 2; }
distro=${1:-}
shift || true
tests=true reuse=false keep=false pytest_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --no-tests) tests=false ;;
    --reuse-image) reuse=true ;;
    --keep) keep=true ;;
    *) pytest_args+=("$1") ;;
  esac
  shift
done

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
case $distro in
  debian12|debian13)
    suite=$([ "$distro" = debian12 ] && echo bookworm || echo trixie)
    # the host's own Debian mirror when it has one, else Debian's
    mirror=$(APT_SOURCES_DIR=${APT_SOURCES_DIR:-/etc/apt} "$REPO/infra/apt-mirror.sh" 2>/dev/null | grep -m1 /debian \
      || echo http://deb.debian.org/debian)
    mirror=${MEDARENA_FRESH_MIRROR:-$mirror}
    security=${MEDARENA_FRESH_SECURITY_MIRROR:-${mirror%/debian}/debian-security}
    components="main" sources_file=debian.sources ;;
  ubuntu2404)
    suite=noble
    mirror=${MEDARENA_FRESH_MIRROR:-http://archive.ubuntu.com/ubuntu}
    security=${MEDARENA_FRESH_SECURITY_MIRROR:-http://security.ubuntu.com/ubuntu}
    keyring=/usr/share/keyrings/ubuntu-archive-keyring.gpg
    components="main restricted universe multiverse" sources_file=ubuntu.sources ;;
  *) usage ;;
esac
[ "$(id -u)" -eq 0 ] || fail "checking the host" "run as root (debootstrap and --privileged podman need it)"
for tool in podman debootstrap git; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || fail "checking the host" "$tool is not installed"
done

image=localhost/medarena-fresh-$distro:latest
work=$(mktemp -d "${MEDARENA_FRESH_DIR:-/var/tmp}/medarena-fresh-$distro.XXXXXX")
cleanup() {
  local rc=$?
  # a failed run keeps its folder: the container's /tmp (Ray's logs among it) is $work/tmp
  if $keep || [ $rc -ne 0 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
start=$SECONDS
phase() { echo "=== $distro: $1 (at $((SECONDS - start)) s)"; }

if ! $reuse || ! podman image exists "$image"; then
  phase "debootstrap of $suite from $mirror"
  rootfs=$work/rootfs
  args=(--variant=minbase --components="${components// /,}")
  script=()
  [ -f "$keyring" ] || args+=(--no-check-gpg)
  if [ ! -e "/usr/share/debootstrap/scripts/$suite" ]; then
    [ "$distro" = ubuntu2404 ] || fail "debootstrap of $suite" "this debootstrap does not know $suite"
    script=(/usr/share/debootstrap/scripts/gutsy)
  fi
  step "debootstrap of $suite" debootstrap "${args[@]}" "$suite" "$rootfs" "$mirror" "${script[@]}"
  # a fresh machine's apt sources: deb822 only, as Debian 12+ and Ubuntu 24.04 install them
  rm -f "$rootfs/etc/apt/sources.list"
  updates="$suite-updates"
  cat >"$rootfs/etc/apt/sources.list.d/$sources_file" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $updates
Components: $components
Signed-By: $keyring

Types: deb
URIs: $security
Suites: $suite-security
Components: $components
Signed-By: $keyring
EOF
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  phase "importing $image"
  step "importing $image" bash -c "tar -C '$rootfs' -c . | podman import - '$image'"
  rm -rf "$rootfs"
fi

phase "cloning the committed tree"
step "cloning $REPO" git clone -q "$REPO" "$work/medarena"
step "checking out HEAD" git -C "$work/medarena" checkout -q "$(git -C "$REPO" rev-parse HEAD)"
mkdir -p "$work/containers" "$work/tmp" "$work/ca"
chmod 1777 "$work/tmp"
# The certificate authorities this host trusts beyond its distribution's (a TLS-inspecting proxy's
# on the way to PyPI, say): a fresh machine on the same network trusts them too. They go to
# /usr/local/share/ca-certificates, which update-ca-certificates reads when ca-certificates is
# installed there.
python3 - "${MEDARENA_FRESH_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" "$work/ca" <<'PY'
import glob, re, sys
pem = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
def blocks(text): return [re.sub(r"\s", "", b) for b in pem.findall(text)]
shipped = {b for f in glob.glob("/usr/share/ca-certificates/**/*.crt", recursive=True) for b in blocks(open(f).read())}
try:
    bundle = open(sys.argv[1]).read()
except OSError:
    bundle = ""
for n, block in enumerate(pem.findall(bundle)):
    if re.sub(r"\s", "", block) not in shipped:
        open(f"{sys.argv[2]}/host-{n}.crt", "w").write(block + "\n")
PY

# what a person on the fresh machine types, with the time of each part
inner=$(cat <<'EOF'
set -euo pipefail
start=$SECONDS
phase() { echo "=== $DISTRO: $1 (at $((SECONDS - start)) s in the container)"; }
test ! -e /etc/apt/sources.list
test ! -e /root/.cache/pip
cd /root/medarena
phase "apt-get install make (the README's prerequisite)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends make >/dev/null
phase "make system"; make system
phase "make venv"; make venv
phase "make images"; make images
phase "make demo DEMO_ARGS=--no-serve"; make demo DEMO_ARGS=--no-serve
if [ "$TESTS" = true ]; then
  phase "make test-venv"; make test-venv
  phase "make test PYTEST_ARGS='$PYTEST_ARGS'"; make test PYTEST_ARGS="$PYTEST_ARGS"
fi
phase "done"
EOF
)
phase "running the set-up and the demo$($tests && echo ' and the tests') in $image"
wheels=()
if [ -n "${MEDARENA_FRESH_FIND_LINKS:-}" ]; then  # see the header: a wheel folder of this network's
  wheels=(-v "$MEDARENA_FRESH_FIND_LINKS:/opt/find-links:ro" -e PIP_FIND_LINKS=/opt/find-links)
fi
podman run --rm --privileged --pids-limit -1 --shm-size 2g \
  -v "$work/medarena:/root/medarena" -v "$work/containers:/var/lib/containers" -v "$work/tmp:/tmp" \
  -v "$work/ca:/usr/local/share/ca-certificates:ro" "${wheels[@]}" \
  -e DISTRO="$distro" -e TESTS="$tests" -e PYTEST_ARGS="${pytest_args[*]}" \
  "$image" bash -c "$inner" \
  || fail "running in $image" "the set-up, the demo or the tests failed (output above)"
phase "fresh machine $distro: ok"
