#!/usr/bin/env bash
# Installs the system programs the test-suite starts for real: redis-server (scale-out tests)
# and Chromium (page tests). Idempotent; skips what is already there.
#
# As root on Debian it installs what is missing with apt-get. Without root (or on Ubuntu, whose
# `chromium` package is a snap stub, or on macOS) install them by hand as README.md says; a
# Chromium that is not `chromium` on PATH is named by CHROMIUM=/path/to/chrome.
set -euo pipefail
chromium_bin="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -n "$chromium_bin" ] && [ -x "$chromium_bin" ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: missing ${need[*]}: install them by hand (README.md, 'Without root'), or run as root on Debian: apt-get install ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  chromium_bin="$(command -v chromium)"
fi
echo "system-deps: redis-server $(redis-server --version | awk '{print $3}'), $("$chromium_bin" --version 2>/dev/null | head -1)"
