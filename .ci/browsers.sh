#!/usr/bin/env bash
# Headless Chromium and chromedriver for tests/test_browser.py (Debian/Ubuntu, apt-get).
# Idempotent: when chromedriver is already on PATH it only says so and exits (no apt, no sudo).
set -euo pipefail

if command -v chromedriver >/dev/null 2>&1; then
    echo "browsers.sh: chromedriver found at $(command -v chromedriver), nothing to install"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "browsers.sh: chromedriver is missing and apt-get is not here; install Chromium and a matching" \
         "chromedriver with this system's package manager" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "browsers.sh: not root and no sudo; run as root" >&2; exit 1; }
    SUDO=(sudo)
fi

# Debian names them chromium / chromium-driver. (Ubuntu's chromium-chromedriver is a snap stub;
# there, install Google's Chrome for Testing instead.)
echo "browsers.sh: installing chromium chromium-driver with apt-get${SUDO:+ (via sudo)}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver

command -v chromedriver >/dev/null 2>&1 || { echo "browsers.sh: chromedriver still not on PATH" >&2; exit 1; }
echo "browsers.sh: installed $(chromedriver --version | head -n1); $(chromium --version 2>/dev/null | tail -n1)"
