#!/bin/sh
# The console's browser tests drive Debian's Chromium through Playwright, which must never
# download a browser of its own. Use the installed one; else (root on Debian) install the
# chromium package; else say exactly what to install and fail.
# WOWEVENT_TEST_CHROMIUM names another Chromium binary.
set -eu
CHROMIUM="${WOWEVENT_TEST_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "chromium is missing at $CHROMIUM; installing Debian's chromium package" >&2
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    if [ -x "$CHROMIUM" ]; then
        exit 0
    fi
    echo "the chromium package is installed but $CHROMIUM is still missing" >&2
    exit 1
fi
echo "chromium is missing at $CHROMIUM; the console's browser tests need it. Install it with:" >&2
echo "    sudo apt-get install -y chromium" >&2
echo "(or set WOWEVENT_TEST_CHROMIUM to a Chromium binary)" >&2
exit 1
