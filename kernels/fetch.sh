#!/usr/bin/env bash
# Fetches the newest Debian cloud kernel of a series (5.10, 6.1, 6.12, ...)
# for the kernel matrix and prints the path of its vmlinuz.
#
#   kernels/fetch.sh SERIES [ARCH]      ARCH: amd64 (default)
#
# The kernels are Debian's own packages: bullseye (5.10), bookworm (6.1) and
# bookworm-backports (6.12), found through apt lists kept in the cache, so
# the host's apt configuration is neither needed nor changed. Downloaded
# kernels stay in the cache ($ULAT_KERNEL_CACHE, by default
# ~/.cache/ulat/kernels); when Debian cannot be reached, the newest cached
# kernel of the series is used.
set -euo pipefail

series=${1:?usage: $0 SERIES [ARCH]}
arch=${2:-amd64}
cache=${ULAT_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ulat/kernels}
apt_dir=$cache/apt-$arch
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$cache/$arch"
# One fetch at a time: the kernel matrix fetches its kernels in parallel,
# and they share the lists.
exec 9>"$cache/.lock-$arch"
flock 9

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
cat >"$apt_dir/sources.list" <<EOF
deb [signed-by=$keyring] http://deb.debian.org/debian bullseye main
deb [signed-by=$keyring] http://deb.debian.org/debian-security bullseye-security main
deb [signed-by=$keyring] http://deb.debian.org/debian bookworm main
deb [signed-by=$keyring] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=$keyring] http://deb.debian.org/debian bookworm-backports main
EOF
apt_opts=(
	-o "Dir::Etc::SourceList=$apt_dir/sources.list"
	-o Dir::Etc::SourceParts=/dev/null
	-o "Dir::State::Lists=$apt_dir/lists"
	-o "Dir::Cache=$apt_dir"
	-o "APT::Architecture=$arch"
	-o "APT::Architectures=$arch"
	-o Debug::NoLocking=1
	-o APT::Sandbox::User=root
)

cached() {
	# The newest kernel of the series already in the cache.
	{ find "$cache/$arch" -maxdepth 2 -name "vmlinuz-$series.*" 2>/dev/null || true; } | sort -V | tail -n 1
}

# The lists are refreshed once a day at most.
stamp=$apt_dir/updated
if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
	if apt-get "${apt_opts[@]}" -qq update >"$apt_dir/update.log" 2>&1; then
		touch "$stamp"
	elif [ -n "$(cached)" ]; then
		echo "fetch: cannot reach Debian (see $apt_dir/update.log); using the cached kernel" >&2
		cached
		exit 0
	else
		echo "fetch: cannot update Debian's package lists and no $series kernel is cached:" >&2
		cat "$apt_dir/update.log" >&2
		exit 1
	fi
fi

# The meta-package's newest version of the series names the image package.
meta=linux-image-cloud-$arch
version=$(apt-cache "${apt_opts[@]}" madison "$meta" | awk -v s="$series" '{ v = $3; if (index(v, s ".") == 1) print v }' | sort -V | tail -n 1)
if [ -z "$version" ]; then
	echo "fetch: Debian has no $meta of the $series series for $arch" >&2
	exit 1
fi
image=$(apt-cache "${apt_opts[@]}" show "$meta=$version" | sed -n 's/^Depends: \(linux-image-[^ ,]*\).*/\1/p' | head -n 1)
if [ -z "$image" ]; then
	echo "fetch: cannot tell which image package $meta $version depends on" >&2
	exit 1
fi

out=$cache/$arch/$image
vmlinuz=$(find "$out" -maxdepth 1 -name 'vmlinuz-*' 2>/dev/null | head -n 1 || true)
if [ -z "$vmlinuz" ]; then
	tmp=$(mktemp -d "$cache/$arch/.fetch.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && apt-get "${apt_opts[@]}" -qq download "$image=$version" >/dev/null 2>"$tmp/download.log") || {
		echo "fetch: apt-get download $image=$version failed:" >&2
		cat "$tmp/download.log" >&2
		exit 1
	}
	dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp" ./boot
	mkdir -p "$out"
	# Named by series first, so that cached() finds it by the series.
	src=$(find "$tmp/boot" -name 'vmlinuz-*' | head -n 1)
	cp "$tmp"/boot/config-* "$out/" 2>/dev/null || true
	mv "$src" "$out/vmlinuz-$version"
	vmlinuz=$out/vmlinuz-$version
fi
echo "$vmlinuz"
