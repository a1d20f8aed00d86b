#!/usr/bin/env bash
# Runs the test suite; a run that collects no tests fails (pytest's exit code 5).
set -uo pipefail
PY=${1:-.venv/bin/python}
# the suite reads the output of commands that print UTF-8 (Rich tables, names from other scripts);
# a machine whose locale is ASCII must not turn that into decode errors
export LC_ALL=C.UTF-8 PYTHONUTF8=1
mkdir -p test-artifacts
"$PY" -m pytest "${@:2}"
rc=$?
if [ $rc -eq 5 ]; then echo "medarena: pytest collected no tests" >&2; exit 1; fi
exit $rc
