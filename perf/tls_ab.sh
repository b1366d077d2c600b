#!/usr/bin/env bash
# TLS vs plaintext on one broker binary, alternating in one sitting (issue 20, decision 0013):
# a fresh broker per run with a PLAINTEXT and an SSL listener (certificates made here with
# the openssl CLI), the same `sluice bench` command sent to one listener or the other.
#
#   perf/tls_ab.sh SLUICE_BIN ROUNDS -- produce --acks 1 --duration 6s [more bench flags]
#   AB_PRELOAD="produce --topic ab --records 300000 --acks 1" \
#     perf/tls_ab.sh SLUICE_BIN 3 -- consume --topic ab --records 300000
#
# AB_PRELOAD runs (unmeasured, over PLAINTEXT) before each measured run. Prints one line per
# run: MB/s, latency, broker CPU-s/GB, peak RSS, and where the broker's work went: each
# shard's busy seconds (`sluice_shard_busy_seconds_total`, shard 0 / shard 1 ...) and the
# connections that moved to their partitions' shard (`sluice_connections_moved_total`). A run
# whose busy time is split over two shards served its connection across shards (decision
# 0004). On this kernel TLS is the copy path (no tls ULP): see sluice_tls_ktls_unavailable.
set -euo pipefail
BIN="${1:?usage: perf/tls_ab.sh SLUICE_BIN ROUNDS -- BENCH_ARGS...}"
ROUNDS="${2:?usage: perf/tls_ab.sh SLUICE_BIN ROUNDS -- BENCH_ARGS...}"
shift 2
[[ "${1:-}" == "--" ]] && shift
[[ $# -gt 0 ]] || { echo "perf/tls_ab.sh: no bench arguments after --" >&2; exit 2; }

# shellcheck source=perf/broker_lib.sh
source "$(dirname "$0")/broker_lib.sh"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(
  cd "$WORK"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
    -out ca.pem -days 2 -subj "/CN=tls_ab CA" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n' > b.ext
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout broker.key \
    -out broker.csr -subj "/CN=localhost" 2>/dev/null
  openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem \
    -days 2 -extfile b.ext 2>/dev/null
)
for round in $(seq 1 "$ROUNDS"); do
  for side in plaintext tls; do
    data="$WORK/data"
    rm -rf "$data"
    port="$(free_port)"; ssl="$(free_port)"; admin="$(free_port)"
    cat > "$WORK/sluice.toml" <<TOML
listeners = "PLAINTEXT://127.0.0.1:$port,SSL://127.0.0.1:$ssl"
ssl_certificate_location = "$WORK/broker.pem"
ssl_key_location = "$WORK/broker.key"
TOML
    "$BIN" serve --config "$WORK/sluice.toml" --data-dir "$data" \
      --admin-listen "127.0.0.1:$admin" > "$WORK/broker.log" 2>&1 &
    pid=$!
    wait_for_port "$port" || true
    if [[ -n "${AB_PRELOAD:-}" ]]; then
      # shellcheck disable=SC2086 # AB_PRELOAD is a list of bench arguments
      "$BIN" bench $AB_PRELOAD --bootstrap-server "127.0.0.1:$port" > "$WORK/preload.log" 2>&1 ||
        echo "round $round $side: preload failed: $(tail -1 "$WORK/preload.log")"
    fi
    target=(--bootstrap-server "127.0.0.1:$port")
    [[ $side == tls ]] && target=(--bootstrap-server "127.0.0.1:$ssl" \
      --security-protocol SSL --ssl-ca-location "$WORK/ca.pem")
    out="$("$BIN" bench "$@" "${target[@]}" --broker-pid "$pid" 2>&1)" || true
    # Shard metrics are snapshots refreshed every few seconds: let one refresh pass.
    sleep 3
    metrics="$(curl -s "http://127.0.0.1:$admin/metrics" || true)"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    busy="$(grep -E '^sluice_shard_busy_seconds_total\{' <<<"$metrics" | awk '{printf "%s%.1f", sep, $2; sep=" / "}' || true)"
    moved="$(grep -E '^sluice_connections_moved_total\{' <<<"$metrics" | awk '{n += $2} END {print n + 0}' || true)"
    rate="$(grep -oE '[0-9.]+ MB/s' <<<"$out" | head -1)"
    latency="$(grep -E '^latency' <<<"$out" | head -1 | sed 's/^latency ([a-z_]*) *//')"
    cpu="$(grep 'broker CPU' <<<"$out" | grep -oE '[0-9.]+ CPU-s/GB|peak RSS [0-9.]+ MB' | paste -sd' ')"
    [[ -n "$rate" ]] || rate="failed: $(tail -1 <<<"$out")"
    echo "round $round $side | $rate | $latency | $cpu | busy s by shard $busy | moved $moved"
  done
done
