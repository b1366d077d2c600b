//! A transactional producer's control calls for the benchmark (Kafka's
//! `kafka-producer-perf-test --transactional-id`): find the transaction coordinator, init the
//! producer id with the transactional id, then per transaction AddPartitionsToTxn before the
//! first batch and EndTxn(commit) once every batch of it is acknowledged. Speaks the classic
//! (v1..v3) protocol every Kafka-compatible broker serves, over one blocking socket to the
//! coordinator: these calls happen a few times per second, never per batch.
//!
//! Must not: send records (the pipelined connections do) or commit while a batch of the
//! transaction is still unanswered (the producer drains them first).

use super::raw::raw_call;
use crate::bench::batch::ProducerIdentity;
use crate::client::ClientError;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ApiVersionsRequest,
    ApiVersionsResponse, EndTxnRequest, EndTxnResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse, ProducerId, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Transaction timeout the benchmark's producers ask for (Kafka's producer default).
const TRANSACTION_TIMEOUT_MS: i32 = 60_000;
/// How long a control call keeps retrying a retriable error (a coordinator still writing the
/// previous transaction's markers answers CONCURRENT_TRANSACTIONS, as in Kafka).
const RETRY_FOR: Duration = Duration::from_secs(30);
/// Pause between retries of a control call.
const RETRY_PAUSE: Duration = Duration::from_millis(2);
/// Highest versions used: the classic protocol (transactions v1), which every broker serves;
/// FindCoordinator below v4 (one key, no batching).
const FIND_COORDINATOR_VERSION_MAX: i16 = 3;
const INIT_PRODUCER_ID_VERSION_MAX: i16 = 4;
const ADD_PARTITIONS_VERSION_MAX: i16 = 3;
const END_TXN_VERSION_MAX: i16 = 3;

/// One transactional producer's session with its coordinator.
pub(super) struct TxnSession {
    stream: TcpStream,
    transactional_id: String,
    pub identity: ProducerIdentity,
    versions: ApiVersionsResponse,
    correlation_id: i32,
    /// A transaction is open: its partitions are added and EndTxn is owed.
    open: bool,
}

impl TxnSession {
    /// Finds `transactional_id`'s coordinator through `bootstrap` and inits the producer.
    pub(super) fn begin(bootstrap: &str, transactional_id: &str) -> Result<TxnSession, String> {
        let addr = bootstrap.split(',').next().unwrap_or(bootstrap).trim();
        let mut stream = connect(addr)?;
        let versions: ApiVersionsResponse =
            raw_call(&mut stream, &ApiVersionsRequest::default(), 0, 1)?;
        let version = negotiated(
            &versions,
            ApiKey::FindCoordinator,
            FIND_COORDINATOR_VERSION_MAX,
        )?;
        let find = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(transactional_id.to_string()))
            .with_key_type(1);
        let found: FindCoordinatorResponse = raw_call(&mut stream, &find, version, 2)?;
        let (code, host, port) = match found.coordinators.first() {
            Some(c) => (c.error_code, c.host.to_string(), c.port),
            None => (found.error_code, found.host.to_string(), found.port),
        };
        check(code, "FindCoordinator")?;
        let stream = connect(&format!("{host}:{port}"))?;
        let mut session = TxnSession {
            stream,
            transactional_id: transactional_id.to_string(),
            identity: ProducerIdentity {
                producer_id: -1,
                epoch: -1,
            },
            versions,
            correlation_id: 10,
            open: false,
        };
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(session.id()))
            .with_transaction_timeout_ms(TRANSACTION_TIMEOUT_MS)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let response: InitProducerIdResponse = session.retrying(
            ApiKey::InitProducerId,
            INIT_PRODUCER_ID_VERSION_MAX,
            &request,
            |r: &InitProducerIdResponse| r.error_code,
        )?;
        session.identity = ProducerIdentity {
            producer_id: response.producer_id.0,
            epoch: response.producer_epoch,
        };
        Ok(session)
    }

    pub(super) fn is_open(&self) -> bool {
        self.open
    }

    /// Opens a transaction over `partitions` of `topic` unless one is open.
    pub(super) fn ensure_open(&mut self, topic: &str, partitions: &[i32]) -> Result<(), String> {
        if self.open {
            return Ok(());
        }
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(self.id())
            .with_v3_and_below_producer_id(ProducerId(self.identity.producer_id))
            .with_v3_and_below_producer_epoch(self.identity.epoch)
            .with_v3_and_below_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(partitions.to_vec()),
            ]);
        let response: AddPartitionsToTxnResponse = self.retrying(
            ApiKey::AddPartitionsToTxn,
            ADD_PARTITIONS_VERSION_MAX,
            &request,
            |r: &AddPartitionsToTxnResponse| {
                r.results_by_topic_v3_and_below
                    .iter()
                    .flat_map(|t| t.results_by_partition.iter())
                    .map(|p| p.partition_error_code)
                    .find(|&code| code != 0)
                    .unwrap_or(r.error_code)
            },
        )?;
        drop(response);
        self.open = true;
        Ok(())
    }

    /// Commits the open transaction (its batches must all be acknowledged).
    pub(super) fn commit(&mut self) -> Result<(), String> {
        if !self.open {
            return Ok(());
        }
        let request = EndTxnRequest::default()
            .with_transactional_id(self.id())
            .with_producer_id(ProducerId(self.identity.producer_id))
            .with_producer_epoch(self.identity.epoch)
            .with_committed(true);
        let _: EndTxnResponse = self.retrying(
            ApiKey::EndTxn,
            END_TXN_VERSION_MAX,
            &request,
            |r: &EndTxnResponse| r.error_code,
        )?;
        self.open = false;
        Ok(())
    }

    fn id(&self) -> TransactionalId {
        TransactionalId(StrBytes::from_string(self.transactional_id.clone()))
    }

    /// Sends `request` until it succeeds or fails with a non-retriable error.
    fn retrying<R, T>(
        &mut self,
        api: ApiKey,
        version_max: i16,
        request: &R,
        error_of: impl Fn(&T) -> i16,
    ) -> Result<T, String>
    where
        R: kafka_protocol::protocol::Request,
        T: kafka_protocol::protocol::Decodable,
    {
        let version = negotiated(&self.versions, api, version_max)?;
        let give_up = Instant::now() + RETRY_FOR;
        loop {
            self.correlation_id = self.correlation_id.wrapping_add(1);
            let response: T = raw_call(&mut self.stream, request, version, self.correlation_id)?;
            let code = error_of(&response);
            let retriable = code == ResponseError::ConcurrentTransactions.code()
                || code == ResponseError::CoordinatorLoadInProgress.code();
            if !retriable || Instant::now() >= give_up {
                check(code, &format!("{api:?}"))?;
                return Ok(response);
            }
            std::thread::sleep(RETRY_PAUSE);
        }
    }
}

fn connect(addr: &str) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let timeout = Some(Duration::from_millis(
        crate::client::connection::IO_TIMEOUT_MS,
    ));
    stream
        .set_read_timeout(timeout)
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// The version to speak: the broker's highest, capped at what this module encodes.
fn negotiated(
    versions: &ApiVersionsResponse,
    api: ApiKey,
    version_max: i16,
) -> Result<i16, String> {
    versions
        .api_keys
        .iter()
        .find(|k| k.api_key == api as i16)
        .map(|k| k.max_version.min(version_max))
        .ok_or_else(|| format!("the broker does not offer {api:?} (needed for --transactional-id)"))
}

fn check(code: i16, context: &str) -> Result<(), String> {
    match ClientError::from_code(code, context.to_string(), None) {
        Some(err) => Err(err.to_string()),
        None => Ok(()),
    }
}
