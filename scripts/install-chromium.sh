#!/usr/bin/env bash
# Install Debian's Chromium and CJK fonts for the browser tests (never a downloaded browser build).
# --if-possible: do nothing (and succeed) when not root or apt is missing; the browser
# tests are then skipped with a reason.
set -u
if [ -x /usr/bin/chromium ] && [ -d /usr/share/fonts/opentype/noto ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: not root or no apt-get; browser tests will be skipped" >&2
  [ "${1:-}" = "--if-possible" ] && exit 0 || exit 1
fi
echo "install-chromium: installing Debian's chromium (once)…" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
status=$?
if [ $status -ne 0 ] && [ "${1:-}" = "--if-possible" ]; then
  echo "install-chromium: apt-get failed; browser tests will be skipped" >&2
  exit 0
fi
exit $status
