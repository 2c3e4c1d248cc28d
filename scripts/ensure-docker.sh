#!/usr/bin/env bash
# Make what the container tests (tests/container/, `make test-image`) need:
#   - Debian's docker.io (dockerd, docker) and debootstrap, installed when missing and we are root;
#   - the local base image, a tarball of `debootstrap --variant=minbase bookworm` plus Debian's
#     python3, made once and cached OUTSIDE the repository (CI runs a fresh clone on the same
#     machine): $WOWEVENT_BASE_TAR, default /var/cache/wowevent/base-bookworm-<key>.tar.
# Prints the tarball's path on stdout. Never fails the caller: when it cannot, the tests skip
# with the reason outside CI and fail under CI.
set -uo pipefail
cache="${WOWEVENT_CACHE_DIR:-/var/cache/wowevent}"
# The key changes whenever what goes into the base changes, so a stale tarball is never used.
packages="python3,python3-venv,python-is-python3,ca-certificates"
key="$(printf '%s' "bookworm minbase $packages v1" | cksum | cut -d' ' -f1)"
tar="${WOWEVENT_BASE_TAR:-$cache/base-bookworm-$key.tar}"
mirror="${WOWEVENT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=""
    command -v dockerd >/dev/null || missing="$missing docker.io"
    command -v debootstrap >/dev/null || [ -s "$tar" ] || missing="$missing debootstrap"
    if [ -n "$missing" ]; then
        echo "installing Debian's$missing for the container tests" >&2
        added_policy=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            # Keep docker.io's init script from starting a system-wide daemon with a bridge.
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
            added_policy=1
        fi
        # shellcheck disable=SC2086
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends $missing >/dev/null) \
            || echo "could not install$missing; the container tests will skip (fail under CI)" >&2
        [ -n "$added_policy" ] && rm -f /usr/sbin/policy-rc.d
    fi
fi

if [ ! -s "$tar" ]; then
    if [ "$(id -u)" != 0 ] || ! command -v debootstrap >/dev/null; then
        echo "no base image at $tar and debootstrap cannot run here (needs root)" >&2
        echo "$tar"
        exit 0
    fi
    echo "making the base image $tar (debootstrap minbase bookworm + python3, once)" >&2
    mkdir -p "$cache"
    work="$(mktemp -d "$cache/debootstrap.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    if debootstrap --variant=minbase --include="$packages" bookworm "$work/root" "$mirror" \
            >"$work/log" 2>&1; then
        # Smaller and reproducible enough: no apt lists or caches in the layer.
        rm -rf "$work/root/var/lib/apt/lists/"* "$work/root/var/cache/apt/"*.bin \
               "$work/root/var/cache/apt/archives/"*.deb
        tar -C "$work/root" -cf "$work/base.tar" . && mv "$work/base.tar" "$tar"
    else
        tail -20 "$work/log" >&2
        echo "debootstrap failed; the container tests will skip (fail under CI)" >&2
    fi
fi
echo "$tar"
