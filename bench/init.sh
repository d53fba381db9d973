#!/usr/bin/env bash
# star-init benchmarks: binary size, resident memory with ten services, wakeups while
# idle, and the time from exec to the first service started. Writes
# bench/results/init.txt. Needs `make static` first (make bench does it).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/x86_64-unknown-linux-gnu/release
INIT=$BIN/star-init
[ -x "$INIT" ] || { echo "bench/init.sh: $INIT missing: run make static" >&2; exit 1; }
work=$(mktemp -d /tmp/star-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
out=bench/results/init.txt

services() {
  for i in $(seq 1 10); do
    printf '[[service]]\nname = "s%s"\nexec = ["sleep", "100000"]\n' "$i"
  done
}

config() { # $1 = extra [init]/[watchdog] text
  printf '[init]\ncontrol_socket = "%s/init.sock"\nnotify_socket = "%s/notify.sock"\n%s\n' \
    "$work" "$work" "$1"
  services
}

wait_ready() { # $1 = log file
  for _ in $(seq 1 500); do
    grep -q "star: appliance ready" "$1" && return 0
    sleep 0.01
  done
  echo "bench/init.sh: star-init never became ready" >&2; cat "$1" >&2; exit 1
}

ctxt() { # voluntary + involuntary context switches of a pid: each is one wakeup
  awk '/ctxt_switches/ {n += $2} END {print n}' "/proc/$1/status"
}

{
  echo "# star-init benchmarks"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(nproc) cores, $(uname -r)"
  echo "binary: static glibc, release profile (opt-level s, LTO, stripped)"
  echo
  echo "## size"
  echo "star-init: $(stat -c %s "$INIT") bytes"
  echo "star:      $(stat -c %s "$BIN/star") bytes"
} > "$out"

# Starts star-init on a services file, waits for ready, and prints its resident and peak
# memory (KiB) and its context switches over 30 idle seconds: "rss hwm wakeups".
idle_run() { # $1 = services file, $2 = log
  "$INIT" --config "$1" > "$2" 2>&1 &
  local pid=$!
  wait_ready "$2"
  sleep 1
  local rss hwm before after
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  hwm=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  before=$(ctxt $pid)
  sleep 30
  after=$(ctxt $pid)
  kill -TERM $pid; wait $pid || true
  echo "$rss $hwm $((after - before))"
}

# Ten services, no hardware watchdog.
config "" > "$work/init.toml"
read -r rss hwm wakeups < <(idle_run "$work/init.toml" "$work/log")
# The same with a hardware watchdog (a FIFO stands in; timeout 30 s: one feed every 10 s).
mkfifo "$work/wd"
cat "$work/wd" > /dev/null &
config "[watchdog]
device = \"$work/wd\"
timeout_sec = 30" > "$work/init-wd.toml"
read -r _ _ wakeups_wd < <(idle_run "$work/init-wd.toml" "$work/log-wd")
{
  echo
  echo "## memory, ten services running"
  echo "VmRSS: $rss KiB (peak VmHWM: $hwm KiB)"
  echo
  echo "## idle wakeups over 30 s, ten services, no watchdog"
  echo "context switches: $wakeups"
  echo
  echo "## idle wakeups over 30 s, ten services, watchdog fed every 10 s"
  echo "context switches: $wakeups_wd"
} >> "$out"

# exec to first service: the service prints CLOCK_REALTIME in ns as its first act.
printf '[init]\ncontrol_socket = "%s/init.sock"\nnotify_socket = "%s/notify.sock"\n[[service]]\nname = "first"\nexec = ["date", "+%%s%%N"]\nrestart = "never"\n' \
  "$work" "$work" > "$work/first.toml"
samples=()
for _ in $(seq 1 20); do
  t0=$(date +%s%N)
  "$INIT" --config "$work/first.toml" > "$work/first.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 500); do grep -q "^first: [0-9]" "$work/first.log" && break; sleep 0.01; done
  kill -TERM $pid; wait $pid || true
  t1=$(sed -n 's/^first: \([0-9]*\)$/\1/p' "$work/first.log")
  samples+=($(( (t1 - t0) / 1000 )))
done
sorted=$(printf '%s\n' "${samples[@]}" | sort -n)
median=$(echo "$sorted" | sed -n '10p')
{
  echo
  echo "## exec of star-init to the first service's first instruction (20 runs, µs)"
  echo "includes fork+exec of date(1) itself"
  echo "min $(echo "$sorted" | head -1), median $median, max $(echo "$sorted" | tail -1)"
} >> "$out"
cat "$out"
