#!/usr/bin/env bash
# `make lint`: `vagrant validate` on vagrant/Vagrantfile for each of its
# providers, on a machine without a hypervisor. Vagrant checks a provider's
# settings only when that provider is usable: libvirt's plugin
# (vagrant-libvirt) is enough for it; for VirtualBox, which Debian does not
# ship, a stand-in VBoxManage that only reports a version makes it usable.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v vagrant >/dev/null 2>&1; then
	echo "validate: vagrant is missing; run 'scripts/deps.sh --test'" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/VBoxManage" <<'STUB'
#!/bin/sh
[ "$1" = --version ] && echo 7.0.20r163906
exit 0
STUB
chmod +x "$tmp/VBoxManage"

export VAGRANT_CHECKPOINT_DISABLE=1
# Keeps validation's machine state out of the checkout.
export VAGRANT_DOTFILE_PATH=$tmp/dot
for provider in virtualbox libvirt; do
	if ! out=$(PATH="$tmp:$PATH" VAGRANT_DEFAULT_PROVIDER=$provider vagrant validate 2>&1); then
		echo "vagrant validate ($provider) failed:" >&2
		echo "$out" >&2
		exit 1
	fi
	echo "vagrant validate ($provider): $out"
done
