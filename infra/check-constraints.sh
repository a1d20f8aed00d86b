#!/usr/bin/env bash
# Checks that the versions pinned in infra/constraints.txt resolve for other Pythons: for each
# interpreter given, a throw-away virtualenv asks pip (dry run: nothing is installed) for what
# `make test-venv` installs there, from PyPI alone (the local pip configuration is ignored), and
# lists what that would take beyond the pins.
#
#   infra/check-constraints.sh PYTHON...        e.g. python3.11 python3.12 python3.13
#
# Exits non-zero when a pinned version has no distribution for an interpreter (pip's message
# says which). PIP_CERT, when set, is passed on (a TLS-inspecting proxy's bundle).
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/steps.sh
[ $# -gt 0 ] || { echo "usage: $0 PYTHON..." >&2; exit 2; }
index=${MEDARENA_CHECK_INDEX:-https://pypi.org/simple}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip_args=(--isolated --disable-pip-version-check --index-url "$index" ${PIP_CERT:+--cert "$PIP_CERT"})
torch=$(grep -m1 '^torch==' infra/constraints.txt)
status=0 n=0
for python in "$@"; do
  n=$((n + 1))
  venv=$work/venv-$n
  step "creating a virtualenv with $python" "$python" -m venv "$venv"
  step "upgrading pip for $python" "$venv/bin/python" -m pip install -q "${pip_args[@]}" --upgrade pip
  version=$("$venv/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  if ! "$venv/bin/python" -m pip install -q "${pip_args[@]}" --dry-run --ignore-installed \
      -c infra/constraints.txt "$torch" '.[test]' --report "$venv/report.json"; then
    echo "Python $version: the pinned versions do not resolve (pip's message above)"
    status=1
    continue
  fi
  "$venv/bin/python" - "$version" "$venv/report.json" infra/constraints.txt <<'PY'
import json, re, sys
version, report, constraints = sys.argv[1:]
canonical = lambda name: re.sub(r"[-_.]+", "-", name).lower()
pinned = {canonical(line.split("==")[0]) for line in open(constraints) if "==" in line}
chosen = json.load(open(report))["install"]
extra = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in chosen
               if canonical(i["metadata"]["name"]) not in pinned | {"medarena"})
sdists = sorted(i["metadata"]["name"] for i in chosen
                if not i["download_info"]["url"].endswith(".whl") and canonical(i["metadata"]["name"]) != "medarena")
print(f"Python {version}: {len(chosen)} packages resolve at the pinned versions; built from source: "
      f"{', '.join(sdists) or 'none'}; not pinned here: {', '.join(extra) or 'none'}")
PY
done
exit $status
