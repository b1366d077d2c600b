//! Unit tests of `log_config.rs`: parsing, validation and limits of the log settings.
use super::*;

#[test]
fn every_key_round_trips_through_set_and_get() {
    let mut cfg = LogConfig::default();
    let defaults = LogConfig::default();
    for key in topic_config_keys() {
        let value = cfg.get(key).unwrap();
        cfg.set(key, &value).unwrap();
    }
    for key in topic_config_keys() {
        assert_eq!(cfg.get(key), defaults.get(key), "{key}");
    }
}

#[test]
fn bad_values_are_named() {
    let mut cfg = LogConfig::default();
    let err = cfg.set("retention.ms", "soon").unwrap_err();
    assert!(err.to_string().contains("retention.ms"));
    assert_eq!(
        cfg.set("nope", "1"),
        Err(TopicConfigError::UnknownKey("nope".into()))
    );
    assert!(cfg.set("segment.bytes", "1").is_err());
}

#[test]
fn stored_only_configs_read_back_and_typed_ones_are_typed() {
    let mut cfg = LogConfig::default();
    cfg.set("preallocate", "true").unwrap();
    cfg.set("cleanup.policy", " delete , compact").unwrap();
    cfg.set("compression.type", "zstd").unwrap();
    assert_eq!(cfg.get("preallocate").as_deref(), Some("true"));
    assert_eq!(cfg.cleanup_policy, CleanupPolicy::CompactAndDelete);
    assert_eq!(cfg.compression_type, CompressionType::Zstd);
    assert!(cfg.set("remote.storage.enable", "true").is_err());
    cfg.set("min.compaction.lag.ms", "10").unwrap();
    cfg.set("max.compaction.lag.ms", "5").unwrap();
    assert!(matches!(cfg.validate(), Err(TopicConfigError::Conflict(_))));
}

#[test]
fn flush_syncfs_min_partitions_is_bounded() {
    let mut cfg = LogConfig {
        flush_syncfs_min_partitions: FLUSH_SYNCFS_MIN_PARTITIONS_LIMIT,
        ..LogConfig::default()
    };
    assert_eq!(cfg.validate(), Ok(()));
    cfg.flush_syncfs_min_partitions = FLUSH_SYNCFS_MIN_PARTITIONS_LIMIT + 1;
    let err = cfg.validate().unwrap_err();
    assert!(
        err.to_string().contains("flush_syncfs_min_partitions"),
        "{err}"
    );
    let parsed: LogConfig = toml::from_str("flush_syncfs_min_partitions = 0").unwrap();
    assert_eq!(parsed.flush_syncfs_min_partitions, 0);
}

#[test]
fn replica_write_inline_max_bytes_is_bounded_and_on_by_default() {
    assert_eq!(
        LogConfig::default().replica_write_inline_max_bytes,
        DEFAULT_REPLICA_WRITE_INLINE_MAX_BYTES
    );
    let mut cfg = LogConfig {
        replica_write_inline_max_bytes: WRITE_INLINE_MAX_BYTES_LIMIT,
        ..LogConfig::default()
    };
    assert_eq!(cfg.validate(), Ok(()));
    cfg.replica_write_inline_max_bytes = WRITE_INLINE_MAX_BYTES_LIMIT + 1;
    let err = cfg.validate().unwrap_err();
    assert!(
        err.to_string().contains("replica_write_inline_max_bytes"),
        "{err}"
    );
    let parsed: LogConfig = toml::from_str("replica_write_inline_max_bytes = 0").unwrap();
    assert_eq!(parsed.replica_write_inline_max_bytes, 0);
}

#[test]
fn write_behind_bytes_is_off_or_within_its_bounds() {
    let with = |n| {
        LogConfig {
            write_behind_bytes: n,
            ..LogConfig::default()
        }
        .validate()
    };
    for ok in [
        0,
        WRITE_BEHIND_MIN_BYTES,
        DEFAULT_WRITE_BEHIND_BYTES,
        WRITE_BEHIND_MAX_BYTES,
    ] {
        assert_eq!(with(ok), Ok(()), "{ok}");
    }
    for bad in [1, WRITE_BEHIND_MIN_BYTES - 1, WRITE_BEHIND_MAX_BYTES + 1] {
        let err = with(bad).unwrap_err();
        assert!(err.to_string().contains("write_behind_bytes"), "{err}");
    }
}

#[test]
fn drop_behind_bytes_is_off_or_within_its_bounds() {
    let with = |n| {
        LogConfig {
            drop_behind_bytes: n,
            ..LogConfig::default()
        }
        .validate()
    };
    for ok in [
        0,
        DROP_BEHIND_MIN_BYTES,
        DEFAULT_DROP_BEHIND_BYTES,
        DROP_BEHIND_MAX_BYTES,
    ] {
        assert_eq!(with(ok), Ok(()), "{ok}");
    }
    for bad in [1, DROP_BEHIND_MIN_BYTES - 1, DROP_BEHIND_MAX_BYTES + 1] {
        let err = with(bad).unwrap_err();
        assert!(err.to_string().contains("drop_behind_bytes"), "{err}");
    }
}
