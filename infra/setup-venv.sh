#!/usr/bin/env bash
# Creates the virtualenv and installs medarena into it (editable).
#
#   infra/setup-venv.sh VENV          the runtime: what `medarena demo` and the platform need
#   infra/setup-venv.sh VENV test     the runtime plus the test extra (pytest, Playwright, the peer
#                                     libraries the evaluators are checked against)
#
# Every install is held to infra/constraints.txt, the versions the whole suite passes with: without
# it pip backtracks through old releases of the peer libraries and can end on a set that does not
# work together (numpy 1.x beside a pyarrow built for numpy 2); a pin with a Python marker there
# holds an older release where the newest needs a newer Python (pymdown-extensions 13.x needs
# 3.11.5; Debian 12 has 3.11.2). The test extra's monai needs torch:
# torch==2.13.0 is installed first, so that pip does not pick a newer release for it. pip takes a local CPU wheel where its configuration points to one, and
# PyPI's Linux build otherwise (with its CUDA libraries: several GB, but it runs on the CPU).
# Every failing step prints the command and the tail of its output.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/steps.sh
venv=${1:?usage: infra/setup-venv.sh VENV [test]}
extra=${2:-}
py=$venv/bin/python
constraints=infra/constraints.txt

# the steps below are long and quiet: say what is going on
echo "medarena: setting up the virtualenv $venv${extra:+ with the $extra extra}"
if [ ! -x "$py" ]; then
  command -v python3 >/dev/null || fail "creating the virtualenv $venv" "python3 is not installed (run infra/install-system.sh)"
  step "creating the virtualenv $venv" python3 -m venv "$venv"
fi
step "upgrading pip in $venv" "$py" -m pip install -q --upgrade pip
if [ "$extra" = test ]; then
  step "installing torch 2.13.0 (for monai, a test extra)" "$py" -m pip install -q -c "$constraints" torch==2.13.0
  step "installing medarena with its test extra" "$py" -m pip install -q -c "$constraints" -e '.[test]'
else
  step "installing medarena" "$py" -m pip install -q -c "$constraints" -e .
fi
