#!/usr/bin/env bash
# Provisions the ulat lab: the Vagrantfile runs it as root in the VM, and it
# runs the same way on any Debian 12 machine (`bash vagrant/provision.sh` as
# root; CI does, through e2e/lab_test.go). It
#   1. installs the system packages with scripts/deps.sh, the one list of
#      packages that `make deps` uses;
#   2. installs the Go that go.mod asks for in /usr/local/go, from go.dev,
#      checked against vagrant/go.sha256 (skipped when it is there already);
#   3. builds bin/ulat and bin/ulat-demo as the user who owns the checkout.
# Idempotent, and quick when everything is in place.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	echo "provision: must run as root" >&2
	exit 1
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
goroot=/usr/local/go

bash "$repo/scripts/deps.sh"

version=$(awk '$1 == "go" { print $2; exit }' "$repo/go.mod")
if [ -z "$version" ]; then
	echo "provision: no go directive in $repo/go.mod" >&2
	exit 1
fi
bash "$repo/vagrant/install-go.sh" "$version" "$goroot"

# Go on every login shell's PATH.
profile=/etc/profile.d/ulat-go.sh
line="export PATH=\"\$PATH:$goroot/bin\""
if [ "$(cat "$profile" 2>/dev/null)" != "$line" ]; then
	echo "$line" >"$profile"
	echo "provision: wrote $profile"
fi

# Build as the checkout's owner (vagrant in the VM), so that the user can
# rebuild there without root.
owner=$(stat -c %U "$repo")
as_owner=()
if [ "$owner" != root ]; then
	home=$(getent passwd "$owner" | cut -d: -f6)
	as_owner=(runuser -u "$owner" -- env "HOME=$home")
fi
echo "provision: make build bin/ulat-demo (as $owner)"
"${as_owner[@]}" env "PATH=$goroot/bin:$PATH" make -C "$repo" --no-print-directory build bin/ulat-demo
echo "provision: done; the lab guide is vagrant/LAB.md"
