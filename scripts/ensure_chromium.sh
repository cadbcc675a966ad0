#!/usr/bin/env bash
# Installs Debian's headless Chromium for the book-rendering test, where it is missing.
# (Never a browser download from a test tool: Debian's package only.)
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != "0" ]; then
  echo "chromium is missing and this user cannot apt-get install it; the browser test will fail." >&2
  exit 0
fi
echo "Installing Debian's chromium for the book-rendering test (~1 min) ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium >/dev/null
chromium --version
