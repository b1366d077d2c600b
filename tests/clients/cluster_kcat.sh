#!/usr/bin/env bash
# kcat (librdkafka) against a Sluice cluster (issue 17). kcat has no admin API, so the topic
# (3 partitions, replication factor 3, min.insync.replicas=2) is made with `sluice topic
# create`; then kcat's metadata listing (-L) must show every broker and every partition with
# three replicas all in sync; kcat produces keyed lines with acks=all (librdkafka sends each
# partition's batches to its leader), reads them all back as a balanced consumer group
# (-G: FindCoordinator, JoinGroup, SyncGroup, fetches from the leaders, offset commits),
# and a second run of the same group after the commit finds nothing left to read.
# Exits non-zero with a clear message on the first failure.
#
# Usage: cluster_kcat.sh --bootstrap HOST:PORT[,HOST:PORT...] --sluice PATH [--brokers N]
set -euo pipefail

PARTITIONS=3
REPLICATION_FACTOR=3
MESSAGES=300
KCAT_TIMEOUT_S=60
FULL_ISR_TIMEOUT_S=30

bootstrap=""
sluice_bin=""
brokers=3
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bootstrap) bootstrap="$2"; shift 2 ;;
        --sluice) sluice_bin="$2"; shift 2 ;;
        --brokers) brokers="$2"; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
if [[ -z "$bootstrap" || -z "$sluice_bin" ]]; then
    echo "usage: $0 --bootstrap HOST:PORT --sluice PATH [--brokers N]" >&2
    exit 2
fi
command -v kcat >/dev/null || { echo "FAILED: kcat not found (apt-get install -y kcat)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL $*"; echo "FAILED: $*" >&2; exit 1; }
ok() { echo "ok   $*"; }
kcat_run() { timeout "$KCAT_TIMEOUT_S" kcat -b "$bootstrap" "$@"; }

topic="kcat-cluster-$((RANDOM * 32768 + RANDOM))"
group="$topic-group"
"$sluice_bin" topic create "$topic" --partitions "$PARTITIONS" \
    --replication-factor "$REPLICATION_FACTOR" --config min.insync.replicas=2 \
    --bootstrap-server "$bootstrap" || fail "sluice topic create $topic failed"

# kcat -L -J: every broker, and each partition with its leader, replicas and ISR.
deadline=$((SECONDS + FULL_ISR_TIMEOUT_S))
while :; do
    kcat_run -L -J -t "$topic" > "$work/metadata.json" 2>/dev/null || true
    verdict="$(python3 - "$work/metadata.json" "$brokers" "$PARTITIONS" "$REPLICATION_FACTOR" <<'EOF'
import json, sys
path, brokers, partitions, factor = sys.argv[1], *map(int, sys.argv[2:])
try:
    meta = json.load(open(path))
except ValueError:
    print("no metadata yet"); sys.exit()
if len(meta.get("brokers", [])) != brokers:
    print(f"{len(meta.get('brokers', []))} brokers listed"); sys.exit()
parts = meta["topics"][0].get("partitions", []) if meta.get("topics") else []
if len(parts) != partitions:
    print(f"{len(parts)} partitions listed"); sys.exit()
for p in parts:
    replicas = sorted(r["id"] for r in p.get("replicas", []))
    isr = sorted(r["id"] for r in p.get("isrs", []))
    if p.get("leader", -1) < 0 or len(replicas) != factor or isr != replicas:
        print(f"partition {p['partition']}: leader {p.get('leader')}, replicas {replicas}, isr {isr}")
        sys.exit()
print("full")
EOF
)"
    [[ "$verdict" == "full" ]] && break
    (( SECONDS < deadline )) || fail "$topic never showed $PARTITIONS partitions with $REPLICATION_FACTOR in-sync replicas on $brokers brokers ($verdict)"
    sleep 0.2
done
ok "kcat -L lists $brokers brokers and $PARTITIONS partitions, each with $REPLICATION_FACTOR in-sync replicas"

for i in $(seq 0 $((MESSAGES - 1))); do echo "k$((i % 30)):v$i"; done > "$work/in.txt"
kcat_run -P -t "$topic" -K: -X acks=all -X enable.idempotence=true -l "$work/in.txt" \
    || fail "kcat -P with acks=all failed"
ok "kcat produced $MESSAGES keyed records with acks=all"

# A balanced consumer group: exits after MESSAGES records; auto-commit, then a final commit
# when it leaves the group.
kcat_run -G "$group" -X auto.offset.reset=earliest \
    -X auto.commit.interval.ms=100 -c "$MESSAGES" -f '%p %o %k %s\n' -q "$topic" \
    > "$work/out.txt" || fail "kcat -G consumer group run failed"
python3 - "$work/out.txt" "$MESSAGES" <<'EOF' || fail "records read back by the group are wrong (see above)"
import sys
lines = [l.split() for l in open(sys.argv[1]) if l.strip()]
expected = int(sys.argv[2])
values = {v for _, _, _, v in lines}
assert len(lines) == expected and len(values) == expected, f"{len(lines)} lines, {len(values)} distinct values"
keys = {}
offsets = {}
for p, o, k, _ in lines:
    keys.setdefault(k, set()).add(p)
    offsets.setdefault(p, []).append(int(o))
assert all(len(ps) == 1 for ps in keys.values()), "a key spread over partitions"
for p, os_ in offsets.items():
    assert sorted(os_) == list(range(len(os_))), f"partition {p} offsets not gap-free from 0"
EOF
ok "the group read all $MESSAGES records, each key in one partition, offsets gap-free"

# The group committed: the same group started again has nothing to read (-e: stop at the end).
kcat_run -G "$group" -X auto.offset.reset=earliest -e -f '%s\n' -q "$topic" > "$work/again.txt" \
    || fail "second kcat -G run failed"
left="$(grep -c . "$work/again.txt" || true)"
[[ "$left" == "0" ]] || fail "the group's second run read $left records: its offsets were not committed"
ok "the group's committed offsets survive: a second run reads nothing"
echo "all checks passed"
