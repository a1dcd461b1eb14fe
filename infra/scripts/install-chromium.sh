#!/usr/bin/env bash
# Installs Debian's chromium for the report's browser test when it is missing. Needs root
# (or sudo without a password); otherwise it says how and leaves the test to skip loudly.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || [[ -n "${TABNAS_CHROMIUM:-}" ]]; then
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-chromium: no apt-get here; install Chromium and set TABNAS_CHROMIUM for the report's browser test" >&2
	exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
	if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
		echo "install-chromium: not root; run: sudo apt-get install -y --no-install-recommends chromium" >&2
		exit 0
	fi
fi
echo "install-chromium: installing Debian's chromium (once, about a minute)" >&2
if ! { $SUDO apt-get update -qq >/dev/null &&
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
	echo "install-chromium: apt-get failed; the report's browser test will skip loudly" >&2
fi
