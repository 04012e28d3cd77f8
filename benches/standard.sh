#!/usr/bin/env bash
# The standard benchmark run: the storage floor and every load scenario, on
# SQLite and on PostgreSQL, into one Markdown file (docs/benchmarks.md says
# how to read it).
#
#   bash benches/standard.sh [output.md]     (default: target/benchmarks.md)
#
# XLRS_BENCH_POSTGRES names the PostgreSQL server (without a database);
# unset, postgres://postgres@127.0.0.1:5432. XLRS_BENCH_FILL and
# XLRS_BENCH_SECONDS change the store size and the time per scenario.
# Nothing else should run on the machine meanwhile: it takes about 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-target/benchmarks.md}
postgres=${XLRS_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
fill=${XLRS_BENCH_FILL:-1000000}
seconds=${XLRS_BENCH_SECONDS:-10}

# Built once before anything is timed.
cargo bench --locked --no-run --bench load --bench floor

mkdir -p "$(dirname "$out")"
{
    echo "# xlrs benchmarks, $(date -u +%Y-%m-%d) at $(git rev-parse --short HEAD)"
    echo
    echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB"
    for db in sqlite postgres; do
        args=()
        [ "$db" = postgres ] && args=(--postgres "$postgres")
        echo
        echo "## Storage floor, $db"
        echo
        cargo bench --locked --bench floor -- --statements 200000 --group 400 "${args[@]}"
        echo
        echo "## Load scenarios, $db"
        echo
        cargo bench --locked --bench load -- --fill "$fill" --seconds "$seconds" "${args[@]}"
    done
} 2>&1 | grep -v -E '^\s*(Finished|Running|Compiling)' | tee "$out"
echo "written to $out"
