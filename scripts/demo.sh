#!/usr/bin/env bash
# make demo: build the synthetic city once, then serve it on http://127.0.0.1:$PORT.
#   PORT (8000), DEMO_DATA (demo-data); the city's size: DEMO_CAMERAS (300),
#   DEMO_DAYS (7, ending now), DEMO_REQUESTS (60).  Delete DEMO_DATA to build a fresh one.
# Custody: three local custodians (2 of 3) in DEMO_CUSTODIANS (DEMO_DATA.custodians, apart
#   from the operator's data) on ports PORT+1..PORT+3; DEMO_CUSTODY=0 runs without them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=${DEMO_DATA:-demo-data}
PORT=${PORT:-8000}
URL="http://127.0.0.1:$PORT"
began=$(date +%s%N)
if [ ! -f "$DATA/custodes.json" ]; then
  echo "custodes: building the demo city in $DATA ..." >&2
  $BIN/custodes --data "$DATA" demo-city \
    --cameras "${DEMO_CAMERAS:-300}" --days "${DEMO_DAYS:-7}" --requests "${DEMO_REQUESTS:-60}"
else
  echo "custodes: $DATA already holds an instance; serving it (delete it to build a fresh city)" >&2
fi
VKEY=$(cat "$DATA/keys/log.vkey")
CUSTODY=${DEMO_CUSTODY:-1}
CUST=${DEMO_CUSTODIANS:-$DATA.custodians}
set_up=$(( ($(date +%s%N) - began) / 1000000 ))
cat <<MSG

custodes demo is ready (set up in $((set_up / 1000)).$(printf '%03d' $((set_up % 1000))) s).
  map            $URL/
  coverage       $URL/coverage        outages  $URL/outages
  statistics     $URL/statistics      who looked at a place?  $URL/looked
  sign in        $URL/login           then $URL/app
  the log        $URL/verify          checkpoint  $URL/log/checkpoint
  HTTP API       $URL/docs
  verifier key   $VKEY
  verify it:     $BIN/custodes verify --vkey '$VKEY' --source $URL/log
MSG
if [ "$CUSTODY" = 1 ]; then
  cat <<MSG
  custody        3 custodians, 2 of 3, at http://127.0.0.1:$((PORT + 1))..$((PORT + 3))
                 (folders in $CUST, set up as the server starts; logs there too)
                 $BIN/custodes custody status --server $URL
                 The city's week was recorded before custody and is stored unencrypted;
                 a few seconds recorded now are encrypted, and only a logged release opens them.
MSG
else
  echo "  custody        off: footage is stored unencrypted (DEMO_CUSTODY=0)"
fi
if [ -f "$DATA/demo/logins.json" ]; then
  echo
  echo "demo logins (synthetic people; kept in $DATA/demo/logins.json):"
  $BIN/python - "$DATA/demo/logins.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
print(f"  {'name':<8} {'password':<14} {'role':<13} scope")
for u in rows:
    print(f"  {u['name']:<8} {u['password']:<14} {u['role']:<13} {u['scope']}")
PY
fi
echo
if [ -f "$DATA/demo/agents.json" ]; then
  # The city's recorder agents keep sending heartbeats while it is served; the feed
  # stops by itself when the server (which this shell becomes) stops.
  $BIN/custodes --data "$DATA" demo-feed --server "$URL" &
fi
if [ "$CUSTODY" = 1 ]; then
  # The custodians start beside the server (which this shell becomes): each its own process
  # and folder, as three institutions would run them; they stop when the server stops.
  scripts/demo-custody.sh "$URL" "$DATA" "$CUST" "$VKEY" "$PORT" "$$" &
fi
exec $BIN/custodes --data "$DATA" serve --host 127.0.0.1 --port "$PORT"
