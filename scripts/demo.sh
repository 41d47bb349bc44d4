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
PINS=()
wait_up() {  # URL...: wait until each answers /healthz
  $BIN/python - "$@" <<'PY'
import sys, time, urllib.request
for url in sys.argv[1:]:
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"custodes: {url} did not come up")
            time.sleep(0.2)
PY
}
if [ "$CUSTODY" = 1 ]; then
  # Three custodians, each its own process and folder, as three institutions would run them.
  mkdir -p -m 700 "$CUST"
  urls=()
  for k in 1 2 3; do
    dir="$CUST/c$k"
    if [ ! -f "$CUST/c$k.vkey" ]; then
      $BIN/custodes --data "$dir" custodian init --name "c$k.demo.custodes.example" \
        | tail -n 1 > "$CUST/c$k.vkey.tmp"
      mv "$CUST/c$k.vkey.tmp" "$CUST/c$k.vkey"
    fi
    cport=$((PORT + k))
    $BIN/custodes --data "$dir" custodian serve --port "$cport" --log "$URL" \
      --log-vkey "$VKEY" --interval 0.5 >>"$CUST/c$k.log" 2>&1 &
    cpid=$!
    # Each custodian stops with the server (which this shell becomes below).
    ( while kill -0 $$ 2>/dev/null; do sleep 1; done; kill "$cpid" 2>/dev/null ) &
    urls+=("http://127.0.0.1:$cport")
    PINS+=(--custodian "$(cat "$CUST/c$k.vkey")")
  done
  wait_up "${urls[@]}"
  if ! $BIN/custodes --data "$DATA" custody status --json | grep -q '"custody": true'; then
    specs=()
    for k in 1 2 3; do specs+=(--custodian "$(cat "$CUST/c$k.vkey")@${urls[$((k - 1))]}"); done
    base=(custody init --threshold 2 "${specs[@]}" --dkg-deadline 10)
    $BIN/custodes --data "$DATA" "${base[@]}" --propose > "$CUST/set.json"
    sigs=()
    for k in 1 2 3; do
      sigs+=(--signature "$($BIN/custodes --data "$CUST/c$k" custodian sign-set "$CUST/set.json")")
    done
    at=$($BIN/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["time"])' "$CUST/set.json")
    $BIN/custodes --data "$DATA" "${base[@]}" --time "$at" "${sigs[@]}" >/dev/null
  fi
fi
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
                 (folders in $CUST); $BIN/custodes custody status --server $URL
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
if [ "$CUSTODY" = 1 ] && [ ! -f "$CUST/recorded" ] && command -v ffmpeg >/dev/null; then
  # Once today's epoch key is in the log, record a few seconds of one camera through a
  # real agent: it encrypts each segment, and the archive gets the ciphertext only.
  scripts/demo-record.sh "$URL" "$DATA" "$CUST" "$VKEY" "${PINS[@]}" &
fi
exec $BIN/custodes --data "$DATA" serve --host 127.0.0.1 --port "$PORT"
