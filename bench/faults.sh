#!/usr/bin/env bash
# The fault suite against a fresh lab, N runs of every scenario (RUNS, default 3), with
# the client's longest gap between two acknowledged writes per scenario: the outage an
# initiator sees. Writes bench/results/faults.txt. Needs root (the lab does).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
out=bench/results/faults.txt
export LAB_OUT=${LAB_OUT:-$PWD/out/lab-bench}
export LAB_NETNS=${LAB_NETNS:-star-lab-bench}
mkdir -p "$LAB_OUT"
rm -f "$LAB_OUT/faults.jsonl"
lab/lab.sh up > /dev/null
trap 'lab/lab.sh down > /dev/null 2>&1 || true' EXIT
summary=$(lab/faults.py --runs "$runs" --results "$LAB_OUT/faults.jsonl" 2> "$LAB_OUT/faults.log") || true
{
  echo "# The fault suite under the verifying client ($(date -u +%Y-%m-%d), $runs runs per scenario)"
  echo "host: $(nproc) cores; QEMU $(qemu-system-x86_64 --version | head -1 | awk '{print $4}'), TCG, 1 vCPU and 512 MiB per VM"
  echo "timeouts: board/examples/lab-ctl1.star.toml (interval 100 ms, io 400 ms, peer_dead 1 s, watchdog 1 s)"
  echo "client: tests/verify-client.py, WRITE(16) FUA of one 512-byte block at a time, 5 s command timeout"
  echo
  printf '%-32s %5s %6s %5s %9s %9s %11s\n' scenario runs lost dual "gap med s" "gap max s" "failover s"
  python3 - "$LAB_OUT/faults.jsonl" <<'PY'
import json, statistics, sys
by = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    by.setdefault(r["scenario"], []).append(r)
for name, rs in by.items():
    gaps = [r.get("max_gap_s") or 0 for r in rs]
    # The survivor's own takeover time (fault to "promoting → active"), when there was one.
    took = [r["failover_s"] for r in rs if r.get("failover_s") is not None]
    print(f"{name:32} {len(rs):5} {sum(r.get('lost') or 0 for r in rs):6} "
          f"{sum(r['dual_active'] for r in rs):5} {statistics.median(gaps):9.2f} {max(gaps):9.2f} "
          f"{(f'{statistics.median(took):.2f}' if took else '-'):>11}"
          + ("   (incomplete: " + "; ".join(r["error"] for r in rs if r.get("error")) + ")"
             if any(r.get("error") for r in rs) else ""))
PY
  echo
  echo "$summary"
} > "$out"
cat "$out"
