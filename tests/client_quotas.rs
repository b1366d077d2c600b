//! Client quotas over the raw protocol (issue 20): AlterClientQuotas validation as Kafka's
//! controller does it, `validate_only`, removal, DescribeClientQuotas's exact / default /
//! any filters and `strict`, quotas surviving a restart, and CLUSTER_AUTHORIZATION_FAILED
//! for a principal without CLUSTER ALTER / DESCRIBE.

mod support;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::{Request, StrBytes};
use support::{Broker, wire};

const EXACT: i8 = 0;
const DEFAULT: i8 = 1;
const ANY: i8 = 2;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn call<R: Request>(broker: &Broker, request: &R, version: i16) -> R::Response {
    wire::call_once(&broker.bootstrap(), "client-quotas-test", request, version)
}

/// An entity from (type, name) pairs; `None` is the default entity.
fn entity(parts: &[(&str, Option<&str>)]) -> Vec<EntityData> {
    parts
        .iter()
        .map(|(t, n)| {
            EntityData::default()
                .with_entity_type(sb(t))
                .with_entity_name(n.map(sb))
        })
        .collect()
}

fn set(key: &str, value: f64) -> OpData {
    OpData::default().with_key(sb(key)).with_value(value)
}

fn remove(key: &str) -> OpData {
    OpData::default().with_key(sb(key)).with_remove(true)
}

fn alter(broker: &Broker, entries: Vec<EntryData>, validate_only: bool) -> Vec<i16> {
    let request = AlterClientQuotasRequest::default()
        .with_entries(entries)
        .with_validate_only(validate_only);
    let response: AlterClientQuotasResponse = call(broker, &request, 1);
    response.entries.iter().map(|e| e.error_code).collect()
}

fn entry(parts: &[(&str, Option<&str>)], ops: Vec<OpData>) -> EntryData {
    EntryData::default()
        .with_entity(entity(parts))
        .with_ops(ops)
}

fn component(entity_type: &str, match_type: i8, name: Option<&str>) -> ComponentData {
    ComponentData::default()
        .with_entity_type(sb(entity_type))
        .with_match_type(match_type)
        .with_match(name.map(sb))
}

/// A described entity ("type=name" parts joined) and its (key, value) pairs.
type Described = (String, Vec<(String, f64)>);

/// The described entities, each as sorted "type=name" parts (`type=<default>` for the
/// default entity) with its values, sorted.
fn describe(
    broker: &Broker,
    components: Vec<ComponentData>,
    strict: bool,
) -> Result<Vec<Described>, i16> {
    let request = DescribeClientQuotasRequest::default()
        .with_components(components)
        .with_strict(strict);
    let response: DescribeClientQuotasResponse = call(broker, &request, 1);
    if response.error_code != 0 {
        return Err(response.error_code);
    }
    let mut entries: Vec<Described> = response
        .entries
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let mut parts: Vec<String> = e
                .entity
                .iter()
                .map(|p| {
                    let name = p.entity_name.as_deref().unwrap_or("<default>");
                    format!("{}={name}", p.entity_type.as_str())
                })
                .collect();
            parts.sort();
            let mut values: Vec<(String, f64)> = e
                .values
                .iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect();
            values.sort_by(|a, b| a.0.cmp(&b.0));
            (parts.join(","), values)
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

fn names(entries: &[Described]) -> Vec<&str> {
    entries.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn alter_validates_as_kafka_and_validate_only_stores_nothing() {
    let broker = Broker::start();
    let invalid = ResponseError::InvalidRequest.code();
    let codes = alter(
        &broker,
        vec![
            entry(
                &[("user", Some("alice"))],
                vec![set("producer_byte_rate", 1024.0)],
            ),
            entry(&[("user", Some("bob"))], vec![set("no_such_quota", 1.0)]),
            entry(
                &[("user", Some("carol"))],
                vec![set("producer_byte_rate", 10.5)],
            ),
            entry(&[], vec![set("producer_byte_rate", 1.0)]),
            entry(&[("user", Some(""))], vec![set("producer_byte_rate", 1.0)]),
            entry(
                &[("user", Some("a")), ("user", Some("b"))],
                vec![set("producer_byte_rate", 1.0)],
            ),
            entry(
                &[("group", Some("g"))],
                vec![set("producer_byte_rate", 1.0)],
            ),
            entry(
                &[("client-id", None)],
                vec![set("request_percentage", 12.5)],
            ),
        ],
        true,
    );
    assert_eq!(
        codes,
        vec![0, invalid, invalid, invalid, invalid, invalid, invalid, 0]
    );
    assert_eq!(
        describe(&broker, vec![], false),
        Ok(vec![]),
        "validate_only stored"
    );
}

#[test]
fn quotas_round_trip_filter_and_survive_a_restart() {
    let mut broker = Broker::start();
    let codes = alter(
        &broker,
        vec![
            entry(
                &[("user", Some("alice"))],
                vec![set("producer_byte_rate", 1_048_576.0)],
            ),
            entry(
                &[("user", Some("alice")), ("client-id", Some("app"))],
                vec![
                    set("consumer_byte_rate", 2048.0),
                    set("request_percentage", 50.0),
                ],
            ),
            entry(&[("user", None)], vec![set("producer_byte_rate", 4096.0)]),
            entry(
                &[("client-id", None)],
                vec![set("consumer_byte_rate", 8192.0)],
            ),
        ],
        false,
    );
    assert_eq!(codes, vec![0, 0, 0, 0]);

    let all = describe(&broker, vec![], false).unwrap();
    assert_eq!(
        names(&all),
        vec![
            "client-id=<default>",
            "client-id=app,user=alice",
            "user=<default>",
            "user=alice"
        ]
    );
    assert_eq!(
        all[3].1,
        vec![("producer_byte_rate".to_string(), 1_048_576.0)]
    );

    let exact_alice = describe(
        &broker,
        vec![component("user", EXACT, Some("alice"))],
        false,
    );
    assert_eq!(
        names(&exact_alice.unwrap()),
        vec!["client-id=app,user=alice", "user=alice"]
    );
    let strict_alice = describe(&broker, vec![component("user", EXACT, Some("alice"))], true);
    assert_eq!(names(&strict_alice.unwrap()), vec!["user=alice"]);
    let default_user = describe(&broker, vec![component("user", DEFAULT, None)], false);
    assert_eq!(names(&default_user.unwrap()), vec!["user=<default>"]);
    let any_user = describe(&broker, vec![component("user", ANY, None)], true);
    assert_eq!(
        names(&any_user.unwrap()),
        vec!["user=<default>", "user=alice"]
    );
    let any_client = describe(&broker, vec![component("client-id", ANY, None)], false);
    assert_eq!(
        names(&any_client.unwrap()),
        vec!["client-id=<default>", "client-id=app,user=alice"]
    );

    let invalid = ResponseError::InvalidRequest.code();
    let twice = vec![
        component("user", ANY, None),
        component("user", DEFAULT, None),
    ];
    assert_eq!(describe(&broker, twice, false), Err(invalid));
    let exact_null = vec![component("user", EXACT, None)];
    assert_eq!(describe(&broker, exact_null, false), Err(invalid));
    let default_named = vec![component("user", DEFAULT, Some("x"))];
    assert_eq!(describe(&broker, default_named, false), Err(invalid));
    let unknown_type = vec![component("topic", ANY, None)];
    assert_eq!(
        describe(&broker, unknown_type, false),
        Err(ResponseError::UnsupportedVersion.code())
    );

    broker.terminate();
    broker.spawn();
    assert_eq!(
        describe(&broker, vec![], false).unwrap(),
        all,
        "quotas lost on restart"
    );

    // Removing the last value of an entity removes the entity.
    let codes = alter(
        &broker,
        vec![entry(
            &[("user", Some("alice"))],
            vec![remove("producer_byte_rate")],
        )],
        false,
    );
    assert_eq!(codes, vec![0]);
    broker.terminate();
    broker.spawn();
    let after = describe(&broker, vec![component("user", EXACT, Some("alice"))], true);
    assert_eq!(after, Ok(vec![]), "removal lost on restart");
}

#[test]
fn a_principal_without_cluster_alter_cannot_change_quotas() {
    let broker = Broker::start_with_config("authorizer = \"standard\"\n", &[]);
    let codes = alter(
        &broker,
        vec![entry(
            &[("user", Some("alice"))],
            vec![set("producer_byte_rate", 1.0)],
        )],
        false,
    );
    let refused = ResponseError::ClusterAuthorizationFailed.code();
    assert_eq!(codes, vec![refused]);
    assert_eq!(describe(&broker, vec![], false), Err(refused));
}
