//! A replica fetcher's connection to its leader broker (issue 17, decision 0012): a small
//! Kafka client on the shard's own compio loop, one request in flight, versions negotiated
//! once with ApiVersions, every call bounded in time and every answer decoded through the
//! codec's panic and allocation guards (a panic here would stop the shard). It connects to
//! the leader's endpoint of the inter-broker listener with that listener's security: TLS
//! (`link_stream`) and a SASL exchange (decision 0021). The transaction traffic between
//! brokers (`broker_channel`, decision 0022) uses the same links, connected with
//! `connect_as` and a version chosen per call with `negotiated`.
//!
//! Owns: the socket, the correlation ids, the negotiated versions. Must not: know what is
//! fetched or where it goes (replica_fetcher does).

use super::link_stream::LinkStream;
use crate::client::sasl::{SaslExchange, check_handshake, handshake_request, refusal};
use crate::config::inter_broker::InterBrokerSecurity;
use crate::protocol::alloc_guard::decode_guarded;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use compio::BufResult;
use compio::net::TcpStream;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use std::time::Duration;

/// How long a connect to a leader may take (and, on a TLS listener, its handshake).
pub const REPLICA_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one request may wait for its answer (a leader holds a fetch for at most
/// `replica_fetcher::REPLICA_FETCH_WAIT_MAX_MS`): past it the connection and the session are dropped.
pub const REPLICA_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer frame accepted: a bigger length prefix means a confused peer. Above the
/// response budget because the first batch of a partition is always sent whole.
pub const REPLICA_RESPONSE_FRAME_MAX_BYTES: usize = 256 * 1024 * 1024;
/// What the receive buffer starts with: an answer in the steady state of a loaded partition
/// (a few produce batches) arrives in one receive.
const RECEIVE_BUFFER_START_BYTES: usize = 128 * 1024;
/// The Fetch versions the fetcher speaks: from 7 (fetch sessions) to 12, in which the
/// follower names itself with the request's `replica_id` (v15+ use `ReplicaState`; the
/// leader's handler takes both).
pub const REPLICA_FETCH_VERSION_MIN: i16 = 7;
pub const REPLICA_FETCH_VERSION_MAX: i16 = 12;
/// OffsetForLeaderEpoch from v3, the first that names the replica.
pub const EPOCH_CHECK_VERSION_MIN: i16 = 3;
pub const EPOCH_CHECK_VERSION_MAX: i16 = 4;
/// SaslHandshake v1 (the exchange then runs in SaslAuthenticate, KIP-152) and
/// SaslAuthenticate v1 (KIP-368's session lifetime; not flexible), as every broker serves.
const SASL_HANDSHAKE_VERSION: i16 = 1;
const SASL_AUTHENTICATE_VERSION: i16 = 1;
/// SaslAuthenticate round trips one exchange may take (SCRAM needs two).
const SASL_ROUND_TRIPS_MAX: usize = 4;

/// The fetcher's connection to its leader, on the shard's own loop: one request at a time
/// (a fetcher has one in flight), versions negotiated once with ApiVersions.
pub(super) struct LeaderLink {
    stream: LinkStream,
    address: String,
    client_id: StrBytes,
    next_correlation: i32,
    pub(super) fetch_version: i16,
    pub(super) epoch_check_version: i16,
    /// What the peer's ApiVersions answered: (api key, min version, max version).
    served: Vec<(i16, i16, i16)>,
    /// The request bytes, reused from one call to the next.
    send_buffer: BytesMut,
}

impl LeaderLink {
    /// Connects to the leader at `host:port` on the inter-broker listener: TLS first when
    /// its protocol says so, then ApiVersions, then the SASL exchange when it says so.
    pub(super) async fn connect(
        host: &str,
        port: i32,
        node_id: i32,
        security: &InterBrokerSecurity,
    ) -> Result<LeaderLink, String> {
        let client_id = format!("sluice-replica-{node_id}");
        let mut link = Self::connect_as(host, port, &client_id, security).await?;
        link.fetch_version = link.negotiated(
            ApiKey::Fetch,
            REPLICA_FETCH_VERSION_MIN,
            REPLICA_FETCH_VERSION_MAX,
        )?;
        link.epoch_check_version = link.negotiated(
            ApiKey::OffsetForLeaderEpoch,
            EPOCH_CHECK_VERSION_MIN,
            EPOCH_CHECK_VERSION_MAX,
        )?;
        Ok(link)
    }

    /// Connects to the broker at `host:port` on the inter-broker listener as `client_id`:
    /// TLS, ApiVersions (kept for `negotiated`) and SASL, without choosing any version.
    pub(super) async fn connect_as(
        host: &str,
        port: i32,
        client_id: &str,
        security: &InterBrokerSecurity,
    ) -> Result<LeaderLink, String> {
        let address = format!("{host}:{port}");
        let address = address.as_str();
        let stream = compio::time::timeout(REPLICA_CONNECT_TIMEOUT, async {
            let socket = TcpStream::connect(address).await?;
            socket.set_nodelay(true)?;
            match &security.tls {
                None => Ok(LinkStream::Plain(socket)),
                Some(config) => LinkStream::tls(socket, config.clone(), host).await,
            }
        })
        .await
        .map_err(|_| format!("connect to {address}: timed out"))?
        .map_err(|e| format!("connect to {address} ({}): {e}", security.protocol.name()))?;
        let mut link = LeaderLink {
            stream,
            address: address.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            next_correlation: 1,
            fetch_version: REPLICA_FETCH_VERSION_MIN,
            epoch_check_version: EPOCH_CHECK_VERSION_MIN,
            served: Vec::new(),
            send_buffer: BytesMut::new(),
        };
        // v0: every broker answers it, whatever it supports.
        let versions = link.call(&ApiVersionsRequest::default(), 0).await?;
        if versions.error_code != 0 {
            return Err(format!(
                "{address} answered ApiVersions with error {}",
                versions.error_code
            ));
        }
        link.served = versions
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        if let Some(sasl) = &security.sasl {
            link.authenticate(sasl).await?;
        }
        Ok(link)
    }

    /// The highest version of `key` both sides speak within `min..=max`.
    pub(super) fn negotiated(&self, key: ApiKey, min: i16, max: i16) -> Result<i16, String> {
        let address = &self.address;
        let &(_, their_min, their_max) = self
            .served
            .iter()
            .find(|(k, _, _)| *k == key as i16)
            .ok_or_else(|| format!("{address} does not serve {key:?}"))?;
        let version = max.min(their_max);
        if version < min || version < their_min {
            return Err(format!(
                "{address} serves {key:?} v{their_min}..=v{their_max}, this call needs v{min}..=v{max}"
            ));
        }
        Ok(version)
    }

    /// The `host:port` this link is connected to.
    pub(super) fn address(&self) -> &str {
        &self.address
    }

    /// The SASL exchange the CLI's client runs (`client::sasl::SaslExchange`), over this
    /// link: SaslHandshake names the mechanism, SaslAuthenticate carries its messages.
    async fn authenticate(&mut self, sasl: &crate::client::sasl::SaslConfig) -> Result<(), String> {
        let address = self.address.clone();
        let failed = |why: String| {
            format!(
                "SASL authentication with {address} as {} ({}) failed: {why}",
                sasl.username, sasl.mechanism
            )
        };
        let handshake = self
            .call(&handshake_request(sasl), SASL_HANDSHAKE_VERSION)
            .await?;
        check_handshake(&handshake, sasl).map_err(failed)?;
        let (mut exchange, mut message) = SaslExchange::start(sasl).map_err(failed)?;
        for _ in 0..SASL_ROUND_TRIPS_MAX {
            let request = SaslAuthenticateRequest::default().with_auth_bytes(message.into());
            let response = self.call(&request, SASL_AUTHENTICATE_VERSION).await?;
            if response.error_code != 0 {
                return Err(failed(refusal(&response)));
            }
            match exchange.answer(&response.auth_bytes).map_err(failed)? {
                Some(next) => message = next,
                None => return Ok(()),
            }
        }
        Err(failed(format!(
            "not complete after {SASL_ROUND_TRIPS_MAX} round trips"
        )))
    }

    /// Sends `request` at `version` and decodes its answer, within `REPLICA_CALL_TIMEOUT`.
    /// Any error leaves the link unusable (the fetcher drops it).
    pub(super) async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, String> {
        let api = R::KEY;
        match compio::time::timeout(REPLICA_CALL_TIMEOUT, self.exchange(request, version)).await {
            Ok(result) => result.map_err(|e| format!("{api:?} to {}: {e}", self.address)),
            Err(_) => Err(format!("{api:?} to {}: no answer in time", self.address)),
        }
    }

    async fn exchange<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, String> {
        let correlation_id = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buffer = std::mem::take(&mut self.send_buffer);
        buffer.clear();
        buffer.put_i32(0); // the length, patched below
        header
            .encode(&mut buffer, R::header_version(version))
            .map_err(|e| format!("encode header: {e}"))?;
        request
            .encode(&mut buffer, version)
            .map_err(|e| format!("encode v{version}: {e}"))?;
        let length = i32::try_from(buffer.len() - 4)
            .map_err(|_| format!("a request of {} bytes", buffer.len()))?;
        buffer[..4].copy_from_slice(&length.to_be_bytes());
        let BufResult(written, buffer) = self.stream.write_all(buffer).await;
        self.send_buffer = buffer;
        written.map_err(|e| format!("send: {e}"))?;

        let mut frame = self.receive_frame().await?;
        let header_version = ApiKey::try_from(R::KEY)
            .map(|k| k.response_header_version(version))
            .map_err(|_| "unknown api key".to_string())?;
        // Decoded on the shard's own loop: a malformed answer must fail this call, never
        // panic the shard (the codec's allocation and panic guards).
        let header = decode_guarded(|| ResponseHeader::decode(&mut frame, header_version))
            .map_err(|e| format!("response header: {e}"))?;
        if header.correlation_id != correlation_id {
            return Err(format!(
                "correlation id {} where {correlation_id} was expected",
                header.correlation_id
            ));
        }
        decode_guarded(|| R::Response::decode(&mut frame, version))
            .map_err(|e| format!("decode v{version}: {e}"))
    }

    /// Reads one answer frame, without its length prefix. Nothing else is in flight, so
    /// bytes past the frame mean a confused peer.
    async fn receive_frame(&mut self) -> Result<Bytes, String> {
        let mut buffer: Vec<u8> = Vec::with_capacity(RECEIVE_BUFFER_START_BYTES);
        let mut wanted = 4usize;
        let mut length_known = false;
        let mut receives = 0i64;
        loop {
            while buffer.len() < wanted {
                buffer.reserve(wanted - buffer.len());
                let BufResult(read, filled) = self.stream.append(buffer).await;
                buffer = filled;
                receives += 1;
                if receives == 1 {
                    crate::metrics::stage_trace::mark("f1", 0, buffer.len() as i64, 0, 0);
                }
                match read {
                    Ok(0) => return Err("the leader closed the connection".into()),
                    Ok(_) => {}
                    Err(e) => return Err(format!("receive: {e}")),
                }
            }
            if length_known {
                break;
            }
            let length = i32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]);
            let length = usize::try_from(length)
                .ok()
                .filter(|&l| l <= REPLICA_RESPONSE_FRAME_MAX_BYTES)
                .ok_or_else(|| {
                    format!(
                        "answer of {length} bytes (REPLICA_RESPONSE_FRAME_MAX_BYTES is \
                         {REPLICA_RESPONSE_FRAME_MAX_BYTES})"
                    )
                })?;
            wanted = 4 + length;
            length_known = true;
        }
        if buffer.len() != wanted {
            return Err(format!(
                "{} bytes after the answer with nothing else asked",
                buffer.len() - wanted
            ));
        }
        crate::metrics::stage_trace::mark("fn", 0, receives, buffer.len() as i64, 0);
        let mut frame = Bytes::from(buffer);
        frame.advance(4);
        Ok(frame)
    }
}
