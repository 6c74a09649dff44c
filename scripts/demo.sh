#!/usr/bin/env bash
# `make demo`: start the bundled demo server, put it under load for a few
# seconds, and trace its request handlers with ulat.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	exec sudo -E "$0" "$@"
fi

addr=127.0.0.1:${DEMO_PORT:-18080}
seconds=${DEMO_SECONDS:-5}
work=$(mktemp -d)
server=""
cleanup() {
	[ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

bin/ulat-demo serve -addr "$addr" &
server=$!

echo "+ ulat trace --pid $server --duration ${seconds}s bin/ulat-demo 'main.(*Server).handle*'" >&2
bin/ulat trace --pid "$server" --duration "${seconds}s" bin/ulat-demo 'main.(*Server).handle*' 2>"$work/err" &
tracer=$!
# Start the load once ulat says it is tracing.
for _ in $(seq 100); do
	grep -q '^Tracing' "$work/err" 2>/dev/null && break
	if ! kill -0 "$tracer" 2>/dev/null; then
		cat "$work/err" >&2
		exit 1
	fi
	sleep 0.1
done
cat "$work/err" >&2
bin/ulat-demo load -addr "$addr" -duration "$((seconds - 1))s" -concurrency 8
wait "$tracer"
