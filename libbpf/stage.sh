#!/usr/bin/env bash
# Stages the pinned libbpf (libbpf/VERSION) for static linking into $1
# (default build/libbpf): include/bpf/*.h and lib/libbpf.a, libelf.a and
# libz.a. The library comes from Debian's bookworm-backports libbpf-dev
# package, which `make deps` installs; no libbpf source is copied into this
# repository. Fails with a clear message when the installed version is not the
# pinned one, so a build never links a libbpf it was not tested with.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-build/libbpf}
want=$(cat "$here/VERSION")
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
libdir=/usr/lib/$multiarch

have=$(dpkg-query -W -f='${Version}' libbpf-dev 2>/dev/null | sed -e 's/^[0-9]*://' -e 's/-.*//')
if [ "$have" != "$want" ]; then
	echo "libbpf: need libbpf-dev $want (pinned in libbpf/VERSION), found '${have:-none}'; run 'make deps'" >&2
	exit 1
fi

mkdir -p "$out/include/bpf" "$out/lib"
cp -u /usr/include/bpf/*.h "$out/include/bpf/"
for a in libbpf.a libelf.a libz.a; do
	if [ ! -f "$libdir/$a" ]; then
		echo "libbpf: $libdir/$a is missing; run 'make deps'" >&2
		exit 1
	fi
	cp -u "$libdir/$a" "$out/lib/"
done
echo "$want" >"$out/VERSION"
