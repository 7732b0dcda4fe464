#!/usr/bin/env bash
# The callback ceiling comparison of issue 15: a bare chi handler (POST
# /api/calls reads the body and answers 202) and botd (emulator mode, default
# settings except BOTD_INBOUND_AUTH=off), each serving with GOMAXPROCS=1 pinned
# to core 0 while the load runs pinned to core 1. Runs alternate, bare then
# botd, ROUNDS times. Each round is a closed loop at CONC connections for
# SECS seconds, by wrk (scripts/wrk-callback.lua); its rate is that server's
# ceiling. wrk, not botd-loadgen, because on one core Go's HTTP client tops
# out below the bare handler (the bare server's core was a third idle under
# botd-loadgen -mode max): the ratio would be the client's. The script
# installs wrk with apt-get when it is missing and it can. Then both servers
# get an open-loop run by botd-loadgen at half of botd's mean ceiling, and
# their p99 and CPU per request (from /proc) are printed. The payload (PAYLOAD) is the 847-byte roster notification of
# invite example 1, spread over CALLS call ids.
#
# botd keeps its calls as STATE says (BOTD_STATE: journal, the default, or
# memory), each start in a new, empty data directory.
#
# With AUTH=both (the default) each round also runs botd with
# BOTD_INBOUND_AUTH=on, the load generator posting every notification with
# the one token botd's embedded emulator signs its callbacks with (as Graph
# reuses one token), and the script prints auth on / auth off as well; and
# the bare handler with that same header, which it ignores, so that what
# net/http and the kernel lose to the longer request shows apart from
# botd's own token check.
# AUTH=off skips those rounds.
#
# With DECODE=1 each round also runs the bare handler that decodes each
# body with botd's own decoder (botd-loadgen -mode decode-server) and prints
# its ratio to the bare handler: what no botd callback can beat, since
# every callback decodes its body.
#
#   scripts/bench-webhook.sh                 # 2 rounds of 10 s
#   ROUNDS=1 SECS=5 scripts/bench-webhook.sh
#   STATE=memory scripts/bench-webhook.sh    # the journal off
#   AUTH=off scripts/bench-webhook.sh        # no auth-on rounds
#   PAYLOAD=a.json,b.json scripts/bench-webhook.sh
#                                            # other notifications: each call
#                                            # gets the files in turn (the
#                                            # open loop posts the first)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-2}
SECS=${SECS:-10}
CONC=${CONC:-50}
CALLS=${CALLS:-1000}
BARE_ADDR=${BARE_ADDR:-127.0.0.1:18081}
BOTD_ADDR=${BOTD_ADDR:-127.0.0.1:18080}
ADMIN_ADDR=${ADMIN_ADDR:-127.0.0.1:19090}
EMU_ADDR=${EMU_ADDR:-127.0.0.1:17070}
STATE=${STATE:-journal}
AUTH=${AUTH:-both}
DECODE=${DECODE:-0}
case "$AUTH" in both|off) ;; *) echo "AUTH must be both or off" >&2; exit 2 ;; esac

tmp=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== build"
go build -o "$tmp/botd" ./cmd/botd
go build -o "$tmp/botd-loadgen" ./cmd/botd-loadgen

if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  SRV=(taskset -c 0); GEN=(taskset -c 1)
  echo "pinning: server on core 0, load generator on core 1"
else
  SRV=(); GEN=()
  echo "taskset missing or fewer than 2 cores: running UNPINNED, figures are not comparable with pinned ones"
fi
if ! command -v wrk >/dev/null 2>&1; then
  echo "== installing wrk"
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; } || true
  elif command -v sudo >/dev/null 2>&1; then sudo apt-get install -y wrk >/dev/null 2>&1 || true
  fi
  command -v wrk >/dev/null 2>&1 || { echo "wrk is missing and could not be installed (apt-get install wrk)" >&2; exit 1; }
fi
echo "wrk: $(wrk -v 2>&1 | head -1)"
echo "machine: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p'), $(nproc) CPUs"

# free fails when something already answers on the address: a server left
# from an earlier run would be measured instead of the one just started.
free() { # host:port
  if curl -s -o /dev/null --max-time 1 "http://$1/"; then
    echo "something already listens on $1: stop it first (or set BARE_ADDR, BOTD_ADDR, ADMIN_ADDR, EMU_ADDR)" >&2
    exit 1
  fi
}

wait_up() { # url
  for _ in $(seq 200); do
    if curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -d '{}' "$1"; then return 0; fi
    sleep 0.05
  done
  echo "server at $1 did not come up" >&2; exit 1
}

start_bare() { # [mode]
  free "$BARE_ADDR"
  GOMAXPROCS=1 "${SRV[@]}" "$tmp/botd-loadgen" -mode "${1:-bare-server}" -listen "$BARE_ADDR" >"$tmp/bare.log" 2>&1 &
  pid=$!
  wait_up "http://$BARE_ADDR/api/calls"
}

starts=0
start_botd() { # [inbound-auth]
  starts=$((starts + 1))
  for a in "$BOTD_ADDR" "$ADMIN_ADDR" "$EMU_ADDR"; do free "$a"; done
  GOMAXPROCS=1 BOTD_INBOUND_AUTH="${1:-off}" BOTD_LISTEN="$BOTD_ADDR" BOTD_ADMIN_LISTEN="$ADMIN_ADDR" \
    BOTD_EMULATOR_LISTEN="$EMU_ADDR" BOTD_STATE="$STATE" BOTD_DATA_DIR="$tmp/data.$starts" \
    "${SRV[@]}" "$tmp/botd" >"$tmp/botd.log" 2>&1 &
  pid=$!
  wait_up "http://$BOTD_ADDR/api/calls"
}

stop() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
}

gen() { # url metrics-url args...
  local url=$1 metrics=$2; shift 2
  "${GEN[@]}" "$tmp/botd-loadgen" -url "$url" -metrics "$metrics" -calls "$CALLS" -concurrency "$CONC" -payload "${PAYLOAD%%,*}" "$@"
}

# ceiling url [authorization]: wrk's closed loop, prints "rate errors".
PAYLOAD=${PAYLOAD:-cmd/botd-loadgen/notification.json}
payload=$PAYLOAD
ceiling() {
  local out
  out=$(WRK_PAYLOAD="$payload" WRK_CALLS="$CALLS" WRK_AUTH="${2:-}" "${GEN[@]}" wrk -t1 -c"$CONC" -d"${SECS}s" \
    -s scripts/wrk-callback.lua "$1")
  local rate errs
  rate=$(echo "$out" | awk '/^Requests\/sec:/ {printf "%d", $2}')
  errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr -s ' ' | paste -sd ';' -)
  echo "$rate ${errs:-errors: 0}"
}

p99() { sed -n 's/.*p99=\([^ ]*\).*/\1/p' | head -1; }

bare_sum=0; botd_sum=0; auth_sum=0; hdr_sum=0; dec_sum=0
token_url="http://$EMU_ADDR/emulator/callback-token"
for round in $(seq "$ROUNDS"); do
  start_bare
  read -r b errs < <(ceiling "http://$BARE_ADDR/api/calls")
  stop
  echo "round $round bare: $b req/s ($errs)"

  start_botd
  read -r d errs < <(ceiling "http://$BOTD_ADDR/api/calls")
  echo "round $round botd: $d req/s ($errs; $(curl -s "http://$ADMIN_ADDR/metrics" | grep -E '^botd_callback_requests_total\{code="(202|4..|5..)"\} [1-9]' | tr '\n' ' '))"
  stop
  bare_sum=$((bare_sum + b)); botd_sum=$((botd_sum + d))
  awk -v a="$d" -v b="$b" -v r="$round" 'BEGIN { if (b > 0) printf "round %s ratio botd/bare: %.2f (the bare handler measured just before)\n", r, a / b }'

  if [ "$DECODE" = 1 ]; then
    start_bare decode-server
    read -r x errs < <(ceiling "http://$BARE_ADDR/api/calls")
    stop
    dec_sum=$((dec_sum + x))
    echo "round $round bare + botd's decoder: $x req/s ($errs)"
    awk -v a="$x" -v b="$b" -v r="$round" 'BEGIN { if (b > 0) printf "round %s ratio bare + decoder/bare: %.2f\n", r, a / b }'
  fi

  if [ "$AUTH" = both ]; then
    start_botd on
    token=$(curl -s "$token_url" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
    [ -n "$token" ] || { echo "no callback token from $token_url" >&2; exit 1; }
    read -r a errs < <(ceiling "http://$BOTD_ADDR/api/calls" "Bearer $token")
    echo "round $round botd, auth on: $a req/s ($errs; $(curl -s "http://$ADMIN_ADDR/metrics" | grep -E '^botd_callback_requests_total\{code="(202|4..|5..)"\} [1-9]' | tr '\n' ' '))"
    stop
    auth_sum=$((auth_sum + a))
    awk -v a="$a" -v b="$d" -v r="$round" 'BEGIN { if (b > 0) printf "round %s ratio auth on/off: %.2f\n", r, a / b }'

    # The same header to the bare handler, which ignores it: what net/http
    # and the kernel alone lose to a request that carries the token.
    start_bare
    read -r h errs < <(ceiling "http://$BARE_ADDR/api/calls" "Bearer $token")
    stop
    hdr_sum=$((hdr_sum + h))
    echo "round $round bare, with the same Authorization header: $h req/s ($errs)"
    awk -v a="$h" -v b="$b" -v r="$round" 'BEGIN { if (b > 0) printf "round %s ratio bare with/without the header: %.2f\n", r, a / b }'
  fi
done
bare=$((bare_sum / ROUNDS)); botd=$((botd_sum / ROUNDS)); auth=$((auth_sum / ROUNDS)); hdr=$((hdr_sum / ROUNDS))
half=$((botd / 2))

# cpu_ticks: the server's user + system CPU so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0; }
# cpu_per_req ticks requests: CPU microseconds per request.
cpu_per_req() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "n/a" }'; }

echo "== open loop at $half req/s (half of botd's ceiling) for ${SECS}s"
start_bare
c0=$(cpu_ticks)
bare_p99=$(gen "http://$BARE_ADDR/api/calls" "" -mode notify -rate "$half" -duration "${SECS}s" | tee "$tmp/bare-half.txt" | p99)
bare_cpu=$(cpu_per_req $(($(cpu_ticks) - c0)) $((half * SECS)))
stop
start_botd
c0=$(cpu_ticks)
botd_p99=$(gen "http://$BOTD_ADDR/api/calls" "http://$ADMIN_ADDR/metrics" -mode notify -rate "$half" -duration "${SECS}s" | tee "$tmp/botd-half.txt" | p99)
botd_cpu=$(cpu_per_req $(($(cpu_ticks) - c0)) $((half * SECS)))
stop
for s in bare botd; do
  echo "$s: $(grep -E '^(achieved|errors|latency):' "$tmp/$s-half.txt" | tr -s ' ' | paste -sd ';' -)"
done

echo "== result (BOTD_STATE=$STATE)"
echo "bare chi handler: $bare req/s"
echo "botd:             $botd req/s"
awk -v a="$botd" -v b="$bare" 'BEGIN { if (b > 0) printf "ratio botd/bare:  %.2f (goal: at least 0.80)\n", a / b }'
if [ "$DECODE" = 1 ]; then
  dec=$((dec_sum / ROUNDS))
  echo "bare + botd's decoder: $dec req/s"
  awk -v a="$dec" -v b="$bare" 'BEGIN { if (b > 0) printf "ratio bare + decoder/bare: %.2f (the most any botd callback could reach)\n", a / b }'
fi
if [ "$AUTH" = both ]; then
  echo "botd, auth on:    $auth req/s"
  awk -v a="$auth" -v b="$botd" 'BEGIN { if (b > 0) printf "ratio auth on/off: %.2f (goal: at least 0.90)\n", a / b }'
  echo "bare, with the header: $hdr req/s"
  awk -v h="$hdr" -v b="$bare" -v a="$auth" -v d="$botd" 'BEGIN { if (b > 0 && d > 0 && h > 0) printf "ratio bare with/without the header: %.2f (what any handler loses to it); botd auth on/off over that: %.2f (botd'"'"'s own check)\n", h / b, (a / d) / (h / b) }'
fi
echo "p99 at $half req/s: bare $bare_p99, botd $botd_p99 (goal: botd at most 1.5x bare)"
# The same rate for both: a server's CPU per request falls as its rate
# rises (one wake-up serves more requests), so this compares the two
# without the closed loop's advantage to the faster one. From /proc/PID/stat.
echo "CPU per request at $half req/s: bare $bare_cpu µs, botd $botd_cpu µs (user + system, the server's process)"
