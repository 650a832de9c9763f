#!/usr/bin/env bash
# The launcher that makes `sudo kvmtop` work from anywhere (KVMTOP_LAUNCHER, default
# /usr/local/bin/kvmtop): a two-line script running this checkout's .venv/bin/kvmtop.
#
#   launcher.sh          write it, unless it runs another working checkout: then keep it
#                        and say which checkout `sudo kvmtop` runs and how to change that
#   launcher.sh here     point it at this checkout whatever it ran before
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
launcher=${KVMTOP_LAUNCHER:-/usr/local/bin/kvmtop}
mine="$top/.venv/bin/kvmtop"
want="#!/bin/sh
exec \"$mine\" \"\$@\""
current_target=$(sed -n 's/^exec "\(.*\)" "\$@"$/\1/p' "$launcher" 2>/dev/null || true)

if [ "$(cat "$launcher" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
if [ "${1:-}" != "here" ] && [ -n "$current_target" ] && [ -x "$current_target" ]; then
  # Another checkout's launcher that still works (e.g. CI in a scratch clone): leave it, but say so.
  other=${current_target%/.venv/bin/kvmtop}
  echo "setup: keeping $launcher: it runs ANOTHER checkout, $other"
  echo "setup:   'kvmtop' there is not this checkout ($top); 'kvmtop --version' says which one runs"
  echo "setup:   run this one as $mine, or point $launcher here with: sudo make launcher"
  exit 0
fi
echo "setup: writing $launcher (runs $mine)"
printf '%s\n' "$want" > "$launcher"
chmod 755 "$launcher"
