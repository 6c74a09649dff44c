#!/usr/bin/env bash
# `make lab`, `make lab-ssh`, `make lab-destroy`: the Vagrant lab, run from
# the machine that hosts the VM (no root needed there). See vagrant/LAB.md.
#
#   lab.sh up        create and provision the VM if needed, run `make demo` in it
#   lab.sh ssh       a shell in the VM, in ~/ulat
#   lab.sh destroy   delete the VM
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v vagrant >/dev/null 2>&1; then
	cat >&2 <<'MSG'
lab: the lab needs Vagrant (https://developer.hashicorp.com/vagrant/install)
and a provider on this machine: VirtualBox, or libvirt with the
vagrant-libvirt plugin (Debian and Ubuntu: apt install vagrant vagrant-libvirt).
To run ulat without a VM instead: make demo, on Linux with root.
MSG
	exit 1
fi

case "${1:-}" in
up)
	vagrant up
	vagrant ssh -c 'cd ~/ulat && make demo'
	echo "lab: the VM is up; 'make lab-ssh' for a shell there, then follow vagrant/LAB.md"
	;;
ssh)
	vagrant ssh -- -t 'cd ~/ulat && exec bash -l'
	;;
destroy)
	vagrant destroy -f
	;;
*)
	echo "usage: $0 up|ssh|destroy" >&2
	exit 2
	;;
esac
