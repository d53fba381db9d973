#!/bin/sh
# Failover time after kill -9 of the active controller, measured by the process-level
# harness (services/heartbeat/tests/harness.rs: two real star-heartbeat daemons, a shared
# disk file, a witness, stand-ins for star-target and star-takeover), N runs at the lab's
# [timeouts] (board/examples/lab-ctl*.star.toml) and N at the EBS defaults
# (node_config's Timeouts::default). Writes bench/results/failover.txt: the median time
# from kill to the survivor's `target promote` and `takeover acquire`, beside the
# derivation from services/heartbeat/src/timing.rs.
#
#   bench/failover.sh [N]        (default N=3; each run takes about a minute)
set -eu
N=${1:-3}
cd "$(dirname "$0")/.."
out=bench/results/failover.txt
mkdir -p bench/results
cargo build -q -p star-heartbeat --tests

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

{
  echo "# star-heartbeat failover after kill -9 of the active ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r))"
  echo "# N=$N runs per timing; stand-ins answer target and takeover at once, so the"
  echo "# measured time is detect + fence + the ownership write."
  for timing in lab ebs; do
    promote=""; acquire=""
    i=0
    while [ "$i" -lt "$N" ]; do
      i=$((i + 1))
      line=$(STAR_HARNESS_TIMING=$timing cargo test -q -p star-heartbeat --test harness \
        kill_9_of_the_active -- --nocapture 2>/dev/null | grep '^FAILOVER' || true)
      p=$(echo "$line" | sed -n 's/.*kill->target_promote_ms=\([0-9]*\).*/\1/p')
      a=$(echo "$line" | sed -n 's/.*kill->takeover_acquire_ms=\([0-9]*\).*/\1/p')
      [ -n "$p" ] && promote="$promote $p" && acquire="$acquire $a"
    done
    echo
    echo "## $timing"
    echo "runs (kill -> target promote, ms):$promote"
    echo "median kill -> target promote:   $(printf '%s\n' $promote | median) ms"
    echo "median kill -> takeover acquire: $(printf '%s\n' $acquire | median) ms"
    echo "derivation (timing.rs, with the default step timeouts target 5 s, takeover 15 s):"
    STAR_HARNESS_TIMING=$timing cargo test -q -p star-heartbeat --test harness \
      the_timing_derivation_names_its_terms -- --nocapture 2>/dev/null | grep '^  ' || true
  done
} > "$out"
cat "$out"
