#!/usr/bin/env bash
# make demo, under custody (started by scripts/demo.sh beside the server):
#   1. three custodians, 2 of 3, each its own folder in CUSTODIANS_DIR and its own process on
#      PORT+1..PORT+3, stopped when the server (SERVER_PID) stops;
#   2. their set logged (custody init --propose, each custodian's sign-set, custody init);
#   3. once today's epoch key is in the log, six seconds of one camera recorded with ffmpeg
#      and sent through a real recorder agent, which encrypts each segment before it leaves.
# Args: URL DATA CUSTODIANS_DIR LOG_VKEY PORT SERVER_PID.  Its messages go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
URL=$1 DATA=$2 CUST=$3 VKEY=$4 PORT=$5 SERVER=$6
say() { echo "custodes demo: $*" >&2; }
mkdir -p -m 700 "$CUST"
urls=() pins=() specs=()
for k in 1 2 3; do
  if [ ! -f "$CUST/c$k.vkey" ]; then
    $BIN/custodes --data "$CUST/c$k" custodian init --name "c$k.demo.custodes.example" \
      | tail -n 1 > "$CUST/c$k.vkey.tmp"
    mv "$CUST/c$k.vkey.tmp" "$CUST/c$k.vkey"
  fi
  cport=$((PORT + k))
  $BIN/custodes --data "$CUST/c$k" custodian serve --port "$cport" --log "$URL" \
    --log-vkey "$VKEY" --interval 0.5 >>"$CUST/c$k.log" 2>&1 &
  cpid=$!
  ( while kill -0 "$SERVER" 2>/dev/null; do sleep 1; done; kill "$cpid" 2>/dev/null ) &
  urls+=("http://127.0.0.1:$cport")
  pins+=(--custodian "$(cat "$CUST/c$k.vkey")")
  specs+=(--custodian "$(cat "$CUST/c$k.vkey")@http://127.0.0.1:$cport")
done
$BIN/python - "$URL" "${urls[@]}" <<'PY'
import sys, time, urllib.request
for url in sys.argv[1:]:
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"custodes demo: {url} did not come up")
            time.sleep(0.3)
PY
if ! $BIN/custodes custody status --server "$URL" --json | grep -q '"custody": true'; then
  base=(custody init --threshold 2 "${specs[@]}" --dkg-deadline 10 --server "$URL")
  $BIN/custodes --data "$DATA" "${base[@]}" --propose > "$CUST/set.json"
  sigs=()
  for k in 1 2 3; do
    sigs+=(--signature "$($BIN/custodes --data "$CUST/c$k" custodian sign-set "$CUST/set.json")")
  done
  at=$($BIN/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["time"])' "$CUST/set.json")
  $BIN/custodes --data "$DATA" "${base[@]}" --time "$at" "${sigs[@]}" >/dev/null
  say "the custodian set (2 of 3) is logged; the custodians now make today's epoch key"
fi
if [ -f "$CUST/recorded" ] || ! command -v ffmpeg >/dev/null; then
  exit 0
fi
read -r CAM TOKEN < <($BIN/python - "$URL" "$DATA/demo/agents.json" <<'PY'
import json, sys, time, urllib.request
url, plan = sys.argv[1], json.load(open(sys.argv[2]))
today = time.strftime("%Y-%m-%d", time.gmtime())
deadline = time.monotonic() + 300
while True:
    try:
        st = json.load(urllib.request.urlopen(url + "/custody/status", timeout=5))
        if any(e["epoch"] == today and e["state"] == "ready" for e in st["epochs"]):
            break
    except (OSError, ValueError):
        pass
    if time.monotonic() > deadline:
        sys.exit("custodes demo: today's epoch key was not logged in time; nothing recorded")
    time.sleep(1)
agent = next(a for a in plan["agents"] if a["cameras"])
print(agent["cameras"][0], agent["token"])
PY
)
REC="$CUST/recorder"
rm -rf "$REC"
mkdir -p "$REC/$CAM"
ffmpeg -hide_banner -loglevel error -nostdin -f lavfi -i testsrc2=size=320x240:rate=10 -t 6 \
  -g 10 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -f segment -segment_time 2 \
  -reset_timestamps 1 "$REC/$CAM/%03d.mp4"
if $BIN/custodes agent --watch "$REC" --server "$URL" --token "$TOKEN" \
    --journal "$CUST/agent.db" --settle 0 --once --log-vkey "$VKEY" "${pins[@]}" \
    >"$CUST/agent.log" 2>&1
then
  rm -rf "$REC"  # the recorder's own copy; the archive holds the ciphertext only
  touch "$CUST/recorded"
  say "camera $CAM recorded 6 s under custody (archived as ciphertext); request it at" \
    "$URL/app and release it: two of the three custodians open it"
else
  say "the encrypted recording failed; see $CUST/agent.log"
fi
