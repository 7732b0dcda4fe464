#!/usr/bin/env bash
# The project's test command (README "Quickstart"): format, vet,
# staticcheck, a render of every deploy overlay, a bounded run of every fuzz
# target, and the race-enabled test suite. Any failure fails the run.
#
# Every Go tool it runs is pinned in go.mod's tool block and run with
# `go tool`, so nothing is installed by hand and go.sum pins each one: a
# machine with Go and nothing else (empty GOPATH/bin, empty module and build
# caches) runs it as it is. .ci/run proves that on every submission.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-3s}

# Each stage prints the seconds the run has taken so far, so a slow stage
# shows in CI output.
stage() { echo "== $* (at ${SECONDS}s)"; }

stage "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

stage "go vet"
go vet ./...

stage "staticcheck (go tool, pinned in go.mod)"
go tool staticcheck ./...

stage "kustomize build (go tool, pinned in go.mod; the engine of kubectl kustomize)"
for overlay in deploy/overlays/*/; do
  go tool kustomize build "$overlay" >/dev/null
  echo "rendered $overlay"
done

stage "fuzz targets (${FUZZTIME} each)"
# Every Fuzz* function runs for a bounded time; its seed corpus is f.Add
# plus testdata/fuzz, and a crash fails the run (the failing input is then
# in testdata/fuzz, to commit as a regression test). Go 1.26's fuzz runner
# can end a timed run with "context deadline exceeded" and no failing input
# (golang/go#75804); such a run is tried once more, a real crash never.
fuzz() {
  local pkg=$1 fn=$2 out
  if out=$(go test -run='^$' -fuzz="^${fn}\$" -fuzztime="$FUZZTIME" "$pkg" 2>&1); then
    echo "$out" | tail -1
    return 0
  fi
  if echo "$out" | grep -q 'context deadline exceeded' && ! echo "$out" | grep -q 'Failing input written'; then
    echo "$out" | tail -3
    echo "(runner deadline flake, golang/go#75804: once more)"
    go test -run='^$' -fuzz="^${fn}\$" -fuzztime="$FUZZTIME" "$pkg" 2>&1 | tail -1
    return "${PIPESTATUS[0]}"
  fi
  echo "$out"
  return 1
}
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
  pkg=$(dirname "$file")
  for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    echo "-- $pkg $fn"
    fuzz "$pkg" "$fn"
  done
done

stage "go test -race"
go test -race -count=1 ./...

echo "== done in ${SECONDS}s"
