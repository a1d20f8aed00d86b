#!/usr/bin/env bash
# Builds, without any registry, an offline stand-in for the `pytorch/pytorch` and `python:3.11`
# base images of grand-challenge's example containers: the local base image (Debian's Python
# 3.11) with a `python` command, pip, the CPU build of torch, and a wheel folder that pip installs
# from (SimpleITK, numpy, psutil), since there is no network while building either.
# Idempotent: built once as localhost/medarena-pytorch:latest.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/infra/containers.conf}"
BASE=${MEDARENA_BASE_IMAGE:-localhost/medarena-base:latest}
IMAGE=${MEDARENA_PYTORCH_IMAGE:-localhost/medarena-pytorch:latest}
PIP=${PIP:-pip}
TORCH_CPU_INDEX=${MEDARENA_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
source infra/steps.sh

exec 9>"${TMPDIR:-/tmp}/medarena-build-pytorch.lock"
flock 9
podman image exists "$IMAGE" && exit 0
podman image exists "$BASE" || bash infra/build-images.sh

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir "$context/wheels"
echo "medarena: building $IMAGE"
download() {
  "$PIP" download -q -d "$context/wheels" --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_12_x86_64 --platform manylinux2010_x86_64 \
    --platform linux_x86_64 "$@" numpy SimpleITK psutil pip
}
# The index pip is configured with first (a local wheel folder or mirror may hold the CPU build).
# PyPI's torch for Linux is the CUDA build, whose nvidia-* packages (gigabytes) an index may not
# serve: then the CPU build from PyTorch's own index.
if ! download torch==2.13.0 >"$context/first-try.log" 2>&1; then
  rm -rf "$context/wheels" && mkdir "$context/wheels"
  echo "medarena: the configured index has no installable torch 2.13.0 ($(grep -m1 ERROR "$context/first-try.log" || true)); trying $TORCH_CPU_INDEX"
  step "downloading the wheels (torch's CPU build from $TORCH_CPU_INDEX)" \
    download --extra-index-url "$TORCH_CPU_INDEX" torch==2.13.0+cpu
fi
cat > "$context/Containerfile" <<'CONTAINERFILE'
FROM localhost/medarena-base:latest
COPY wheels /opt/wheels
RUN ln -sf /usr/bin/python3 /usr/bin/python \
 && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \
 && python3 "$(ls /opt/wheels/pip-*.whl)/pip" install -q --no-index --find-links /opt/wheels pip \
 && python -m pip install -q --no-index --find-links /opt/wheels torch numpy \
 && printf '[global]\nno-index = true\nfind-links = /opt/wheels\ndisable-pip-version-check = true\n' > /etc/pip.conf
CMD ["python"]
CONTAINERFILE
sed -i "s|^FROM .*|FROM $BASE|" "$context/Containerfile"
step "building $IMAGE" podman build -q -t "$IMAGE" "$context"
