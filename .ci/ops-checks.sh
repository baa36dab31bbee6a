#!/usr/bin/env bash
# Operations checks, called by .ci/run: the systemd unit must pass `systemd-analyze verify` and
# be rated 2.0 or lower ("OK") by `systemd-analyze security`; the Dockerfile must pass two
# linters from npm (no container engine runs here): dockerlinter (hadolint's rule set, with
# ShellCheck on RUN lines) and dockerfile-utils (the Docker language server's validator).
# Installs what it needs (Debian: systemd, shellcheck; npm: pinned linters in a temp prefix).
# Exits non-zero when any check fails.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export DEBIAN_FRONTEND=noninteractive NPM_CONFIG_LOGLEVEL=error NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false

UNIT=systemd/petrel.service
MAX_EXPOSURE=20 # systemd-analyze --threshold counts tenths: 20 is an exposure of 2.0
LINTERS=(dockerlinter@2.0.0 dockerfile-utils@0.16.3)
# hadolint DL3008 (pin apt package versions): Debian's point releases replace those versions,
# so pins break the build; the base image tag is what fixes the release.
DOCKERLINTER_IGNORE=ER0012

step() { printf '\n== %s\n' "$*"; }
failed=0

need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
if [ ${#need[@]} -gt 0 ]; then
  step "apt-get install ${need[*]}"
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
    echo "apt-get install ${need[*]} failed"; exit 1
  fi
fi

step "systemd-analyze verify $UNIT"
# verify exits 0 on warnings such as unknown keys; any output at all is a finding.
out=$(systemd-analyze verify "$UNIT" 2>&1)
status=$?
if [ $status -ne 0 ] || [ -n "$out" ]; then
  printf '%s\n' "$out"
  echo "FAIL: systemd-analyze verify (exit $status)"
  failed=1
else
  echo "ok"
fi

step "systemd-analyze security --offline=true $UNIT"
out=$(systemd-analyze security --offline=true --threshold="$MAX_EXPOSURE" --no-pager "$UNIT" 2>&1)
status=$?
printf '%s\n' "$out" | grep -F -- '→ Overall exposure level' || printf '%s\n' "$out"
if [ $status -ne 0 ]; then
  printf '%s\n' "$out" | grep -E '^✗' || true
  echo "FAIL: exposure above 2.0 (exit $status)"
  failed=1
fi

step "lint Dockerfile"
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
# --ignore-scripts: dockerlinter's postinstall downloads ShellCheck from GitHub; Debian's is used.
if npm install --prefix "$tools" --no-save --no-package-lock --ignore-scripts "${LINTERS[@]}" >/dev/null; then
  if "$tools/node_modules/.bin/dockerlinter" -f Dockerfile -s bash -e info -i "$DOCKERLINTER_IGNORE"; then
    echo "dockerlinter: ok"
  else
    echo "FAIL: dockerlinter"
    failed=1
  fi
  if "$tools/node_modules/.bin/dockerfile-utils" lint Dockerfile; then
    echo "dockerfile-utils: ok"
  else
    echo "FAIL: dockerfile-utils lint"
    failed=1
  fi
else
  echo "FAIL: npm install ${LINTERS[*]}"
  failed=1
fi

if [ $failed -ne 0 ]; then echo "ops checks failed"; exit 1; fi
echo "ops checks passed"
