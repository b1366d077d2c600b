//! AlterClientQuotas (KIP-546): validates each entry as Kafka's controller does (entity
//! types and names, known keys, integral byte rates; INVALID_REQUEST with the reason),
//! answers `validate_only` without storing, and otherwise applies the valid entries through
//! the metadata writer in one change. CLUSTER ALTER is checked before this runs (`access`).

use crate::metadata::quotas::{QuotaAlteration, QuotaEntity, QuotaKey};
use crate::server::context::RequestContext;
use crate::shard::security_changes::alter_client_quotas;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_client_quotas_request::EntryData as RequestEntry;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;

/// The entry as an alteration, or the INVALID_REQUEST message.
fn validate(entry: &RequestEntry) -> Result<QuotaAlteration, String> {
    let entity = QuotaEntity::from_wire(
        entry
            .entity
            .iter()
            .map(|e| (e.entity_type.as_str(), e.entity_name.as_deref())),
    )?;
    let mut ops: Vec<(QuotaKey, Option<f64>)> = Vec::with_capacity(entry.ops.len());
    for op in &entry.ops {
        let key = QuotaKey::parse(op.key.as_str())?;
        if !entity.takes(key) {
            // Kafka validates IP entities against the IP configs, the others against the
            // client configs: a key of the other set is unknown there.
            return Err(format!("Invalid configuration key {}", key.name()));
        }
        if ops.iter().any(|(k, _)| *k == key) {
            return Err(format!("Duplicate quota key {}", key.name()));
        }
        if op.remove {
            ops.push((key, None));
        } else {
            key.validate(op.value)?;
            ops.push((key, Some(op.value)));
        }
    }
    Ok(QuotaAlteration { entity, ops })
}

/// The response entry echoing `entry`'s entity with `code` and `message`.
fn result(entry: &RequestEntry, code: i16, message: Option<String>) -> EntryData {
    let entity = entry
        .entity
        .iter()
        .map(|e| {
            EntityData::default()
                .with_entity_type(e.entity_type.clone())
                .with_entity_name(e.entity_name.clone())
        })
        .collect();
    EntryData::default()
        .with_error_code(code)
        .with_error_message(message.map(StrBytes::from_string))
        .with_entity(entity)
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let mut results = Vec::with_capacity(request.entries.len());
    let mut valid: Vec<(usize, QuotaAlteration)> = Vec::new();
    for (i, entry) in request.entries.iter().enumerate() {
        let duplicate = request.entries[..i].iter().any(|e| e.entity == entry.entity);
        match validate(entry) {
            Ok(_) if duplicate => results.push(result(
                entry,
                ResponseError::InvalidRequest.code(),
                Some("Duplicate quota entity in the request".into()),
            )),
            Ok(alteration) => {
                valid.push((i, alteration));
                results.push(result(entry, 0, None));
            }
            Err(message) => results.push(result(
                entry,
                ResponseError::InvalidRequest.code(),
                Some(message),
            )),
        }
    }
    if request.validate_only || valid.is_empty() {
        return AlterClientQuotasResponse::default().with_entries(results);
    }
    let indexes: Vec<usize> = valid.iter().map(|(i, _)| *i).collect();
    let alterations = valid.into_iter().map(|(_, a)| a).collect();
    if let Err(e) = alter_client_quotas(ctx.shard, alterations).await {
        for i in indexes {
            results[i] = result(&request.entries[i], e.code, Some(e.message.clone()));
        }
    }
    AlterClientQuotasResponse::default().with_entries(results)
}
