//! KIP-612 connection creation rates over the wire (issue 20): `ip` quota entities set,
//! validated and described with AlterClientQuotas / DescribeClientQuotas; a client IP over
//! its `connection_creation_rate` has its new connections closed unserved; over the
//! broker's `max_connection_creation_rate` new connections wait to be served. Rates are
//! counted over Kafka's window (11 samples of 1 s, at least 10 s counted), so a bound of R
//! connections a second lets about 10 × R through at once before it bites.

mod support;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, ApiVersionsRequest,
    DescribeClientQuotasRequest, DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::{Request, StrBytes};
use std::time::{Duration, Instant};
use support::wire::RawConn;
use support::{Broker, wire};

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(
        &broker.bootstrap(),
        "connection-quotas-test",
        request,
        version,
    )
}

fn entry(parts: &[(&str, Option<&str>)], key: &str, value: f64) -> EntryData {
    EntryData::default()
        .with_entity(
            parts
                .iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(sb(t))
                        .with_entity_name(n.map(sb))
                })
                .collect(),
        )
        .with_ops(vec![OpData::default().with_key(sb(key)).with_value(value)])
}

fn alter(broker: &Broker, entries: Vec<EntryData>) -> Vec<i16> {
    let request = AlterClientQuotasRequest::default().with_entries(entries);
    let response: AlterClientQuotasResponse = call(broker, &request, 1);
    response.entries.iter().map(|e| e.error_code).collect()
}

/// `alter` on a connection opened before any IP quota (new ones may be refused).
fn alter_on(conn: &mut RawConn, entries: Vec<EntryData>) -> Vec<i16> {
    let request = AlterClientQuotasRequest::default().with_entries(entries);
    let response = conn.call(&request, 1);
    response.entries.iter().map(|e| e.error_code).collect()
}

/// A new connection answered an ApiVersions request (`false`: closed unserved).
fn served(broker: &Broker) -> bool {
    let Ok(mut conn) =
        RawConn::connect_with(&broker.bootstrap(), "conn-rate", Duration::from_secs(30))
    else {
        return false;
    };
    conn.try_call(&ApiVersionsRequest::default(), 3).is_ok()
}

#[test]
fn ip_entities_are_validated_stored_and_described() {
    let broker = Broker::start();
    let invalid = ResponseError::InvalidRequest.code();
    let codes = alter(
        &broker,
        vec![
            entry(&[("ip", Some("10.1.2.3"))], "connection_creation_rate", 5.0),
            entry(&[("ip", None)], "connection_creation_rate", 100.0),
            entry(
                &[("ip", Some("not-an-ip"))],
                "connection_creation_rate",
                5.0,
            ),
            entry(
                &[("ip", Some("10.1.2.4")), ("user", Some("alice"))],
                "connection_creation_rate",
                5.0,
            ),
            entry(&[("ip", Some("10.1.2.5"))], "producer_byte_rate", 5.0),
            entry(&[("user", Some("bob"))], "connection_creation_rate", 5.0),
            entry(&[("ip", Some("10.1.2.6"))], "connection_creation_rate", 2.5),
        ],
    );
    assert_eq!(
        codes,
        vec![0, 0, invalid, invalid, invalid, invalid, invalid]
    );
    let request = DescribeClientQuotasRequest::default().with_components(vec![
        ComponentData::default()
            .with_entity_type(sb("ip"))
            .with_match_type(2)
            .with_match(None),
    ]);
    let response: DescribeClientQuotasResponse = call(&broker, &request, 1);
    assert_eq!(response.error_code, 0);
    let mut described: Vec<(Option<String>, f64)> = response
        .entries
        .unwrap_or_default()
        .iter()
        .map(|e| {
            assert_eq!(e.entity.len(), 1);
            assert_eq!(e.entity[0].entity_type.as_str(), "ip");
            assert_eq!(e.values[0].key.as_str(), "connection_creation_rate");
            (
                e.entity[0].entity_name.as_ref().map(|n| n.to_string()),
                e.values[0].value,
            )
        })
        .collect();
    described.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        described,
        vec![(None, 100.0), (Some("10.1.2.3".to_string()), 5.0)]
    );
}

#[test]
fn an_ip_over_its_connection_creation_rate_has_new_connections_closed() {
    let broker = Broker::start();
    let mut admin = RawConn::connect_with(&broker.bootstrap(), "admin", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    // 2 connections a second for this client's address: about 20 at once, then refusals.
    assert_eq!(
        alter_on(
            &mut admin,
            vec![entry(
                &[("ip", Some("127.0.0.1"))],
                "connection_creation_rate",
                2.0
            )]
        ),
        vec![0]
    );
    let refused_at = (0..200).find(|_| !served(&broker));
    let refused_at = refused_at.expect("200 connections at once were all served");
    assert!(
        refused_at >= 5,
        "refused after only {refused_at} connections"
    );
    // Another address's default is unlimited: setting the default IP entity very high and
    // removing the named one lets new connections through again.
    assert_eq!(
        alter_on(
            &mut admin,
            vec![
                entry(&[("ip", None)], "connection_creation_rate", 1e6),
                EntryData::default()
                    .with_entity(vec![
                        EntityData::default()
                            .with_entity_type(sb("ip"))
                            .with_entity_name(Some(sb("127.0.0.1"))),
                    ])
                    .with_ops(vec![
                        OpData::default()
                            .with_key(sb("connection_creation_rate"))
                            .with_remove(true),
                    ]),
            ]
        ),
        vec![0, 0]
    );
    assert!(
        served(&broker),
        "refused under the default IP entity's rate"
    );
}

#[test]
fn over_the_broker_connection_creation_rate_new_connections_wait() {
    let broker = Broker::start_with_config("max_connection_creation_rate = 10\n", &[]);
    // 10 a second counted over at least 10 s: the first ~100 go at once; 160 need the
    // rate to fall back under the bound first, so they cannot all be served in 3 s. Every
    // one is served (waiting, not refused).
    let started = Instant::now();
    for i in 0..160 {
        assert!(served(&broker), "connection {i} was not served");
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "160 connections at 10 a second were served in {took:?}"
    );
}
