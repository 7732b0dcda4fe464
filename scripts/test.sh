#!/usr/bin/env bash
# The project's test command (README "Run the tests"): format, vet,
# staticcheck, the race-enabled test suite, and a short run of every fuzz
# target. Each step prints what it does; any failure fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"

STATICCHECK_VERSION=2026.2.2
FUZZTIME=${FUZZTIME:-10s}

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
if ! command -v staticcheck >/dev/null 2>&1; then
  go install "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}"
fi
staticcheck ./...

echo "== fuzz targets (${FUZZTIME} each)"
# Every Fuzz* function in the tree runs for a bounded time; the seed corpus
# in testdata/fuzz is kept, and a crash fails the run.
grep -rl --include='*_test.go' '^func Fuzz' . | while read -r file; do
  pkg=$(dirname "$file")
  for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    echo "-- $pkg $fn"
    go test -run='^$' -fuzz="^${fn}\$" -fuzztime="$FUZZTIME" "$pkg"
  done
done

echo "== go test -race"
go test -race -count=1 ./...
