#!/usr/bin/env bash
# Installs the system packages medarena needs (podman with runc, debootstrap for the base image,
# Chromium for the dashboard test), with apt when run as root. Idempotent: does nothing when all
# are present.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/steps.sh
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || need+=(runc)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v chromium >/dev/null || need+=(chromium chromium-driver)
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
