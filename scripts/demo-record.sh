#!/usr/bin/env bash
# make demo, under custody: wait for the server and today's epoch key, then record six
# seconds of one camera with ffmpeg and send them through a real recorder agent, which
# encrypts each segment before it leaves.  Args: URL DATA CUSTODIANS_DIR LOG_VKEY --custodian VKEY...
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
URL=$1 DATA=$2 CUST=$3 VKEY=$4
shift 4
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
        sys.exit("custodes: today's epoch key was not logged in time; nothing recorded")
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
    --journal "$CUST/agent.db" --settle 0 --once --log-vkey "$VKEY" "$@" >"$CUST/agent.log" 2>&1
then
  rm -rf "$REC"  # the recorder's own copy; the archive holds the ciphertext only
  touch "$CUST/recorded"
  echo "custodes demo: camera $CAM recorded 6 s under custody (archived as ciphertext);" \
    "request it at $URL/app and release it: two of the three custodians open it" >&2
else
  echo "custodes demo: the encrypted recording failed; see $CUST/agent.log" >&2
fi
