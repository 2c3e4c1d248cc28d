#!/usr/bin/env bash
# Make Prometheus (prometheus + promtool) available for the observability integration tests.
# On Debian as root, install Debian's `prometheus` package when it is missing, without starting
# its system service (the tests run their own server bound to 127.0.0.1 on a free port).
# Never fails the caller: when it cannot install, the tests that need Prometheus skip with a
# message outside CI and fail in CI.
set -uo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "prometheus is missing and cannot be installed here (needs root and apt-get)" >&2
    exit 0
fi
echo "prometheus is missing; installing Debian's prometheus package" >&2
added_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    # Keep the package's init script from starting a system-wide server on 0.0.0.0:9090.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    added_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
(apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null) \
    || echo "could not install prometheus; its integration tests will skip (or fail under CI)" >&2
[ -n "$added_policy" ] && rm -f /usr/sbin/policy-rc.d
exit 0
