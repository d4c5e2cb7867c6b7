#!/usr/bin/env bash
# Installs the Debian packages an Aptfile lists (one a line, '#' starts a comment) that are missing,
# with apt-get, when this user can: as root, or with password-less sudo. When it cannot, a banner
# says so and this exits 0: what needs them is skipped (README, "Tests that need root"). When it
# could but apt-get fails, this exits 1, so that `make` stops there.
# Usage: devtools/apt-install.sh APTFILE (the Makefile's system-deps and test-deps).
set -u
aptfile="${1:?usage: $0 APTFILE}"

missing=""
for package in $(sed -e 's/#.*//' "$aptfile"); do
	dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
		|| missing="$missing $package"
done
if [ -z "$missing" ]; then exit 0; fi

banner() {
	local stars
	stars="$(printf '*%.0s' $(seq 78))"
	printf '\n%s\n*** %s\n*** %s\n%s\n\n' "$stars" "$1" "$2" "$stars" >&2
}

if [ "$(id -u)" = 0 ]; then
	sudo=""
elif sudo -n true 2>/dev/null; then
	sudo="sudo -n"
else
	banner "NOT INSTALLED (not root, no password-less sudo):$missing" \
		"the service runs without them and tests that need them are skipped: README, Tests that need root"
	exit 0
fi
if ! command -v apt-get >/dev/null; then
	banner "NOT INSTALLED (no apt-get on this system):$missing" \
		"install them with this system's package manager; README, Tests that need root"
	exit 0
fi
echo "installing$missing with apt-get"
if ! { $sudo apt-get update -qq \
	&& DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null; }; then
	banner "apt-get FAILED to install$missing (its error is above)" \
		"fix apt (network, sources) and run make again"
	exit 1
fi
