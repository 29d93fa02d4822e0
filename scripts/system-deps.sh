#!/usr/bin/env bash
# Installs the system programs the test-suite starts for real: redis-server (scale-out tests)
# and Debian's chromium (page tests). Idempotent; skips what is already there.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "system-deps: missing ${need[*]}; run as root or install them: apt-get install ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "system-deps: redis-server $(redis-server --version | awk '{print $3}'), $(chromium --version 2>/dev/null | head -1)"
