//! One pipelined producer connection: the writer side frames Produce requests and keeps at
//! most `max_in_flight` outstanding; a reader thread matches answers to requests in send
//! order, records latencies the moment each answer arrives and frees the slot.
//!
//! Must not: choose what to send or when (the producer loop and `pacing` do).

use super::{Counters, RAW_RESPONSE_BYTES_MAX, count_produced};
use crate::bench::stats::Recorder;
use crate::client::{Client, ClientError, Connection};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A request whose answer the reader waits for.
pub(super) struct InFlightBatch {
    pub(super) correlation_id: i32,
    pub(super) sent_at: Instant,
    /// Intended send time of the batch's first record (fixed-rate mode).
    pub(super) intended_first: Option<Instant>,
    pub(super) records: usize,
    pub(super) payload_bytes: usize,
    pub(super) batch_bytes: usize,
    pub(super) partition: i32,
}

/// Requests outstanding on one connection, shared by its writer and its reader.
#[derive(Default)]
struct Window {
    outstanding: Mutex<usize>,
    changed: Condvar,
    /// Set when the reader stopped: no slot will ever free up again.
    closed: AtomicBool,
}

impl Window {
    fn outstanding(&self) -> usize {
        self.outstanding.lock().map_or(0, |n| *n)
    }

    fn wait_below(&self, max: usize) {
        let Ok(mut n) = self.outstanding.lock() else {
            return;
        };
        while *n >= max && !self.closed.load(Ordering::Relaxed) {
            n = match self.changed.wait(n) {
                Ok(n) => n,
                Err(_) => return,
            };
        }
    }

    fn acquire(&self) {
        if let Ok(mut n) = self.outstanding.lock() {
            *n += 1;
        }
    }

    fn release(&self) {
        if let Ok(mut n) = self.outstanding.lock() {
            *n = n.saturating_sub(1);
        }
        self.changed.notify_one();
    }

    fn release_all(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.changed.notify_all();
    }
}

/// The write half of one pipelined producer connection; a reader thread owns the read half,
/// matches answers to the requests in flight (in order, as Kafka guarantees per connection)
/// and records latencies the moment each answer arrives, so a producer pacing a fixed rate
/// never delays a send while waiting for an answer.
pub(super) struct PipelinedConnection {
    stream: crate::client::tls::WriteHalf,
    version: i16,
    correlation_id_next: i32,
    client_id: StrBytes,
    write_buf: BytesMut,
    /// Requests in flight, in send order, for the reader.
    in_flight: Option<Sender<InFlightBatch>>,
    window: Arc<Window>,
    window_max: usize,
    reader: Option<JoinHandle<Result<Recorder, String>>>,
}

impl PipelinedConnection {
    pub(super) fn connect(
        addr: &str,
        client: &Client,
        window: usize,
        rate: Option<f64>,
        start: Instant,
        counters: &Arc<Counters>,
    ) -> Result<PipelinedConnection, String> {
        // Connect, negotiate the Produce version and authenticate (TLS, SASL) as the client
        // library does, then take the stream over for pipelining.
        let connection =
            Connection::connect(addr, client.connection_config()).map_err(|e| e.to_string())?;
        let version = connection
            .version_of::<ProduceRequest>()
            .map_err(|e| e.to_string())?;
        let (stream, read_half) = crate::client::tls::split_stream(connection.into_stream())
            .map_err(|e| format!("{addr}: {e}"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let window_state = Arc::new(Window::default());
        let reader_window = Arc::clone(&window_state);
        let counters = Arc::clone(counters);
        let addr_owned = addr.to_string();
        let reader = std::thread::Builder::new()
            .name("bench-acks".to_string())
            .spawn(move || {
                let mut recorder = Recorder::new(start);
                let r = read_answers(
                    read_half,
                    rx,
                    &reader_window,
                    version,
                    rate,
                    &mut recorder,
                    &counters,
                );
                // Never leave the writer waiting for a slot that will not come.
                reader_window.release_all();
                if r.is_err() {
                    counters.abort.store(true, Ordering::Relaxed);
                }
                r.map(|()| recorder)
                    .map_err(|e| format!("answers from {addr_owned}: {e}"))
            })
            .map_err(|e| format!("spawn reader: {e}"))?;
        Ok(PipelinedConnection {
            stream,
            version,
            correlation_id_next: 1,
            client_id: StrBytes::from_static_str("sluice-bench"),
            write_buf: BytesMut::with_capacity(64 * 1024),
            in_flight: Some(tx),
            window: window_state,
            window_max: window,
            reader: Some(reader),
        })
    }

    /// True if another request may be sent now without exceeding `max_in_flight`.
    pub(super) fn has_room(&self) -> bool {
        self.window.outstanding() < self.window_max
    }

    /// Blocks until fewer than `max_in_flight` requests are outstanding.
    pub(super) fn wait_for_room(&self) {
        self.window.wait_below(self.window_max);
    }

    /// Blocks until every request sent so far is answered (a transaction commits only then).
    pub(super) fn drain(&self) {
        self.window.wait_below(1);
    }

    /// Sends one request; with `batch` = Some, its answer is awaited by the reader (blocks
    /// while `max_in_flight` requests are outstanding).
    pub(super) fn send(
        &mut self,
        request: &ProduceRequest,
        batch: Option<InFlightBatch>,
    ) -> Result<(), String> {
        let correlation_id = self.correlation_id_next;
        self.correlation_id_next = self.correlation_id_next.wrapping_add(1);
        if let Some(mut batch) = batch {
            self.window.wait_below(self.window_max);
            self.window.acquire();
            batch.correlation_id = correlation_id;
            self.in_flight
                .as_ref()
                .ok_or("connection closed")?
                .send(batch)
                .map_err(|_| "the answer reader stopped".to_string())?;
        }
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(self.version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        self.write_buf.clear();
        self.write_buf.put_i32(0);
        header
            .encode(
                &mut self.write_buf,
                ApiKey::Produce.request_header_version(self.version),
            )
            .map_err(|e| format!("encode header: {e}"))?;
        request
            .encode(&mut self.write_buf, self.version)
            .map_err(|e| format!("encode produce v{}: {e}", self.version))?;
        let len = (self.write_buf.len() - 4) as i32;
        self.write_buf[..4].copy_from_slice(&len.to_be_bytes());
        // After the window wait: the request's own send.
        crate::metrics::stage_trace::mark("cs", 0, correlation_id as i64, 0, 0);
        self.stream
            .write_all(&self.write_buf)
            .map_err(|e| format!("send produce: {e}"))
    }

    /// Waits for every answer; returns the reader's latencies.
    pub(super) fn finish(mut self) -> Result<Recorder, String> {
        drop(self.in_flight.take());
        let reader = self.reader.take().ok_or("reader already joined")?;
        reader
            .join()
            .map_err(|_| "the answer reader panicked".to_string())?
    }
}

fn read_answers(
    mut stream: crate::client::tls::ReadHalf,
    in_flight: Receiver<InFlightBatch>,
    window: &Window,
    version: i16,
    rate: Option<f64>,
    recorder: &mut Recorder,
    counters: &Counters,
) -> Result<(), String> {
    let header_version = ApiKey::Produce.response_header_version(version);
    let mut size = [0u8; 4];
    // Ends when the writer closed the channel and every answer was read.
    while let Ok(batch) = in_flight.recv() {
        stream
            .read_exact(&mut size)
            .map_err(|e| format!("read: {e}"))?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > RAW_RESPONSE_BYTES_MAX {
            return Err(format!("answer size {size} out of range"));
        }
        let mut body = vec![0u8; size as usize];
        stream
            .read_exact(&mut body)
            .map_err(|e| format!("read: {e}"))?;
        let acked_at = Instant::now();
        crate::metrics::stage_trace::mark("ca", 0, batch.partition as i64, 0, 0);
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, header_version)
            .map_err(|e| format!("decode answer header: {e}"))?;
        if header.correlation_id != batch.correlation_id {
            return Err(format!(
                "correlation id {} where {} was expected",
                header.correlation_id, batch.correlation_id
            ));
        }
        let response = ProduceResponse::decode(&mut body, version)
            .map_err(|e| format!("decode produce v{version} answer: {e}"))?;
        for topic in &response.responses {
            for p in &topic.partition_responses {
                if let Some(err) = ClientError::from_code(
                    p.error_code,
                    format!("produce to partition {}", p.index),
                    p.error_message.as_deref(),
                ) {
                    return Err(err.to_string());
                }
            }
        }
        match (batch.intended_first, rate) {
            (Some(first), Some(rate)) => {
                // Coordinated-omission correction: each record from its own intended time.
                for i in 0..batch.records {
                    let intended = first + Duration::from_secs_f64(i as f64 / rate);
                    recorder.record_n(acked_at, acked_at.saturating_duration_since(intended), 1);
                }
            }
            _ => recorder.record_n(acked_at, acked_at - batch.sent_at, batch.records as u64),
        }
        count_produced(
            counters,
            batch.records,
            batch.payload_bytes,
            batch.batch_bytes,
        );
        window.release();
    }
    Ok(())
}
