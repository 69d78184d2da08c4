#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the dApp's real-browser test (web/tests/e2e.test.ts),
# which drives /usr/bin/chromium through playwright-core: no test tool downloads a browser.
#   tools/chromium.sh      install chromium + chromium-driver unless both are there (idempotent)
set -euo pipefail

[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && exit 0

sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
install_chromium() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }

# Refresh the package lists only when they don't know the packages, or are too old to fetch them.
if ! apt-cache show chromium chromium-driver >/dev/null 2>&1 || ! install_chromium; then
    $sudo apt-get update -q >/dev/null
    install_chromium
fi
