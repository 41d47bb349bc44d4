#!/usr/bin/env bash
# make demo: a fresh instance with sample entries, served on http://127.0.0.1:$PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=${DEMO_DATA:-demo-data}
PORT=${PORT:-8000}
if [ ! -f "$DATA/custodes.json" ]; then
  VKEY=$($BIN/custodes --data "$DATA" init --origin "demo.custodes.example/log" | tail -n 1)
  $BIN/python scripts/sample_entries.py 1000 | $BIN/custodes --data "$DATA" log append - > /dev/null
else
  VKEY=$(cat "$DATA/keys/log.vkey")
fi
$BIN/custodes --data "$DATA" log checkpoint > /dev/null
cat <<MSG

custodes demo is ready.
  open           http://127.0.0.1:$PORT/            (the log and how to verify it)
  checkpoint     http://127.0.0.1:$PORT/log/checkpoint
  verifier key   $VKEY
  verify it:     $BIN/custodes verify --vkey '$VKEY' --source http://127.0.0.1:$PORT/log

MSG
exec $BIN/custodes --data "$DATA" serve --host 127.0.0.1 --port "$PORT"
