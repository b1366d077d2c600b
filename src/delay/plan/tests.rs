use super::*;
use crate::delay::delivery::{DeliveryProducer, DeliveryRecord, build_delivery_batch};
use crate::storage::batch::validate_batches;

/// A record tail (key, value, headers) with the given headers.
fn tail(value: &[u8], headers: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
    let mut t = BytesMut::new();
    put_bytes(&mut t, None);
    put_bytes(&mut t, Some(value));
    put_varint(&mut t, headers.len() as i64);
    for (k, v) in headers {
        put_bytes(&mut t, Some(k));
        put_bytes(&mut t, *v);
    }
    t.to_vec()
}

fn batch_of(tails: &[Vec<u8>]) -> (Bytes, Vec<BatchSummary>) {
    let records: Vec<DeliveryRecord<'_>> = tails
        .iter()
        .map(|t| DeliveryRecord {
            timestamp_ms: 1_000,
            tail: t,
        })
        .collect();
    let producer = DeliveryProducer {
        producer_id: -1,
        epoch: -1,
        base_sequence: -1,
    };
    let bytes = build_delivery_batch(&records, producer).freeze();
    let batches = validate_batches(&bytes).expect("a valid batch");
    (bytes, batches)
}

const RULES: DelayRules = DelayRules {
    topic_delay_ms: 0,
    max_delay_ms: 30 * 24 * 3_600 * 1_000,
    receipt_ms: 1_000_000,
};

#[test]
fn records_without_delay_headers_stay_on_the_fast_path() {
    let (bytes, batches) = batch_of(&[tail(b"v", &[(b"other", Some(b"1"))])]);
    assert!(!may_delay(&bytes, &batches, &RULES));
    assert_eq!(plan(&bytes, &batches, &RULES), Ok(None));
}

#[test]
fn the_header_prefix_in_a_value_or_a_later_header_value_is_not_a_delay() {
    let in_value = tail(b"sluice.delay.ms=5", &[]);
    let in_header_value = tail(b"v", &[(b"note", Some(b"sluice.delay.ms"))]);
    let (bytes, batches) = batch_of(&[in_value, in_header_value]);
    assert!(!may_delay(&bytes, &batches, &RULES));
    assert_eq!(plan(&bytes, &batches, &RULES), Ok(None));
}

#[test]
fn a_delay_header_on_a_later_record_or_after_other_headers_is_found() {
    let plain = tail(b"a", &[(b"trace", Some(b"x"))]);
    let delayed = tail(b"b", &[(b"trace", None), (DELAY_HEADER, Some(b"10"))]);
    let (bytes, batches) = batch_of(&[plain.clone(), plain, delayed]);
    assert!(may_delay(&bytes, &batches, &RULES));
    let planned = plan(&bytes, &batches, &RULES).unwrap().expect("delayed");
    assert_eq!(planned[2].due_ms, 1_000_010);
}

#[test]
fn a_batch_whose_framing_is_cut_short_is_not_taken_for_a_delay() {
    let (bytes, _) = batch_of(&[tail(b"a", &[(DELAY_HEADER, Some(b"10"))])]);
    let cut = &bytes[..bytes.len() - 4];
    assert!(!has_delay_header(cut, 1));
    assert!(has_delay_header(&bytes, 1));
}

#[test]
fn a_delay_header_sets_the_due_time_of_every_record() {
    let delayed = tail(b"a", &[(DELAY_HEADER, Some(b"5000"))]);
    let at = tail(b"b", &[(DELIVER_AT_HEADER, Some(b"1002000"))]);
    let plain = tail(b"c", &[]);
    let (bytes, batches) = batch_of(&[delayed.clone(), at, plain.clone()]);
    let planned = plan(&bytes, &batches, &RULES).unwrap().expect("delayed");
    let due: Vec<i64> = planned.iter().map(|r| r.due_ms).collect();
    assert_eq!(due, vec![1_005_000, 1_002_000, 1_000_000]);
    assert_eq!(&planned[0].tail[..], &delayed[..]);
    assert_eq!(&planned[2].tail[..], &plain[..]);
    assert_eq!(planned[0].timestamp_ms, 1_000);
}

#[test]
fn the_topic_delay_applies_to_records_without_a_header() {
    let rules = DelayRules {
        topic_delay_ms: 60_000,
        ..RULES
    };
    let (bytes, batches) = batch_of(&[tail(b"a", &[]), tail(b"b", &[(DELAY_HEADER, Some(b"0"))])]);
    let planned = plan(&bytes, &batches, &rules).unwrap().expect("delayed");
    assert_eq!(planned[0].due_ms, 1_060_000);
    assert_eq!(planned[1].due_ms, 1_000_000);
}

#[test]
fn bad_header_values_are_refused_with_the_record_index() {
    for (value, why) in [
        (&b"soon"[..], "not a non-negative decimal"),
        (b"-5", "not a non-negative decimal"),
        (b"", "not a non-negative decimal"),
        (b"99999999999999999999", "not a non-negative decimal"),
        (b"2592000001", "exceeds the broker's delivery_delay_max_ms"),
    ] {
        let (bytes, batches) =
            batch_of(&[tail(b"ok", &[]), tail(b"x", &[(DELAY_HEADER, Some(value))])]);
        let refused = plan(&bytes, &batches, &RULES).unwrap_err();
        assert_eq!(refused.batch_index, 1, "{value:?}");
        assert!(
            refused.message.contains(why),
            "{value:?}: {}",
            refused.message
        );
    }
    let (bytes, batches) = batch_of(&[tail(b"x", &[(DELAY_HEADER, None)])]);
    assert!(
        plan(&bytes, &batches, &RULES)
            .unwrap_err()
            .message
            .contains("null")
    );
    let both = tail(
        b"x",
        &[(DELAY_HEADER, Some(b"1")), (DELIVER_AT_HEADER, Some(b"2"))],
    );
    let (bytes, batches) = batch_of(&[both]);
    assert!(
        plan(&bytes, &batches, &RULES)
            .unwrap_err()
            .message
            .contains("both")
    );
}

#[test]
fn a_past_deliver_at_is_not_a_delay() {
    let (bytes, batches) = batch_of(&[tail(b"x", &[(DELIVER_AT_HEADER, Some(b"5"))])]);
    assert_eq!(plan(&bytes, &batches, &RULES), Ok(None));
}

#[test]
fn varints_of_every_length_read_back_and_truncated_ones_are_refused() {
    use crate::storage::batch::read_varint;
    let values = [
        0i64,
        -1,
        1,
        63,
        -64,
        64,
        8191,
        -8192,
        8192,
        1 << 20,
        i64::from(i32::MAX),
        i64::from(i32::MIN),
        i64::MAX,
        i64::MIN,
    ];
    for value in values {
        let mut encoded = BytesMut::new();
        put_varint(&mut encoded, value);
        encoded.put_u8(0x55); // a byte after it, not read
        let mut at = 0;
        assert_eq!(read_varint(&encoded, &mut at), Some(value), "{value}");
        assert_eq!(at, encoded.len() - 1, "{value}");
        for cut in 0..encoded.len() - 1 {
            let mut at = 0;
            assert_eq!(
                read_varint(&encoded[..cut], &mut at),
                None,
                "{value} cut {cut}"
            );
        }
    }
    let mut at = 0;
    assert_eq!(
        read_varint(&[0xff; 11], &mut at),
        None,
        "longer than ten bytes"
    );
}
