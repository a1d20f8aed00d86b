#!/usr/bin/env bash
# Installs the system packages medarena needs, with apt when run as root, on Debian 12, Debian 13
# and Ubuntu 24.04: podman with runc and catatonit (the init process of `podman run --init`),
# debootstrap for the base image, PostgreSQL for its tests, Python's venv, and Chromium for the
# dashboard's browser tests. Idempotent: does nothing when all are present.
#
# Ubuntu has no Chromium that runs in a container or without snapd: its `chromium` package only
# installs the snap, and Playwright's own browser download needs a host that may be unreachable.
# There, Chromium is left out and the browser tests skip, saying so; nothing else needs it.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/steps.sh
distro=$(. /etc/os-release && echo "${ID:-}")
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || need+=(runc)
# netavark, podman's network stack on Debian 13 and Ubuntu 24.04, runs nft for its rules
command -v nft >/dev/null || [ -x /usr/sbin/nft ] || need+=(nftables)
command -v catatonit >/dev/null || [ -x /usr/libexec/podman/catatonit ] || need+=(catatonit)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
if [ "$distro" != ubuntu ]; then
  command -v chromium >/dev/null || need+=(chromium chromium-driver)
fi
# Playwright, which drives Chromium in the dashboard's tests, runs its own Node.js, linked to libatomic
/sbin/ldconfig -p 2>/dev/null | grep -q 'libatomic\.so\.1 ' || need+=(libatomic1)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "medarena: missing system packages: ${need[*]} (run as root, or install them with apt)" >&2
  exit 1
fi
echo "medarena: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
step "apt-get update" apt-get update -qq
step "apt-get install ${need[*]}" apt-get install -y -qq --no-install-recommends \
  "${need[@]}" uidmap slirp4netns fuse-overlayfs ca-certificates
