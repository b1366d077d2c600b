#!/usr/bin/env python3
"""Idempotent producer retries, on the wire: the same Produce request sent twice is written once.

Builds every request by hand (Kafka protocol, non-flexible versions) so that the exact same
bytes — same producer id, epoch and base sequence — can be resent, as a client does after a
lost response. Checks, against a fresh single-partition topic:
  * InitProducerId hands out a producer id and epoch;
  * batch A (seq 0..2) lands at offset 0; resending A on a NEW connection is acknowledged
    with error NONE and the same base offset 0;
  * batch B (seq 3..4) lands at offset 3; resending the older batch A again still answers
    offset 0 (Kafka keeps the last 5 batches per producer), resending B answers offset 3;
  * a batch with a sequence gap is refused with OUT_OF_ORDER_SEQUENCE_NUMBER (45);
  * ListOffsets(latest) is 5 and a Fetch returns exactly batches A and B, once each, with
    valid CRCs and the original records (decoded with kafka-python's record parser).
Exits non-zero with a clear message on the first failed check.
"""

import argparse
import socket
import struct
import time
import uuid

from kafka.record.default_records import DefaultRecordBatch

import roundtrip_common as rc

API_PRODUCE = 0
API_FETCH = 1
API_LIST_OFFSETS = 2
API_API_VERSIONS = 18
API_CREATE_TOPICS = 19
API_INIT_PRODUCER_ID = 22

ERROR_NONE = 0
ERROR_OUT_OF_ORDER_SEQUENCE_NUMBER = 45
ERROR_DUPLICATE_SEQUENCE_NUMBER = 46
# Errors a produce may see while a just-created topic is still being placed.
RETRIABLE_PRODUCE_ERRORS = {3, 5, 6}
# Highest non-flexible Produce version whose response layout this script parses.
PRODUCE_VERSION_MAX = 7
PRODUCE_VERSION_MIN = 3
SOCKET_TIMEOUT_S = 30.0
TOPIC_READY_TIMEOUT_S = 30.0
# Largest response frame this script accepts.
RESPONSE_BYTES_MAX = 64 * 1024 * 1024

CRC32C_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    CRC32C_TABLE.append(_c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc = CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def varint(value):
    """Zig-zag varint, as record fields use."""
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def string(s):
    if s is None:
        return struct.pack(">h", -1)
    raw = s.encode()
    return struct.pack(">h", len(raw)) + raw


def record_batch(producer_id, epoch, base_sequence, records, timestamp_ms):
    """A RecordBatch v2 (uncompressed) with the given producer state; `records` is a list of
    (key, value, headers)."""
    body = bytearray()
    for delta, (key, value, headers) in enumerate(records):
        rec = bytearray(b"\x00")  # attributes
        rec += varint(0)  # timestamp delta
        rec += varint(delta)  # offset delta
        rec += varint(len(key)) + key
        rec += varint(len(value)) + value
        rec += varint(len(headers))
        for name, hval in headers:
            rec += varint(len(name)) + name.encode() + varint(len(hval)) + hval
        body += varint(len(rec)) + rec
    after_crc = (
        struct.pack(
            ">hiqqqhii",
            0,  # attributes: no compression, not transactional
            len(records) - 1,  # last offset delta
            timestamp_ms,
            timestamp_ms,
            producer_id,
            epoch,
            base_sequence,
            len(records),
        )
        + bytes(body)
    )
    crc = crc32c(after_crc)
    # batch length counts from partition leader epoch to the end.
    batch_length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc) + after_crc


def require(condition, message):
    """A shape check on a response: silent when it holds, a failed check when not."""
    if not condition:
        rc.check(False, message)


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise rc.CheckFailed(f"response truncated at byte {self.pos} (wanted {fmt})")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def string(self):
        length = self.take(">h")
        if length < 0:
            return None
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.decode()

    def bytes(self):
        length = self.take(">i")
        if length < 0:
            return None
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return bytes(raw)


class Connection:
    def __init__(self, bootstrap):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S)
        self.correlation_id = 0

    def close(self):
        self.sock.close()

    def _read_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise rc.CheckFailed("broker closed the connection mid-response")
            buf += chunk
        return bytes(buf)

    def request(self, api_key, version, body, flexible=False):
        """Sends one request (header v1, or v2 when `flexible`) and returns a Reader over the
        response body."""
        self.correlation_id += 1
        header = struct.pack(">hhi", api_key, version, self.correlation_id) + string(
            "sluice-idempotent-retry"
        )
        if flexible:
            header += b"\x00"  # no tagged fields
        frame = header + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", self._read_exact(4))[0]
        if not 4 <= size <= RESPONSE_BYTES_MAX:
            raise rc.CheckFailed(f"response frame size {size} out of range")
        payload = self._read_exact(size)
        reader = Reader(payload)
        cid = reader.take(">i")
        if cid != self.correlation_id:
            raise rc.CheckFailed(f"correlation id {cid}, expected {self.correlation_id}")
        if flexible:
            require(reader.take(">b") == 0, "flexible response header has no tagged fields")
        return reader


def api_versions(conn):
    r = conn.request(API_API_VERSIONS, 0, b"")
    error = r.take(">h")
    rc.check(error == ERROR_NONE, f"ApiVersions v0 error {error}")
    versions = {}
    for _ in range(r.take(">i")):
        key, lo, hi = r.take(">hhh")
        versions[key] = (lo, hi)
    return versions


def create_topic(conn, topic):
    body = struct.pack(">i", 1) + string(topic) + struct.pack(">ihii", 1, 1, 0, 0)
    body += struct.pack(">ib", int(SOCKET_TIMEOUT_S * 1000), 0)
    r = conn.request(API_CREATE_TOPICS, 2, body)
    r.take(">i")  # throttle
    count = r.take(">i")
    rc.check(count == 1, f"CreateTopics answered {count} topics")
    name = r.string()
    error = r.take(">h")
    message = r.string()
    rc.check(
        name == topic and error == ERROR_NONE,
        f"CreateTopics {topic} (1 partition): error {error} {message or ''}",
    )


def init_producer_id(conn, version):
    """v0/v1 are the classic layout; v2+ are flexible and (v3+) carry the current producer
    id/epoch, -1 for a new producer."""
    if version >= 2:
        body = b"\x00" + struct.pack(">i", 60000)  # null compact string, timeout
        if version >= 3:
            body += struct.pack(">qh", -1, -1)
        body += b"\x00"  # no tagged fields
        r = conn.request(API_INIT_PRODUCER_ID, version, body, flexible=True)
    else:
        body = string(None) + struct.pack(">i", 60000)
        r = conn.request(API_INIT_PRODUCER_ID, version, body)
    r.take(">i")  # throttle
    error, producer_id, epoch = r.take(">hqh")
    rc.check(
        error == ERROR_NONE and producer_id >= 0 and epoch >= 0,
        f"InitProducerId: error {error}, producer id {producer_id}, epoch {epoch}",
    )
    return producer_id, epoch


def produce(conn, version, topic, batch):
    """Returns (error_code, base_offset) for partition 0."""
    body = string(None) + struct.pack(">hi", -1, int(SOCKET_TIMEOUT_S * 1000))
    body += struct.pack(">i", 1) + string(topic)
    body += struct.pack(">i", 1) + struct.pack(">ii", 0, len(batch)) + batch
    r = conn.request(API_PRODUCE, version, body)
    require(r.take(">i") == 1, "Produce response has one topic")
    require(r.string() == topic, "Produce response names the topic")
    require(r.take(">i") == 1, "Produce response has one partition")
    index, error, base_offset = r.take(">ihq")
    r.take(">q")  # log append time
    if version >= 5:
        r.take(">q")  # log start offset
    return error, base_offset


def produce_when_ready(bootstrap, version, topic, batch):
    """First produce to a new topic: retries only errors that mean "not placed yet"."""
    deadline = time.monotonic() + TOPIC_READY_TIMEOUT_S
    while True:
        conn = Connection(bootstrap)
        try:
            error, base = produce(conn, version, topic, batch)
        finally:
            conn.close()
        if error not in RETRIABLE_PRODUCE_ERRORS or time.monotonic() > deadline:
            return error, base
        time.sleep(0.1)


def list_offset_latest(conn, topic):
    body = struct.pack(">ii", -1, 1) + string(topic) + struct.pack(">iiq", 1, 0, -1)
    r = conn.request(API_LIST_OFFSETS, 1, body)
    r.take(">i")
    r.string()
    r.take(">i")
    _index, error, _ts, offset = r.take(">ihqq")
    rc.check(error == ERROR_NONE, f"ListOffsets latest: error {error}")
    return offset


def fetch_all(conn, topic):
    body = struct.pack(">iiiib", -1, 100, 1, 16 * 1024 * 1024, 0)
    body += struct.pack(">i", 1) + string(topic)
    body += struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, 16 * 1024 * 1024)
    r = conn.request(API_FETCH, 4, body)
    r.take(">i")  # throttle
    r.take(">i")
    r.string()
    r.take(">i")
    _index, error, high_watermark, _lso = r.take(">ihqq")
    rc.check(error == ERROR_NONE, f"Fetch: error {error}")
    aborted = r.take(">i")
    for _ in range(max(aborted, 0)):
        r.take(">qq")
    return high_watermark, r.bytes() or b""


def split_batches(data):
    batches = []
    pos = 0
    while pos + 12 <= len(data):
        _base, length = struct.unpack_from(">qi", data, pos)
        end = pos + 12 + length
        if end > len(data):
            break  # a partial trailing batch is allowed in a fetch response
        batches.append(DefaultRecordBatch(memoryview(data[pos:end])))
        pos = end
    return batches


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT of the broker")
    parser.add_argument(
        "--allow-duplicate-sequence-error",
        action="store_true",
        help="accept DUPLICATE_SEQUENCE_NUMBER (46) for a resend instead of the original "
        "offset; only for trying this script on brokers that answer so (tansu 0.6)",
    )
    parser.add_argument(
        "--skip-watermark-check",
        action="store_true",
        help="only for trying this script on brokers with a known ListOffsets bug (tansu 0.6)",
    )
    args = parser.parse_args()

    def resend_ok(error, base, want_base):
        if args.allow_duplicate_sequence_error and error == ERROR_DUPLICATE_SEQUENCE_NUMBER:
            print("     (accepting error 46: --allow-duplicate-sequence-error)", flush=True)
            return True
        return error == ERROR_NONE and base == want_base

    topic = f"idem-retry-{uuid.uuid4().hex[:10]}"

    conn = Connection(args.bootstrap)
    versions = api_versions(conn)
    for key, name in [
        (API_PRODUCE, "Produce"),
        (API_FETCH, "Fetch"),
        (API_LIST_OFFSETS, "ListOffsets"),
        (API_CREATE_TOPICS, "CreateTopics"),
        (API_INIT_PRODUCER_ID, "InitProducerId"),
    ]:
        rc.check(key in versions, f"ApiVersions lists {name} ({versions.get(key)})")
    # The fixed versions this script uses for the read-back (Kafka 4's minimums).
    for key, name, version in [
        (API_FETCH, "Fetch", 4),
        (API_LIST_OFFSETS, "ListOffsets", 1),
        (API_CREATE_TOPICS, "CreateTopics", 2),
    ]:
        lo, hi = versions[key]
        rc.check(lo <= version <= hi, f"{name} v{version} supported (broker {lo}..{hi})")
    lo, hi = versions[API_PRODUCE]
    produce_version = min(hi, PRODUCE_VERSION_MAX)
    rc.check(
        lo <= produce_version and produce_version >= PRODUCE_VERSION_MIN,
        f"Produce v{produce_version} usable (broker supports {lo}..{hi})",
    )
    create_topic(conn, topic)
    # The highest version this script knows (4), so the broker's newest path is exercised.
    producer_id, epoch = init_producer_id(conn, min(versions[API_INIT_PRODUCER_ID][1], 4))
    conn.close()

    now_ms = int(time.time() * 1000)
    a_records = [(f"k{i}".encode(), f"batch-A-{i}".encode(), [("h", b"A")]) for i in range(3)]
    b_records = [(f"k{i}".encode(), f"batch-B-{i}".encode(), [("h", b"B")]) for i in range(2)]
    batch_a = record_batch(producer_id, epoch, 0, a_records, now_ms)
    batch_b = record_batch(producer_id, epoch, 3, b_records, now_ms)
    batch_gap = record_batch(producer_id, epoch, 10, a_records[:1], now_ms)

    error, base = produce_when_ready(args.bootstrap, produce_version, topic, batch_a)
    rc.check(error == ERROR_NONE and base == 0, f"batch A (seq 0..2): error {error}, base {base}")

    conn = Connection(args.bootstrap)  # a retry comes on a new connection after a lost reply
    error, base = produce(conn, produce_version, topic, batch_a)
    rc.check(
        resend_ok(error, base, 0),
        f"resent batch A acknowledged with its original offset: error {error}, base {base}",
    )
    error, base = produce(conn, produce_version, topic, batch_b)
    rc.check(error == ERROR_NONE and base == 3, f"batch B (seq 3..4): error {error}, base {base}")
    error, base = produce(conn, produce_version, topic, batch_a)
    rc.check(
        resend_ok(error, base, 0),
        f"batch A resent after B still answers offset 0: error {error}, base {base}",
    )
    error, base = produce(conn, produce_version, topic, batch_b)
    rc.check(resend_ok(error, base, 3), f"resent batch B answers 3: error {error}, base {base}")
    error, base = produce(conn, produce_version, topic, batch_gap)
    rc.check(
        error == ERROR_OUT_OF_ORDER_SEQUENCE_NUMBER,
        f"batch with a sequence gap (seq 10 after 4) refused with error 45: error {error}",
    )

    latest = list_offset_latest(conn, topic)
    high_watermark, data = fetch_all(conn, topic)
    conn.close()
    if args.skip_watermark_check:
        print(f"skip ListOffsets/high watermark == 5 (got {latest}/{high_watermark})", flush=True)
    else:
        rc.check(latest == 5, f"ListOffsets latest is 5 (got {latest})")
        rc.check(high_watermark == 5, f"Fetch high watermark is 5 (got {high_watermark})")
    batches = split_batches(data)
    rc.check(
        [b.base_offset for b in batches] == [0, 3],
        f"log holds exactly two batches at offsets 0 and 3 "
        f"(got {[b.base_offset for b in batches]})",
    )
    rc.check(all(b.validate_crc() for b in batches), "fetched batches have valid CRC-32C")
    rc.check(
        all(b.producer_id == producer_id and b.producer_epoch == epoch for b in batches),
        "fetched batches keep the producer id and epoch",
    )
    rc.check(
        [b.base_sequence for b in batches] == [0, 3],
        "fetched batches keep their base sequences",
    )
    got = [
        (r.offset, r.key, r.value, [(k, bytes(v)) for k, v in r.headers])
        for b in batches
        for r in b
    ]
    want = [
        (offset, key, value, headers)
        for offset, (key, value, headers) in enumerate(a_records + b_records)
    ]
    rc.check(got == want, f"fetched records equal what was produced once ({len(got)} records)")


if __name__ == "__main__":
    rc.run_main(main)
