//! Broker and topic configuration.
//!
//! Owns: every tunable and every limit, with its embedded default, so that `sluice serve`
//! runs with no config file at all. A TOML file (`--config`) and command-line flags override
//! the defaults, in that order. Must not: read anything at run time after start-up except
//! on an explicit reload (SIGHUP).

pub mod controller_security;
mod cores;
pub mod group_config;
pub mod inter_broker;
pub mod listeners;
mod log_config;
pub mod quorum;
mod shard_threads;
pub mod topic_config_spec;

pub use cores::{CoreSpec, CoreSpecError};
pub use log_config::{
    CleanupPolicy, CompressionType, DEFAULT_INDEX_INTERVAL_BYTES, DROP_BEHIND_MIN_BYTES,
    Durability, LogConfig, TimestampType, TopicConfigError, WRITE_INLINE_MAX_BYTES_LIMIT,
    topic_config_keys,
};
pub use shard_threads::{DEFAULT_SHARD_NICE, SHARD_NICE_MAX, SHARD_NICE_MIN, ShardAffinity};

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Largest request frame a client may send (Kafka's `socket.request.max.bytes`).
/// Kafka's `transactional.id.expiration.ms` default: seven days.
pub const DEFAULT_TRANSACTIONAL_ID_EXPIRATION_MS: i64 = 7 * 24 * 3_600 * 1_000;
pub const DEFAULT_MAX_REQUEST_BYTES: u32 = 100 * 1024 * 1024;
/// Requests a single connection may have decoded but not yet answered.
pub const DEFAULT_MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION: u32 = 64;
/// Connections across the whole broker.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 20_000;
/// `max_connection_creation_rate`'s default, Kafka's `Int.MaxValue`: no limit.
pub const UNLIMITED_CONNECTION_CREATION_RATE: u32 = i32::MAX as u32;
/// Memory the kernel may pin for all io_uring rings (RLIMIT_MEMLOCK of an unprivileged user).
pub const DEFAULT_MEMLOCK_BUDGET_BYTES: u64 = 8 * 1024 * 1024;
/// Submission-queue entries per shard ring.
pub const DEFAULT_RING_ENTRIES: u32 = 1024;
/// Produce payload a shard may hold in memory before it stops reading sockets.
pub const DEFAULT_SHARD_PRODUCE_MEMORY_BYTES: u64 = 256 * 1024 * 1024;
/// Segments a shard keeps files open for at once (the open-file budget's cap; the budget is
/// also bounded by RLIMIT_NOFILE, see `shard::descriptors`).
pub const DEFAULT_MAX_OPEN_SEGMENTS_PER_SHARD: u32 = 4096;

/// Largest SASL frame read before a connection has authenticated (Kafka's
/// `sasl.server.max.receive.size`).
pub const DEFAULT_SASL_SERVER_MAX_RECEIVE_BYTES: u32 = 524_288;
/// How long a connection on a SASL listener may take to authenticate before it is closed.
pub const DEFAULT_SASL_AUTHENTICATION_TIMEOUT_MS: u64 = 10_000;
/// The SASL mechanisms served unless `sasl_enabled_mechanisms` says otherwise.
pub const SASL_MECHANISMS_SUPPORTED: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Errors while loading or validating configuration: one line each, for the CLI.
/// Kafka's default `replica.lag.time.max.ms`.
pub const DEFAULT_REPLICA_LAG_TIME_MAX_MS: u64 = 30_000;
/// Kafka's default `replica.high.watermark.checkpoint.interval.ms`.
pub const DEFAULT_REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS: u64 = 5_000;
/// The accepted range of `replica_high_watermark_checkpoint_interval_ms`: below 100 ms the
/// shards would fsync a file many times a second; above an hour a restart loses too much.
pub const REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS_RANGE: std::ops::RangeInclusive<u64> =
    100..=3_600_000;
/// Kafka's default `leader.imbalance.check.interval.seconds`.
pub const DEFAULT_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS: u64 = 300;
/// Longest `leader_imbalance_check_interval_seconds` accepted (a day; longer is a typo).
pub const LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_MAX: u64 = 86_400;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// The `io_driver` setting: which kernel I/O interface the shard runtimes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoDriverChoice {
    /// io_uring, or the polling driver with one warning when the kernel refuses io_uring.
    Auto,
    /// io_uring only: start-up fails when the kernel refuses it.
    IoUring,
    /// The readiness-based driver (epoll; file I/O on a thread pool), even where io_uring works.
    Polling,
}

impl IoDriverChoice {
    /// Parses the spelling used in the config file and in `SLUICE_IO_DRIVER`.
    pub fn parse(text: &str) -> Option<IoDriverChoice> {
        match text.trim() {
            "auto" => Some(IoDriverChoice::Auto),
            "io_uring" => Some(IoDriverChoice::IoUring),
            "polling" => Some(IoDriverChoice::Polling),
            _ => None,
        }
    }
}

/// The `authorizer` setting: Kafka's `authorizer.class.name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizerChoice {
    /// No authorizer: every operation is allowed and the ACL APIs answer SECURITY_DISABLED.
    None,
    /// ACLs with the semantics of Kafka's StandardAuthorizer (`security::authorizer`).
    Standard,
}

/// The whole broker configuration, with every default embedded.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Where partitions, metadata and group offsets live.
    pub data_dir: PathBuf,
    /// Kafka listener; every shard binds it with SO_REUSEPORT.
    pub listen: SocketAddr,
    /// Address handed to clients in Metadata; defaults to `listen`.
    pub advertised_listener: Option<String>,
    /// Kafka's `listeners`: `NAME://host:port,...`; when set, `listen` and
    /// `advertised_listener` are not used (see `listeners::resolve`).
    pub listeners: Option<String>,
    /// Kafka's `advertised.listeners`: `NAME://host:port` per listener.
    pub advertised_listeners: Option<String>,
    /// Kafka's `listener.security.protocol.map`: `NAME:PROTOCOL,...`.
    pub listener_security_protocol_map: Option<String>,
    /// SASL mechanisms SASL listeners offer (Kafka's `sasl.enabled.mechanisms`).
    pub sasl_enabled_mechanisms: Vec<String>,
    /// Largest frame a connection may send before it has authenticated.
    pub sasl_server_max_receive_bytes: u32,
    /// A SASL connection that has not authenticated within this is closed.
    pub sasl_authentication_timeout_ms: u64,
    /// Kafka's `connections.max.reauth.ms` (KIP-368): 0 = sessions never expire; else a
    /// client must re-authenticate within this or its connection is closed.
    pub connections_max_reauth_ms: i64,
    /// PEM certificate chain SSL and SASL_SSL listeners present, the broker's own first
    /// (Kafka's `ssl.keystore.location` with a PEM keystore: chain and key in two files).
    pub ssl_certificate_location: Option<PathBuf>,
    /// The certificate's private key, unencrypted PEM (PKCS#8, PKCS#1 or SEC1).
    pub ssl_key_location: Option<PathBuf>,
    /// PEM CA certificates client certificates must chain to (`ssl.truststore.location`).
    pub ssl_truststore_location: Option<PathBuf>,
    /// Kafka's `ssl.client.auth` on SSL listeners: none, requested or required.
    pub ssl_client_auth: String,
    /// Kafka's `ssl.enabled.protocols`.
    pub ssl_enabled_protocols: Vec<String>,
    /// Kafka's `ssl.cipher.suites` (IANA names); empty: every suite rustls offers.
    pub ssl_cipher_suites: Vec<String>,
    /// Kafka's `ssl.principal.mapping.rules`: `DEFAULT`, `RULE:pattern/replacement/[LU]`.
    pub ssl_principal_mapping_rules: String,
    /// Kafka's `inter.broker.listener.name`: the listener followers reach their leaders on
    /// (unset: the one named PLAINTEXT, else the first; `inter_broker`).
    pub inter_broker_listener_name: Option<String>,
    /// PEM CA certificates a leader's certificate must chain to when that listener is SSL or
    /// SASL_SSL (unset: `ssl_truststore_location`).
    pub inter_broker_ssl_ca_file: Option<PathBuf>,
    /// Certificate chain and key a follower presents (mutual TLS); both or neither.
    pub inter_broker_ssl_certificate_location: Option<PathBuf>,
    pub inter_broker_ssl_key_location: Option<PathBuf>,
    /// SASL_PLAINTEXT / SASL_SSL inter-broker listener: PLAIN, SCRAM-SHA-256 or
    /// SCRAM-SHA-512, and the broker's credentials (Kafka's JAAS line, as plain keys).
    pub inter_broker_sasl_mechanism: Option<String>,
    pub inter_broker_sasl_username: Option<String>,
    pub inter_broker_sasl_password: Option<inter_broker::Secret>,
    /// Admin HTTP listener (metrics, health, status, the web console).
    pub admin_listen: SocketAddr,
    /// The web console may only look: its create and delete requests are refused (403).
    pub console_read_only: bool,
    /// Which cores run shards: "all", a count, or a list such as "0,2-3".
    pub cores: String,
    /// Each shard pinned to its core ("core", the default), free to run on any of `cores`
    /// ("shared"), or left to the kernel ("unpinned"); see `ShardAffinity`.
    pub shard_affinity: ShardAffinity,
    /// The nice value of the shard threads (and of the io-wq and pool threads they start);
    /// see `shard_threads::DEFAULT_SHARD_NICE`. 0 leaves the inherited priority.
    pub shard_nice: i32,
    pub node_id: i32,
    /// Cluster mode (KRaft combined mode): the metadata quorum, `id@host:port,...`. Unset:
    /// a single node with no quorum.
    pub controller_quorum_voters: Option<String>,
    /// Where this node's controller accepts Raft traffic from the other voters.
    pub controller_listen: Option<SocketAddr>,
    /// PLAINTEXT or SSL (mutual TLS with the `ssl_*` certificate and trust store) between
    /// the controllers (`controller_security`).
    pub controller_security_protocol: String,
    /// Kafka's `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// Kafka's `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// For upgrade tests only (decision 0027): the highest metadata format level this node
    /// claims to read, so one binary can act as an older one. Unset: this binary's own.
    pub upgrade_test_max_metadata_format_level: Option<i16>,
    /// Kafka's `replica.lag.time.max.ms`: a follower that has not caught up with its
    /// leader's log end for this long leaves the ISR (cluster mode).
    pub replica_lag_time_max_ms: u64,
    /// Kafka's `replica.high.watermark.checkpoint.interval.ms`: how often each shard writes
    /// the high watermarks of its partitions to `<data_dir>/replication-offset-checkpoint/`
    /// (cluster mode; also at a clean shutdown), so a restarted leader serves what was
    /// committed at once. Unchanged checkpoints are not rewritten.
    pub replica_high_watermark_checkpoint_interval_ms: u64,
    /// Kafka's `follower.replication.throttled.rate` (bytes/s, this broker as a follower):
    /// the most its replica fetchers copy per second for the replicas a topic's
    /// `follower.replication.throttled.replicas` names while they are out of the ISR (a
    /// reassignment's catch-up). Static here (a restart changes it); Kafka's default,
    /// `Long.MAX_VALUE`, means unbounded.
    pub follower_replication_throttled_rate: u64,
    /// Kafka's `auto.leader.rebalance.enable`: the quorum leader moves leadership back to
    /// each partition's preferred replica once it is in sync again (after a restart).
    pub auto_leader_rebalance_enable: bool,
    /// Kafka's `leader.imbalance.check.interval.seconds`: how often it looks.
    pub leader_imbalance_check_interval_seconds: u64,
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` overrides it.
    pub log_level: String,
    pub auto_create_topics: bool,
    /// Kafka's `errors.deadletterqueue.topic.name.prefix` (KIP-1191): a share group's
    /// dead-letter topic must start with this ("" = any name), so a group cannot make the
    /// broker write into an arbitrary business topic.
    pub errors_deadletterqueue_topic_name_prefix: String,
    /// Kafka's `errors.deadletterqueue.auto.create.topics.enable` (KIP-1191): create a
    /// share group's missing dead-letter topic (with `errors.deadletterqueue.group.enable`).
    pub errors_deadletterqueue_auto_create_topics_enable: bool,
    /// Kafka's `transactional.id.expiration.ms`: a transactional id with no transaction open
    /// and no change for this long is forgotten (its slot in the coordinator freed).
    pub transactional_id_expiration_ms: i64,
    /// Partitions of an auto-created topic (Kafka's `num.partitions`).
    pub default_partitions: i32,
    pub max_request_bytes: u32,
    pub max_in_flight_requests_per_connection: u32,
    pub max_connections: u32,
    /// KIP-612: new connections per second the broker accepts on all its listeners
    /// together (Kafka's `max.connection.creation.rate`; its default, `i32::MAX`, is no
    /// limit). Over it, accepting pauses until the rate is back under it.
    pub max_connection_creation_rate: u32,
    /// Per listener, `NAME:RATE,...` (Kafka's `listener.name.X.max.connection.creation.rate`).
    pub listener_max_connection_creation_rate: String,
    pub memlock_budget_bytes: u64,
    pub ring_entries: u32,
    /// Which kernel I/O interface the shards use; `SLUICE_IO_DRIVER` overrides it.
    pub io_driver: IoDriverChoice,
    pub shard_produce_memory_bytes: u64,
    /// Most segments a shard keeps files open for (each counted as 4 descriptors); the
    /// least recently used close first. The effective budget is the lower of this and the
    /// share of RLIMIT_NOFILE left after sockets (`shard::descriptors`).
    pub max_open_segments_per_shard: u32,
    /// Kafka's `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: u64,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    /// Committed offsets of an empty group expire after this long (Kafka's
    /// `offsets.retention.minutes`).
    pub offsets_retention_ms: i64,
    /// How often retention and background flush run.
    pub log_retention_check_interval_ms: u64,
    /// Metrics recording on the hot path; off only for overhead measurements.
    pub metrics_enabled: bool,
    /// Which authorizer checks requests against the ACLs (off by default, as in Kafka).
    pub authorizer: AuthorizerChoice,
    /// Principals (`User:name`) that bypass every ACL (Kafka's `super.users`).
    pub super_users: Vec<String>,
    /// Allow an operation on a resource no ACL names (Kafka's
    /// `allow.everyone.if.no.acl.found`); a resource with any ACL is always checked.
    pub allow_everyone_if_no_acl_found: bool,
    /// Defaults for every topic; per-topic overrides come from CreateTopics / AlterConfigs.
    pub log: LogConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_dir: PathBuf::from("sluice-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_listener: None,
            listeners: None,
            advertised_listeners: None,
            listener_security_protocol_map: None,
            sasl_enabled_mechanisms: SASL_MECHANISMS_SUPPORTED
                .iter()
                .map(|m| m.to_string())
                .collect(),
            sasl_server_max_receive_bytes: DEFAULT_SASL_SERVER_MAX_RECEIVE_BYTES,
            sasl_authentication_timeout_ms: DEFAULT_SASL_AUTHENTICATION_TIMEOUT_MS,
            connections_max_reauth_ms: 0,
            ssl_certificate_location: None,
            ssl_key_location: None,
            ssl_truststore_location: None,
            ssl_client_auth: "none".to_string(),
            ssl_enabled_protocols: crate::security::tls::DEFAULT_ENABLED_PROTOCOLS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            ssl_cipher_suites: Vec::new(),
            ssl_principal_mapping_rules: "DEFAULT".to_string(),
            inter_broker_listener_name: None,
            inter_broker_ssl_ca_file: None,
            inter_broker_ssl_certificate_location: None,
            inter_broker_ssl_key_location: None,
            inter_broker_sasl_mechanism: None,
            inter_broker_sasl_username: None,
            inter_broker_sasl_password: None,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9644)),
            console_read_only: false,
            cores: "all".to_string(),
            shard_affinity: ShardAffinity::Core,
            shard_nice: DEFAULT_SHARD_NICE,
            node_id: 0,
            controller_quorum_voters: None,
            controller_listen: None,
            controller_security_protocol: "PLAINTEXT".to_string(),
            broker_session_timeout_ms: quorum::DEFAULT_BROKER_SESSION_TIMEOUT_MS,
            broker_heartbeat_interval_ms: quorum::DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS,
            upgrade_test_max_metadata_format_level: None,
            replica_lag_time_max_ms: DEFAULT_REPLICA_LAG_TIME_MAX_MS,
            replica_high_watermark_checkpoint_interval_ms:
                DEFAULT_REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS,
            follower_replication_throttled_rate: i64::MAX as u64,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds:
                DEFAULT_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS,
            log_level: "info".to_string(),
            auto_create_topics: true,
            errors_deadletterqueue_topic_name_prefix: "dlq.".to_string(),
            errors_deadletterqueue_auto_create_topics_enable: false,
            transactional_id_expiration_ms: DEFAULT_TRANSACTIONAL_ID_EXPIRATION_MS,
            default_partitions: 1,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_in_flight_requests_per_connection: DEFAULT_MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connection_creation_rate: UNLIMITED_CONNECTION_CREATION_RATE,
            listener_max_connection_creation_rate: String::new(),
            memlock_budget_bytes: DEFAULT_MEMLOCK_BUDGET_BYTES,
            ring_entries: DEFAULT_RING_ENTRIES,
            io_driver: IoDriverChoice::Auto,
            shard_produce_memory_bytes: DEFAULT_SHARD_PRODUCE_MEMORY_BYTES,
            max_open_segments_per_shard: DEFAULT_MAX_OPEN_SEGMENTS_PER_SHARD,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            log_retention_check_interval_ms: 30_000,
            metrics_enabled: true,
            authorizer: AuthorizerChoice::None,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            log: LogConfig::default(),
        }
    }
}

impl BrokerConfig {
    /// Reads a TOML file on top of the embedded defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    /// Checks cross-field constraints; called once after every override is applied.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.core_spec()?;
        shard_threads::validate_nice(self.shard_nice)?;
        if self.default_partitions < 1 {
            return Err(ConfigError::Invalid {
                key: "default_partitions",
                message: "must be at least 1".into(),
            });
        }
        if self.transactional_id_expiration_ms < 1 {
            return Err(ConfigError::Invalid {
                key: "transactional_id_expiration_ms",
                message: "must be at least 1".into(),
            });
        }
        if self.max_request_bytes < 1024 {
            return Err(ConfigError::Invalid {
                key: "max_request_bytes",
                message: "must be at least 1024".into(),
            });
        }
        if self.max_in_flight_requests_per_connection == 0 {
            return Err(ConfigError::Invalid {
                key: "max_in_flight_requests_per_connection",
                message: "must be at least 1".into(),
            });
        }
        if self.max_connection_creation_rate == 0 {
            return Err(ConfigError::Invalid {
                key: "max_connection_creation_rate",
                message: "must be at least 1 (connections per second)".into(),
            });
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "max_connections",
                message: "must be at least 1".into(),
            });
        }
        if !self.ring_entries.is_power_of_two() || self.ring_entries < 8 {
            return Err(ConfigError::Invalid {
                key: "ring_entries",
                message: "must be a power of two, at least 8".into(),
            });
        }
        self.validate_security()?;
        for user in &self.super_users {
            crate::security::Principal::parse(user).map_err(|e| ConfigError::Invalid {
                key: "super_users",
                message: e.to_string(),
            })?;
        }
        self.log.validate().map_err(|e| ConfigError::Invalid {
            key: "log",
            message: e.to_string(),
        })?;
        self.quorum_voters()?;
        if self.replica_lag_time_max_ms == 0 {
            return Err(ConfigError::Invalid {
                key: "replica_lag_time_max_ms",
                message: "must be above 0".into(),
            });
        }
        let range = REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS_RANGE;
        if !range.contains(&self.replica_high_watermark_checkpoint_interval_ms) {
            return Err(ConfigError::Invalid {
                key: "replica_high_watermark_checkpoint_interval_ms",
                message: format!("must be {} to {}", range.start(), range.end()),
            });
        }
        if !(1..=LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_MAX)
            .contains(&self.leader_imbalance_check_interval_seconds)
        {
            return Err(ConfigError::Invalid {
                key: "leader_imbalance_check_interval_seconds",
                message: format!("must be 1 to {LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS_MAX}"),
            });
        }
        if self.follower_replication_throttled_rate == 0 {
            return Err(ConfigError::Invalid {
                key: "follower_replication_throttled_rate",
                message: "must be above 0 (a throttled replica would never catch up)".into(),
            });
        }
        if self.broker_heartbeat_interval_ms == 0
            || self.broker_heartbeat_interval_ms >= self.broker_session_timeout_ms
        {
            return Err(ConfigError::Invalid {
                key: "broker_heartbeat_interval_ms",
                message: "must be above 0 and below broker_session_timeout_ms".into(),
            });
        }
        let current = crate::metadata::format_level::CURRENT_LEVEL;
        if let Some(level) = self.upgrade_test_max_metadata_format_level
            && !(1..=current).contains(&level)
        {
            return Err(ConfigError::Invalid {
                key: "upgrade_test_max_metadata_format_level",
                message: format!("{level} is not a level this binary reads (1..={current})"),
            });
        }
        Ok(())
    }

    /// The `ssl_*` keys as the TLS layer takes them.
    pub fn tls_settings(&self) -> crate::security::tls::TlsSettings {
        crate::security::tls::TlsSettings {
            certificate_location: self.ssl_certificate_location.clone(),
            key_location: self.ssl_key_location.clone(),
            truststore_location: self.ssl_truststore_location.clone(),
            client_auth: self.ssl_client_auth.clone(),
            enabled_protocols: self.ssl_enabled_protocols.clone(),
            cipher_suites: self.ssl_cipher_suites.clone(),
            principal_mapping_rules: self.ssl_principal_mapping_rules.clone(),
        }
    }

    /// Listeners and SASL settings: every listener resolves, TLS listeners have readable
    /// certificates and valid `ssl_*` keys, and every enabled mechanism is one this broker
    /// implements.
    fn validate_security(&self) -> Result<(), ConfigError> {
        let specs = self.listener_specs()?;
        // Only cluster mode has leaders to follow (a single SSL listener needs no CA).
        if self.controller_quorum_voters.is_some() {
            self.inter_broker_security_of(&specs)?;
        }
        self.controller_tls()?;
        if specs.iter().any(|spec| spec.protocol.uses_tls()) {
            crate::security::tls::TlsContext::new(&self.tls_settings()).map_err(|e| {
                ConfigError::Invalid {
                    key: e.key,
                    message: e.message,
                }
            })?;
        }
        if let Some(unknown) = self
            .sasl_enabled_mechanisms
            .iter()
            .find(|m| !SASL_MECHANISMS_SUPPORTED.contains(&m.as_str()))
        {
            return Err(ConfigError::Invalid {
                key: "sasl_enabled_mechanisms",
                message: format!(
                    "{unknown:?} is not one of {}",
                    SASL_MECHANISMS_SUPPORTED.join(", ")
                ),
            });
        }
        if self.sasl_server_max_receive_bytes < 1024 {
            return Err(ConfigError::Invalid {
                key: "sasl_server_max_receive_bytes",
                message: "must be at least 1024".into(),
            });
        }
        if self.connections_max_reauth_ms < 0 {
            return Err(ConfigError::Invalid {
                key: "connections_max_reauth_ms",
                message: "must be 0 (off) or positive".into(),
            });
        }
        Ok(())
    }

    /// Mutual TLS between the controllers, when `controller_security_protocol` is SSL.
    pub fn controller_tls(
        &self,
    ) -> Result<Option<std::sync::Arc<controller_security::ControllerTls>>, ConfigError> {
        controller_security::resolve(self)
    }

    /// How followers reach their leaders (`inter_broker_*` keys, decision 0021).
    pub fn inter_broker_security(&self) -> Result<inter_broker::InterBrokerSecurity, ConfigError> {
        self.inter_broker_security_of(&self.listener_specs()?)
    }

    fn inter_broker_security_of(
        &self,
        specs: &[listeners::ListenerSpec],
    ) -> Result<inter_broker::InterBrokerSecurity, ConfigError> {
        inter_broker::resolve(self, specs)
    }

    /// Every listener this broker serves (`listeners`, or the single `listen`).
    pub fn listener_specs(&self) -> Result<Vec<listeners::ListenerSpec>, ConfigError> {
        listeners::resolve(self)
    }

    /// The metadata quorum in cluster mode; `None` for a single node.
    pub fn quorum_voters(&self) -> Result<Option<Vec<quorum::QuorumVoter>>, ConfigError> {
        quorum::check_cluster_settings(
            self.node_id,
            self.controller_quorum_voters.as_deref(),
            self.controller_listen,
            self.listen,
        )
        .map_err(|message| ConfigError::Invalid {
            key: "controller_quorum_voters",
            message,
        })
    }

    pub fn core_spec(&self) -> Result<CoreSpec, ConfigError> {
        CoreSpec::parse(&self.cores).map_err(|e| ConfigError::Invalid {
            key: "cores",
            message: e.to_string(),
        })
    }

    /// The `host:port` clients are told to connect to.
    pub fn advertised_address(&self) -> (String, i32) {
        if let Some(adv) = &self.advertised_listener
            && let Some((host, port)) = adv.rsplit_once(':')
            && let Ok(port) = port.parse::<u16>()
        {
            return (host.trim_matches(['[', ']']).to_string(), i32::from(port));
        }
        (self.listen.ip().to_string(), i32::from(self.listen.port()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_embedded_defaults() {
        let cfg = BrokerConfig::from_toml("").unwrap();
        assert_eq!(cfg.listen.port(), 9092);
        assert!(cfg.auto_create_topics);
        cfg.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = BrokerConfig::from_toml("listne = \"x\"").unwrap_err();
        assert!(err.contains("listne"), "{err}");
    }

    #[test]
    fn advertised_listener_overrides_listen() {
        let cfg =
            BrokerConfig::from_toml("advertised_listener = \"broker.example:19092\"").unwrap();
        assert_eq!(
            cfg.advertised_address(),
            ("broker.example".to_string(), 19092)
        );
    }

    #[test]
    fn shards_are_pinned_unless_told_not_to() {
        let affinity = |toml: &str| BrokerConfig::from_toml(toml).map(|c| c.shard_affinity);
        assert_eq!(affinity("").unwrap(), ShardAffinity::Core);
        assert_eq!(
            affinity("shard_affinity = \"unpinned\"").unwrap(),
            ShardAffinity::Unpinned
        );
        assert!(affinity("shard_affinity = \"everywhere\"").is_err());
    }

    #[test]
    fn nested_log_section_is_read() {
        let cfg = BrokerConfig::from_toml("[log]\nsegment_bytes = 1048576\n").unwrap();
        assert_eq!(cfg.log.segment_bytes, 1_048_576);
    }

    #[test]
    fn io_driver_is_read_and_unknown_spellings_are_refused() {
        assert_eq!(
            BrokerConfig::from_toml("").unwrap().io_driver,
            IoDriverChoice::Auto
        );
        let cfg = BrokerConfig::from_toml("io_driver = \"polling\"").unwrap();
        assert_eq!(cfg.io_driver, IoDriverChoice::Polling);
        assert!(BrokerConfig::from_toml("io_driver = \"epoll\"").is_err());
        assert_eq!(
            IoDriverChoice::parse("io_uring"),
            Some(IoDriverChoice::IoUring)
        );
        assert_eq!(IoDriverChoice::parse("uring"), None);
    }

    #[test]
    fn authorizer_settings_are_read_and_super_users_checked() {
        let cfg = BrokerConfig::from_toml("").unwrap();
        assert_eq!(cfg.authorizer, AuthorizerChoice::None);
        let cfg = BrokerConfig::from_toml(
            "authorizer = \"standard\"\nsuper_users = [\"User:admin\"]\nallow_everyone_if_no_acl_found = true",
        )
        .unwrap();
        assert_eq!(cfg.authorizer, AuthorizerChoice::Standard);
        assert!(cfg.allow_everyone_if_no_acl_found);
        cfg.validate().unwrap();
        let bad = BrokerConfig::from_toml("super_users = [\"admin\"]").unwrap();
        assert!(bad.validate().is_err());
        assert!(BrokerConfig::from_toml("authorizer = \"acl\"").is_err());
    }

    #[test]
    fn the_high_watermark_checkpoint_interval_is_bounded() {
        let key = "replica_high_watermark_checkpoint_interval_ms";
        let cfg = BrokerConfig::from_toml("").unwrap();
        assert_eq!(cfg.replica_high_watermark_checkpoint_interval_ms, 5_000);
        for good in [100, 3_600_000] {
            let cfg = BrokerConfig::from_toml(&format!("{key} = {good}")).unwrap();
            cfg.validate().unwrap();
        }
        for bad in [0, 99, 3_600_001] {
            let cfg = BrokerConfig::from_toml(&format!("{key} = {bad}")).unwrap();
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(key) && !err.contains('\n'), "{err}");
        }
    }
}
