#!/usr/bin/env bash
# Run a command with WOWEVENT_TEST_REDIS_URL pointing at a Redis that answers: the one named by
# WOWEVENT_BROKER_URL, the local one on 6379, or a private redis-server started (and stopped)
# here. When redis-server is missing and we are root on Debian, install it first.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
py="$here/.venv/bin/python"
state="$here/.run/$$"
if ! command -v redis-server >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "redis-server is missing; installing Debian's redis-server package" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
        || echo "could not install redis-server; tests that need a private Redis will fail" >&2
fi
set +e
url="$("$py" "$here/scripts/devredis.py" ensure "$state")"
status=$?
set -e
if [ "$status" = 3 ]; then
    echo "No Redis answers on 127.0.0.1:6379 and redis-server is not installed." >&2
    echo "Install it (apt-get install redis-server / brew install redis) or set WOWEVENT_BROKER_URL." >&2
    exit 1
elif [ "$status" != 0 ]; then
    exit "$status"
fi
trap '"$py" "$here/scripts/devredis.py" stop "$state"; rm -rf "$state"' EXIT
WOWEVENT_TEST_REDIS_URL="$url" "$@"
