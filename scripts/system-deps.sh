#!/usr/bin/env bash
# Debian packages the project needs at run or test time; a no-op when present.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
ldconfig -p | grep 'libGL.so.1 ' >/dev/null || need+=(libgl1)
ldconfig -p | grep 'libglib-2.0.so.0 ' >/dev/null || need+=(libglib2.0-0)
ldconfig -p | grep 'libsodium.so.23 ' >/dev/null || need+=(libsodium23)  # ristretto255 for custody (pysodium)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "custodes: please install: ${need[*]} (apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing ${need[*]} from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
