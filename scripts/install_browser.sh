#!/usr/bin/env bash
# Headless Chromium and ChromeDriver (Debian packages chromium, chromium-driver) for the report's rendering
# test (tests/report/test_report_browser.py calls this when they are missing). Nothing else needs a browser.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
