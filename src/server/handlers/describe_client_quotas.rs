//! DescribeClientQuotas (KIP-546): the stored quota entities a filter selects, with Kafka's
//! component rules (each entity type once; exact match by name, the default entity, or any
//! entity having the type) and `strict` (only entities with exactly the filtered types).
//! CLUSTER DESCRIBE is checked before this runs (`access`).

use crate::metadata::quotas::{CLIENT_ID, EntityName, IP, QuotaEntity, USER};
use crate::server::context::RequestContext;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_client_quotas_response::{
    EntityData, EntryData, ValueData,
};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;

/// Kafka's match types (DescribeClientQuotasRequest.MATCH_TYPE_*).
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

/// What one filter component requires of an entity's part of its type.
enum Match {
    Exactly(EntityName),
    AnyName,
}

fn refused(code: ResponseError, message: String) -> DescribeClientQuotasResponse {
    DescribeClientQuotasResponse::default()
        .with_error_code(code.code())
        .with_error_message(Some(StrBytes::from_string(message)))
        .with_entries(None)
}

/// The filter's components as (entity type, match), or the error Kafka answers.
fn parse_filter(
    request: &DescribeClientQuotasRequest,
) -> Result<Vec<(&'static str, Match)>, (ResponseError, String)> {
    let invalid = |m: String| (ResponseError::InvalidRequest, m);
    let mut filter: Vec<(&'static str, Match)> = Vec::with_capacity(request.components.len());
    let mut saw_ip = false;
    for component in &request.components {
        let entity_type = match component.entity_type.as_str() {
            "" => return Err(invalid("Invalid empty entity type.".into())),
            USER => USER,
            CLIENT_ID => CLIENT_ID,
            IP => IP,
            other => {
                return Err((
                    ResponseError::UnsupportedVersion,
                    format!("Unsupported entity type {other}"),
                ));
            }
        };
        if filter.iter().any(|(t, _)| *t == entity_type) || (entity_type == IP && saw_ip) {
            return Err(invalid(format!(
                "Entity type {entity_type} cannot appear more than once in the filter."
            )));
        }
        let name = component._match.as_deref();
        let matched = match (component.match_type, name) {
            (MATCH_EXACT, Some(n)) => Match::Exactly(EntityName::Named(n.to_string())),
            (MATCH_EXACT, None) => {
                return Err(invalid(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.".into(),
                ));
            }
            (MATCH_DEFAULT, None) => Match::Exactly(EntityName::Default),
            (MATCH_SPECIFIED, None) => Match::AnyName,
            (MATCH_DEFAULT | MATCH_SPECIFIED, Some(_)) => {
                return Err(invalid(format!(
                    "Request specified match type {}, but also specified a match string.",
                    component.match_type
                )));
            }
            (other, _) => return Err(invalid(format!("Unknown match type {other}"))),
        };
        saw_ip |= entity_type == IP;
        filter.push((entity_type, matched));
    }
    if saw_ip && filter.len() > 1 {
        return Err(invalid(
            "Invalid entity filter component combination. IP filter component should not be \
             used with user or clientId filter component."
                .into(),
        ));
    }
    Ok(filter)
}

fn selected(entity: &QuotaEntity, filter: &[(&'static str, Match)], strict: bool) -> bool {
    let each_matches = filter
        .iter()
        .all(|(entity_type, matched)| match (entity.part(entity_type), matched) {
            (None, _) => false,
            (Some(name), Match::Exactly(wanted)) => name == wanted,
            (Some(_), Match::AnyName) => true,
        });
    each_matches && (!strict || entity.parts().count() == filter.len())
}

fn entry(entity: &QuotaEntity, values: &crate::metadata::quotas::QuotaValues) -> EntryData {
    let entity = entity
        .parts()
        .map(|(entity_type, name)| {
            EntityData::default()
                .with_entity_type(StrBytes::from_static_str(entity_type))
                .with_entity_name(name.as_wire().map(|n| StrBytes::from_string(n.to_string())))
        })
        .collect();
    let values = values
        .iter()
        .map(|(key, value)| {
            ValueData::default()
                .with_key(StrBytes::from_static_str(key.name()))
                .with_value(*value)
        })
        .collect();
    EntryData::default()
        .with_entity(entity)
        .with_values(values)
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let filter = match parse_filter(&request) {
        Ok(filter) => filter,
        Err((code, message)) => return refused(code, message),
    };
    let snapshot = ctx.shard.metadata.load_full();
    let entries = if request.strict && filter.is_empty() {
        Vec::new()
    } else {
        snapshot
            .client_quotas
            .iter()
            .filter(|(entity, _)| selected(entity, &filter, request.strict))
            .map(|(entity, values)| entry(entity, values))
            .collect()
    };
    DescribeClientQuotasResponse::default()
        .with_error_code(0)
        .with_entries(Some(entries))
}
