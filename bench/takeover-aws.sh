#!/bin/sh
# The AWS takeover methods against moto's server (services/aws/examples/takeover_bench.rs):
# the median time of N acquires per method (secondary IP, two route tables, Route 53),
# alternating between two controllers so that each is a real move, N forced stops, and
# the API requests each makes. moto answers at once and Route 53 is INSYNC at once, so
# this measures STAR's side; on AWS add one round trip per request and, for Route 53,
# the propagation until INSYNC. Writes bench/results/takeover-aws.txt.
#
#   bench/takeover-aws.sh [N]        (default N=20; needs python3 -m pip install 'moto[server]')
set -eu
N=${1:-20}
cd "$(dirname "$0")/.."
out=bench/results/takeover-aws.txt
mkdir -p bench/results
cargo build -q --release -p star-aws --example takeover_bench
moto=$(python3 -c 'import moto; print(moto.__version__)')
{
  echo "# star-aws takeover methods against moto $moto ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -r), $(nproc) cores)"
  echo "# release build; each acquire confirmed through Describe/Get before it returns"
  cargo run -q --release -p star-aws --example takeover_bench -- "$N"
  echo "# secondary IP: moto keeps a reassigned address on the old ENI too, so every move here"
  echo "# includes acquire's removal of that stale copy (1 of the 7 requests); Route 53 is"
  echo "# INSYNC at once in moto, so no GetChange polls; StopInstances goes straight to stopped."
} > "$out"
cat "$out"
