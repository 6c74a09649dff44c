#!/usr/bin/env bash
# Installs every system package ulat needs to build and test, on Debian 12
# (bookworm). Idempotent: a second run changes nothing and is fast. The Vagrant
# lab's provisioning runs this same script, so this is the one list of packages.
#
#   scripts/deps.sh          what building and testing ulat need (`make deps`)
#   scripts/deps.sh --test   also what only `make test` needs: the linters of
#                            `make lint` (shellcheck, and Vagrant to validate
#                            the lab's Vagrantfile), kept out of builds and VMs,
#                            and Debian's Prometheus binary in build/prometheus/
#                            for e2e/prometheus_test.go (not installed: see
#                            fetch_prometheus)
set -euo pipefail

with_test=0
case "${1:-}" in
"") ;;
--test) with_test=1 ;;
*)
	echo "usage: $0 [--test]" >&2
	exit 2
	;;
esac

# curl: the Vagrant lab's provisioning (vagrant/provision.sh) downloads Go.
base_pkgs=(make gcc g++ binutils libc6-dev clang llvm libelf-dev zlib1g-dev pkg-config git ca-certificates curl util-linux bpftrace)
bp_pkgs=(libbpf-dev linux-libc-dev bpftool)
# Only with --test: vagrant-libvirt so that `vagrant validate` checks the
# Vagrantfile's libvirt settings too (VirtualBox's provider is built in);
# QEMU boots the kernel matrix's guests (make test-kernels); debootstrap
# makes the throwaway Debian 12 root that TestLab provisions.
test_pkgs=()
if [ "$with_test" = 1 ]; then
	test_pkgs=(shellcheck vagrant vagrant-libvirt qemu-system-x86 debootstrap)
fi

# fetch_prometheus puts the prometheus binary of Debian's package in
# build/prometheus/, where e2e/prometheus_test.go looks for it. Installing
# the package would start a system service listening on :9090, so the .deb
# is only downloaded and its binary extracted (it links against libc only).
fetch_prometheus() {
	local dest out
	dest="$(cd "$(dirname "$0")/.." && pwd)/build/prometheus"
	[ -x "$dest/prometheus" ] && return 0
	# Not `apt-cache ... | grep -q`: under pipefail, apt-cache killed by the
	# pipe grep closed early would fail the test.
	if [[ "$(apt-cache policy prometheus 2>/dev/null)" != *"Candidate: "[0-9]* ]]; then
		if [ "$(id -u)" -ne 0 ]; then
			echo "deps: apt knows no prometheus package: run apt-get update as root" >&2
			return 1
		fi
		apt-get update -qq
	fi
	prom_tmp=$(mktemp -d)
	trap 'rm -rf "$prom_tmp"' EXIT
	# As root, apt downloads as the _apt user, which must be able to write
	# the directory (otherwise it warns and downloads unsandboxed).
	if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
		chown _apt "$prom_tmp"
	fi
	if ! out=$(cd "$prom_tmp" && apt-get download -qq prometheus 2>&1); then
		echo "deps: apt-get download prometheus: $out" >&2
		return 1
	fi
	dpkg-deb -x "$prom_tmp"/prometheus_*.deb "$prom_tmp/root"
	mkdir -p "$dest"
	cp "$prom_tmp/root/usr/bin/prometheus" "$dest/prometheus.new"
	mv "$dest/prometheus.new" "$dest/prometheus"
	dpkg-deb -f "$prom_tmp"/prometheus_*.deb Version >"$dest/VERSION"
	echo "deps: prometheus $(cat "$dest/VERSION") in $dest"
}

missing=()
for p in "${base_pkgs[@]}" "${bp_pkgs[@]}" "${test_pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# libbpf from bookworm proper (1.1.x) is installed but too old: treat as missing.
libbpf_ver=$(dpkg-query -W -f='${Version}' libbpf-dev 2>/dev/null || true)
if [ -n "$libbpf_ver" ] && dpkg --compare-versions "$libbpf_ver" lt 1:1.4; then
	missing+=(libbpf-dev)
fi
llc_ver=$(dpkg-query -W -f='${Version}' linux-libc-dev 2>/dev/null || true)
if [ -n "$llc_ver" ] && dpkg --compare-versions "$llc_ver" lt 6.6; then
	missing+=(linux-libc-dev)
fi

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all packages present"
	if [ "$with_test" = 1 ]; then
		fetch_prometheus
	fi
	exit 0
fi

# Only installing needs root: a user's `make build` on a ready machine does not.
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		exec sudo -E "$0" "$@"
	fi
	echo "deps: must run as root (or with sudo) to install ${missing[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# Debian 12 ships libbpf 1.1 (too old for uprobe_multi and libbpfgo 0.10);
# bookworm-backports has 1.4.x with a static libbpf.a, newer BPF uapi headers
# (linux-libc-dev 6.12) and bpftool 7.5.
backports=/etc/apt/sources.list.d/ulat-bookworm-backports.list
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	echo "deb http://deb.debian.org/debian bookworm-backports main" >"$backports"
	rm -f /var/lib/apt/lists/lock
	need_update=1
fi

echo "deps: installing ${missing[*]}"
if [ "${need_update:-0}" = 1 ] || ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || \
	! apt-cache policy libbpf-dev 2>/dev/null | grep bookworm-backports >/dev/null; then
	apt-get update -qq
fi
apt-get install -y -qq --no-install-recommends "${base_pkgs[@]}" >/dev/null
apt-get install -y -qq --no-install-recommends -t bookworm-backports "${bp_pkgs[@]}" >/dev/null
if [ ${#test_pkgs[@]} -gt 0 ]; then
	apt-get install -y -qq --no-install-recommends "${test_pkgs[@]}" >/dev/null
	fetch_prometheus
fi
echo "deps: done"
