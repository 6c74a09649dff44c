#!/usr/bin/env bash
# Installs the Go toolchain VERSION (e.g. 1.26.8) from go.dev into GOROOT
# (default /usr/local/go), unless GOROOT already holds that version. The
# archive must match the sha256 pinned in go.sha256 beside this script;
# nothing is replaced when the download or the check fails.
#
#   install-go.sh VERSION [GOROOT]
#
# ULAT_GO_DL overrides where archives come from (default https://go.dev/dl),
# for a mirror; the pinned checksum still decides.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 VERSION [GOROOT]" >&2
	exit 2
fi
version=$1
goroot=${2:-/usr/local/go}
here=$(cd "$(dirname "$0")" && pwd)
want=go$version

if [ -f "$goroot/VERSION" ] && [ "$(head -n 1 "$goroot/VERSION")" = "$want" ]; then
	echo "go: $want is in $goroot"
	exit 0
fi

case "$(uname -m)" in
x86_64) arch=amd64 ;;
aarch64) arch=arm64 ;;
*)
	echo "go: no Go archive for $(uname -m)" >&2
	exit 1
	;;
esac
file=$want.linux-$arch.tar.gz
sum=$(awk -v f="$file" '$2 == f { print $1 }' "$here/go.sha256")
if [ -z "$sum" ]; then
	echo "go: no checksum for $file in $here/go.sha256; add the sha256 that https://go.dev/dl/ lists for it" >&2
	exit 1
fi

tmp=$(mktemp -d)
new=""
cleanup() {
	rm -rf "$tmp"
	if [ -n "$new" ]; then rm -rf "$new"; fi
}
trap cleanup EXIT

url=${ULAT_GO_DL:-https://go.dev/dl}/$file
echo "go: downloading $url"
curl -fsSL --retry 3 -o "$tmp/$file" "$url"
if ! echo "$sum  $tmp/$file" | sha256sum --check --quiet --status -; then
	echo "go: $file does not match its pinned sha256 ($sum); not installed" >&2
	exit 1
fi

# Unpack beside GOROOT (same file system), then swap directories.
parent=$(dirname "$goroot")
mkdir -p "$parent"
new=$(mktemp -d "$parent/.go-new.XXXXXX")
tar -C "$new" -xzf "$tmp/$file"
if [ "$(head -n 1 "$new/go/VERSION" 2>/dev/null)" != "$want" ]; then
	echo "go: $file does not hold $want" >&2
	exit 1
fi
if [ -e "$goroot" ]; then
	echo "go: replacing $goroot ($(head -n 1 "$goroot/VERSION" 2>/dev/null || echo 'unknown version'))"
	rm -rf "$goroot"
fi
mv "$new/go" "$goroot"
echo "go: installed $want in $goroot"
