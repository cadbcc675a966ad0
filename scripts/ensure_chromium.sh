#!/usr/bin/env bash
# Installs Debian's headless Chromium and its WebDriver (chromium-driver) for the book-rendering test,
# where they are missing. (Never a browser or driver download from a test tool: Debian's packages only.)
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && [ -x /usr/bin/chromedriver ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "chromium/chromedriver are missing and this user cannot apt-get install them; the browser test will be skipped." >&2
  exit 0
fi
echo "Installing Debian's chromium + chromium-driver for the book-rendering test (~1 min) ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium chromium-driver >/dev/null
chromium --version
