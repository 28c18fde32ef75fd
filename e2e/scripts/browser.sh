#!/usr/bin/env bash
# Installs what the sign-in tests drive a browser with: Debian's headless-capable Chromium, its
# chromedriver, and certutil (libnss3-tools), which puts the test CA into the browser's
# certificate database. Test support only. Idempotent: does nothing when all three are present.
set -euo pipefail

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v certutil >/dev/null || missing+=(libnss3-tools)
((${#missing[@]} == 0)) && exit 0

if [[ "$(id -u)" != 0 ]]; then
    echo "browser: ${missing[*]} missing; install as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
    # The browser tests skip without them, except in CI, which must run them.
    [[ "${CI:-}" == true ]] && exit 1
    echo "browser: the sign-in browser tests will skip" >&2
    exit 0
fi
echo "browser: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
