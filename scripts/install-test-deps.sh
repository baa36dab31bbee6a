#!/usr/bin/env bash
# Installs the Debian packages Petrel's tests use, so that none of them is skipped. Run as root
# (or with sudo) on Debian or Ubuntu; packages already installed are left alone.
#   python3-dkim   dkimpy, the second independent DKIM verifier
#   dnsmasq-base   a real DNS server for the MX routing tests
#   postfix        smtp-sink and smtp-source (interop, crash loop) and Postfix for the benchmark
#   prometheus     promtool, which checks the /metrics exposition
#   strace, swaks, fiu-utils   the reliability suite (fsync ordering, smuggling, fsync EIO)
#   testssl.sh     the reliability suite's TLS check of the listeners (command `testssl`)
#   systemd, shellcheck, rsync  CI's unit and Dockerfile checks and its Node 24 copy of the tree
#   postgresql, redis-server  the cluster backend's tests (servers started by the tests on loopback)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PACKAGES=(python3-dkim dnsmasq-base postfix prometheus strace swaks fiu-utils testssl.sh systemd shellcheck rsync postgresql redis-server)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]}"
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
# Packages like postfix and prometheus must not start services on a test machine.
if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
