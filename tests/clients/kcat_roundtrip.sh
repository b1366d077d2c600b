#!/usr/bin/env bash
# Round trip through the broker with kcat (Debian's kcat 1.7.1, librdkafka 2.0.2).
#
# For each codec (none, gzip, snappy, lz4, zstd) and once with idempotence on: create a
# 3-partition topic (kcat has no admin API: `sluice topic create`, or the Python admin client
# with --python), produce keyed lines with -K: and headers with -H, consume everything back
# with -C -e -f, and check count, per-partition order and offsets, key placement, values and
# headers, and ListOffsets (-Q). Exits non-zero with a clear message on the first failure.
#
# Usage: kcat_roundtrip.sh --bootstrap HOST:PORT [--sluice PATH | --python PATH]
#        [--skip-watermark-check]
set -euo pipefail

MESSAGES_PER_CALL=30        # each kcat -P call carries one header set
CALLS_PER_CODEC=4           # so 120 records per codec
PARTITIONS=3
KCAT_TIMEOUT_S=60           # bound on any single kcat run
UTF8_HEADER_VALUE=$'h\xc3\xa9llo'  # non-ASCII header bytes must survive untouched

bootstrap=""
sluice_bin=""
python_bin=""
skip_watermarks=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap) bootstrap="$2"; shift 2 ;;
        --sluice) sluice_bin="$2"; shift 2 ;;
        --python) python_bin="$2"; shift 2 ;;
        # Only for trying this script on brokers with a known ListOffsets bug (tansu 0.6).
        --skip-watermark-check) skip_watermarks=1; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [[ -z "$bootstrap" ]]; then
    echo "usage: $0 --bootstrap HOST:PORT [--sluice PATH | --python PATH]" >&2
    exit 2
fi
if ! command -v kcat >/dev/null; then
    echo "FAILED: kcat not found (install it: apt-get install -y kcat)" >&2
    exit 1
fi
if [[ -z "$sluice_bin" && -z "$python_bin" ]]; then
    sluice_bin="$(command -v sluice || true)"
fi
if [[ -z "$sluice_bin" && -z "$python_bin" ]]; then
    echo "FAILED: need --sluice PATH or --python PATH to create topics (kcat cannot)" >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fail() {
    echo "FAIL $*"
    echo "FAILED: $*" >&2
    exit 1
}
ok() { echo "ok   $*"; }

kcat_run() {
    timeout "$KCAT_TIMEOUT_S" kcat -b "$bootstrap" "$@"
}

create_topic() {
    local topic="$1"
    if [[ -n "$sluice_bin" ]]; then
        "$sluice_bin" topic create "$topic" --partitions "$PARTITIONS" \
            --replication-factor 1 --bootstrap-server "$bootstrap" \
            || fail "sluice topic create $topic failed"
    else
        "$python_bin" - "$bootstrap" "$topic" "$PARTITIONS" <<'EOF' || fail "creating $topic with the Python admin client failed"
import sys
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
fs = admin.create_topics([NewTopic(sys.argv[2], num_partitions=int(sys.argv[3]), replication_factor=1)])
fs[sys.argv[2]].result(timeout=30)
EOF
    fi
    # Metadata must show the partitions before producing (kcat would otherwise auto-create).
    local deadline=$((SECONDS + 30)) count=0
    while ((SECONDS < deadline)); do
        count=$(kcat_run -L -t "$topic" 2>/dev/null | grep -c "partition [0-9]*, leader [0-9]" || true)
        [[ "$count" == "$PARTITIONS" ]] && break
        sleep 0.2
    done
    [[ "$count" == "$PARTITIONS" ]] || fail "$topic: metadata shows $count partitions, want $PARTITIONS"
    ok "$topic: created with $PARTITIONS partitions (kcat -L)"
}

# The value of record `i` of run `label`: deterministic, so the consumer can rebuild it.
value_of() {
    local label="$1" i="$2"
    printf 'v-%s-%d-%0*d' "$label" "$i" $(((i * 37) % 300 + 1)) 0
}

roundtrip() {
    local label="$1"; shift
    local topic="kcat-$label-$RANDOM$RANDOM"
    echo "--- kcat $label: topic $topic"
    create_topic "$topic"
    local total=$((MESSAGES_PER_CALL * CALLS_PER_CODEC))
    local call i
    for ((call = 0; call < CALLS_PER_CODEC; call++)); do
        : >"$work/in"
        for ((i = call * MESSAGES_PER_CALL; i < (call + 1) * MESSAGES_PER_CALL; i++)); do
            printf 'key-%d:%s\n' $((i % 12)) "$(value_of "$label" "$i")" >>"$work/in"
        done
        kcat_run -P -t "$topic" -K: "$@" \
            -H "call=$call" -H "utf8=$UTF8_HEADER_VALUE" -H "dup=first" -H "dup=second" -H "empty=" \
            -X linger.ms=5 -X acks=all <"$work/in" \
            || fail "$topic: kcat -P (call $call) exited non-zero"
    done
    ok "$topic: produced $total records in $CALLS_PER_CODEC kcat -P calls ($*)"

    kcat_run -C -t "$topic" -o beginning -e -q \
        -f '%p\t%o\t%k\t%s\t%h\n' >"$work/out" \
        || fail "$topic: kcat -C exited non-zero"
    local got
    got=$(wc -l <"$work/out")
    [[ "$got" == "$total" ]] || fail "$topic: consumed $got records, produced $total"
    ok "$topic: consumed $got records"

    # Every check on the consumed lines in one pass; prints the first problem found.
    local problem
    problem=$(awk -F'\t' -v label="$label" -v per_call="$MESSAGES_PER_CALL" \
        -v utf8="$UTF8_HEADER_VALUE" '
        function bad(message) { print message; failed = 1; exit }
        function expected_value(i,   pad, s) {
            pad = (i * 37) % 300 + 1
            s = sprintf("%0" pad "d", 0)
            return "v-" label "-" i "-" s
        }
        {
            p = $1; o = $2; k = $3; v = $4; h = $5
            n = split(v, parts, "-")
            i = parts[3] + 0
            if (seen[i]++) { bad("duplicate record " i) }
            if (v != expected_value(i)) { bad("value of record " i " changed: " substr(v, 1, 60)) }
            if (k != "key-" (i % 12)) { bad("key of record " i " is " k) }
            want_h = "call=" int(i / per_call) ",utf8=" utf8 ",dup=first,dup=second,empty="
            if (h != want_h) { bad("headers of record " i " are [" h "], want [" want_h "]") }
            if ((k in key_part) && key_part[k] != p) { bad("key " k " in partitions " key_part[k] " and " p) }
            key_part[k] = p
            if (!(p in next_off)) { next_off[p] = 0; last_seq[p] = -1 }
            if (o != next_off[p]) { bad("partition " p " offset " o ", want " next_off[p]) }
            next_off[p]++
            if (i <= last_seq[p]) { bad("partition " p " out of order: record " i " after " last_seq[p]) }
            last_seq[p] = i
        }
        END {
            if (failed) exit
            used = 0
            for (p in next_off) used++
            if (used < 2) print "all records in one partition"
        }' "$work/out")
    [[ -z "$problem" ]] || fail "$topic: $problem"
    ok "$topic: no duplicates; keys, values and headers intact"
    ok "$topic: each key in one partition; per-partition offsets contiguous from 0, produce order kept"

    if ((skip_watermarks)); then
        echo "skip $topic: ListOffsets check (--skip-watermark-check)"
        return
    fi
    local p end sum=0 consumed_here
    for ((p = 0; p < PARTITIONS; p++)); do
        end=$(kcat_run -Q -t "$topic:$p:-1" 2>&1 | awk '/offset/ {print $NF}')
        consumed_here=$(awk -F'\t' -v p="$p" '$1 == p' "$work/out" | wc -l)
        [[ "$end" == "$consumed_here" ]] \
            || fail "$topic[$p]: ListOffsets latest is '$end', consumed $consumed_here"
        sum=$((sum + end))
    done
    ok "$topic: ListOffsets latest per partition matches consumed counts (total $sum)"
}

echo "$(kcat -V 2>&1 | grep -o 'Version.*librdkafka [0-9.]*')"
for codec in none gzip snappy lz4 zstd; do
    roundtrip "$codec" -z "$codec"
done
roundtrip idempotent -z lz4 -X enable.idempotence=true
echo "all checks passed"
