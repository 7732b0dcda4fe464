#!/usr/bin/env bash
# The README's two commands, read out of README.md's Quickstart so that CI
# runs exactly what a new user is told to run:
#   readme-commands.sh run    prints the command that runs botd with its
#                             embedded defaults
#   readme-commands.sh test   prints the command that runs the tests
#   readme-commands.sh smoke  waits for a botd started by the run command to
#                             be ready, creates a call through the admin API
#                             and waits for it to be established (bounded
#                             waits; for .ci/run, not a test of timing)
set -euo pipefail
cd "$(dirname "$0")/.."

# first indented code line after the paragraph that starts with $1
command_after() {
  awk -v lead="$1" '
    index($0, lead) == 1 { found = 1; next }
    found && /^    [^ ]/ { sub(/^    /, ""); print; exit }
  ' README.md
}

admin="${BOTD_ADMIN_URL:-http://127.0.0.1:9090}"

case "${1:-}" in
run)  cmd=$(command_after "Run botd with its embedded defaults") ;;
test) cmd=$(command_after "Run the tests") ;;
smoke)
  # go run compiles botd first: on empty caches that takes a while.
  for _ in $(seq 1 300); do
    curl -fsS "$admin/readyz" >/dev/null 2>&1 && break
    sleep 1
  done
  curl -fsS "$admin/readyz" >/dev/null || { echo "botd did not turn ready at $admin/readyz" >&2; exit 1; }
  echo "botd ready at $admin/readyz"
  body=$(curl -fsS -XPOST "$admin/v1/calls" -H 'Content-Type: application/json' \
    -d @examples/create-p2p-service-media.json)
  # the call's own id is the body's first member
  id=$(printf '%s' "$body" | sed -n 's/^{ *"id" *: *"\([^"]*\)".*/\1/p')
  [ -n "$id" ] || { echo "POST /v1/calls gave no call id: $body" >&2; exit 1; }
  for _ in $(seq 1 60); do
    if curl -fsS "$admin/v1/calls/$id" | grep -q '"state" *: *"established"'; then
      echo "call $id established"
      exit 0
    fi
    sleep 1
  done
  echo "call $id was not established: $(curl -sS "$admin/v1/calls/$id")" >&2
  exit 1
  ;;
*) echo "usage: readme-commands.sh run|test|smoke" >&2; exit 2 ;;
esac
[ -n "$cmd" ] || { echo "README.md has no $1 command in its Quickstart" >&2; exit 1; }
printf '%s\n' "$cmd"
