# Sourced by the set-up scripts: `step DESCRIPTION COMMAND...` runs a command with its output in a
# log and, when it fails, prints which step failed, the command and the tail of its output, then
# exits with the command's status. `fail DESCRIPTION DETAIL` stops with one message.
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
