# Sourced by the set-up scripts: `step DESCRIPTION COMMAND...` runs a command with its output in a
# log and, when it fails, prints which step failed, the command and the tail of its output, then
# exits with the command's status. `step_retry N DESCRIPTION COMMAND...` tries a command that
# downloads up to N times before failing as `step` does (mirrors drop connections now and then),
# calling the function `retry_reset` before each new try when the caller defines one.
# `fail DESCRIPTION DETAIL` stops with one message.
step() {
  local what=$1; shift
  local log rc
  log=$(mktemp)
  if "$@" >"$log" 2>&1; then rm -f "$log"; return 0; else rc=$?; fi
  {
    echo "medarena: set-up step failed: $what (exit $rc)"
    echo "medarena: command: $*"
    tail -n 20 "$log" | sed 's/^/  | /'
  } >&2
  rm -f "$log"
  exit "$rc"
}

fail() {
  echo "medarena: set-up step failed: $1: $2" >&2
  exit 1
}

step_retry() {
  local tries=$1 attempt; shift
  for ((attempt = 1; attempt < tries; attempt++)); do
    if "${@:2}" >/dev/null 2>&1; then return 0; fi
    echo "medarena: $1 failed (attempt $attempt of $tries); trying again" >&2
    sleep $((attempt * 5))
    if declare -F retry_reset >/dev/null; then retry_reset; fi  # the caller's clean-up between tries
  done
  step "$@"
}
