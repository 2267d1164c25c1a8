#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, vet, staticcheck, every
# test with the race detector, a bounded run of every fuzz target, and a
# bounded crash test.
# Usage: ./scripts/test.sh        (FUZZTIME=20000x, CRASH_CYCLES=30, CRASH_WEBHOOK_CYCLES=8 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== go test -race"
go test -race -count=1 ./...

echo "== TypeScript client generated from /openapi.json"
# A client built with openapi-typescript + openapi-fetch from the document a
# real server serves must compile and run all four operations. Needs node and
# npm (.ci/run installs them); npm ci installs the pinned packages.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "node and npm are needed for the TypeScript client test: apt-get install nodejs npm" >&2
	exit 1
fi
(cd clients/typescript-test && npm ci --no-audit --no-fund && npm test)

echo "== fuzz (${FUZZTIME:-20000x} each)"
# Every fuzz target in the tree, found by name, so a new one cannot be forgotten.
# A count of inputs, not a duration: with a duration, Go 1.26's fuzzing
# coordinator can report its own deadline as a failure ("context deadline
# exceeded", no input written) when a worker is slow to stop on a loaded
# machine (golang/go#75804, fixed in Go 1.27); a count has no deadline.
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
	pkg=./$(dirname "${file#./}")
	for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
		echo "-- $pkg $target"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "${FUZZTIME:-20000x}" "$pkg"
	done
done

echo "== crash test (${CRASH_CYCLES:-30} cycles, about a minute)"
# SIGKILL under writes, restart, check every acknowledged PUT and DELETE, the
# bbolt file and audit verify (crashtest/main.go). On a fault it prints the
# seed to replay and keeps its work directory. Longer runs: README, Crash test.
crash_bin=$(mktemp -d)
trap 'rm -rf "$crash_bin"' EXIT
go build -o "$crash_bin/neostore-secrets" ./cmd/neostore-secrets
go run ./crashtest -bin "$crash_bin/neostore-secrets" -cycles "${CRASH_CYCLES:-30}"

echo "== crash test with webhooks (${CRASH_WEBHOOK_CYCLES:-8} cycles, about 40 s)"
# The same kills with a subscription delivering to a Standard Webhooks
# receiver in the driver: after the last restart every acknowledged change's
# event must arrive, duplicates only under one webhook-id, every signature
# valid (crashtest/webhook.go). Most of the time is the wait for the last
# deliveries: a killed process's leases hold them for 25 s (-webhook-lease).
go run ./crashtest -bin "$crash_bin/neostore-secrets" -cycles "${CRASH_WEBHOOK_CYCLES:-8}" -webhook

echo "== all tests passed"
