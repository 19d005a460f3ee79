#!/usr/bin/env bash
# Runs the throughput benchmark (TestThroughput in this directory) at
# measurement size, with every arm, including scheduler-plugins'
# Coscheduling plus CapacityScheduling.
#
# Environment (all optional): LOCUS_BENCH_NODES (1000), LOCUS_BENCH_PODS
# (2000 per arm and round), LOCUS_BENCH_ROUNDS (3), LOCUS_BENCH_GANG_SIZE (8),
# LOCUS_BENCH_CERTIFIED (0.5), LOCUS_BENCH_ARMS (default,locus,
# locus-features,locus-gang,peer-gang), LOCUS_BENCH_OUT (a JSON file).
# Arguments go to "go test", e.g. -cpuprofile=/tmp/cpu.out.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
GO=${GO:-go}
export LOCUS_BENCH=1
exec "$GO" test -tags bench_peer \
  -run '^TestThroughput$' -count=1 -v -timeout 90m ./test/bench/ "$@"
