#!/usr/bin/env bash
# Prints the primary (non-security) archive URL of this machine's apt sources, read from deb822
# `.sources` files (`URIs:` lines) and one-line `.list` files alike; any of them may be absent.
# Exits 1 with a message naming the files it read when none holds a mirror.
set -uo pipefail
dir=${APT_SOURCES_DIR:-/etc/apt}
files=()
for f in "$dir"/sources.list "$dir"/sources.list.d/*.sources "$dir"/sources.list.d/*.list; do
  [ -f "$f" ] && files+=("$f")
done
mirror=""
if [ ${#files[@]} -gt 0 ]; then
  mirror=$(awk '
    /^[[:space:]]*#/ { next }
    /^URIs:/ { for (i = 2; i <= NF; i++) print $i; next }
    /^deb[[:space:]]/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }
  ' "${files[@]}" | grep -E '^https?://' | grep -v -- '-security' | grep -v '/security' | head -1)
fi
if [ -z "$mirror" ]; then
  echo "medarena: no apt mirror found (read: ${files[*]:-no sources files in $dir})" >&2
  exit 1
fi
echo "${mirror%/}"
