//! UpdateFeatures (KIP-584). Kafka's own features (`server::features`) are fixed: an update
//! to a feature's current level succeeds (nothing changes) and any other answers
//! INVALID_UPDATE_VERSION with the reason. `sluice.metadata.version` (decision 0027) is
//! raised in cluster mode through the metadata log: checked here against the applied state
//! (every registered broker must read the new level), then proposed as `FinalizeFeature`
//! from whichever broker the request reached (the controller re-checks it when it is
//! applied, the same on every node). `validate_only` checks without proposing. Every
//! update is checked before any is proposed; v2 drops per-feature results: the first
//! failure becomes the top-level error, as in Kafka.

use crate::metadata::format_level::{self, CURRENT_LEVEL, FEATURE, LEGACY_LEVEL};
use crate::metadata::replicated::MetadataRecord;
use crate::server::context::RequestContext;
use crate::server::features::feature;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};
use kafka_protocol::protocol::StrBytes;

/// Kafka's `FeatureUpdate.UpgradeType`: 1 upgrade, 2 safe and 3 unsafe downgrade (v0's
/// `allow_downgrade` maps to 3).
const UPGRADE: i8 = 1;

type Refusal = (i16, String);

fn invalid(message: String) -> Option<Refusal> {
    Some((ResponseError::InvalidUpdateVersion.code(), message))
}

/// Why `update` of one of Kafka's fixed features cannot be applied, if it cannot.
fn fixed_refusal(update: &FeatureUpdateKey) -> Option<Refusal> {
    let name = update.feature.as_str();
    let Some(known) = feature(name) else {
        return invalid(format!("This node does not support the {name} feature."));
    };
    let wanted = update.max_version_level;
    if wanted == known.finalized_level {
        return None;
    }
    invalid(format!(
        "Cannot change {name} from level {} to {wanted}: this cluster's Kafka feature levels are fixed.",
        known.finalized_level
    ))
}

/// The rules for `sluice.metadata.version`; `Ok(Some(level))`: a level to propose.
fn format_refusal(
    ctx: &RequestContext<'_>,
    update: &FeatureUpdateKey,
) -> Result<Option<i16>, Refusal> {
    let wanted = update.max_version_level;
    let snapshot = ctx.shard.metadata.load();
    let cluster = match snapshot.cluster.as_deref() {
        Some(cluster) if ctx.shard.cluster.is_some() => cluster,
        // A single node has no log to upgrade: its level is this binary's.
        _ if wanted == CURRENT_LEVEL => return Ok(None),
        _ => {
            return Err((
                ResponseError::InvalidUpdateVersion.code(),
                format!("{FEATURE} is fixed at {CURRENT_LEVEL} on a single node"),
            ));
        }
    };
    let current = cluster.format_level();
    let upgrade_type = if ctx.version == 0 {
        if update.allow_downgrade { 3 } else { UPGRADE }
    } else {
        update.upgrade_type
    };
    if wanted == current {
        return Ok(None);
    }
    if wanted > current && upgrade_type != UPGRADE {
        return Err((
            ResponseError::InvalidUpdateVersion.code(),
            format!("cannot downgrade {FEATURE} from {current} to a higher level {wanted}"),
        ));
    }
    if !(LEGACY_LEVEL..=CURRENT_LEVEL).contains(&wanted) {
        return Err((
            ResponseError::InvalidUpdateVersion.code(),
            format!("this node reads {FEATURE} {LEGACY_LEVEL}..={CURRENT_LEVEL}, not {wanted}"),
        ));
    }
    cluster
        .check_finalize(FEATURE, wanted)
        .map_err(|e| (e.kafka_error_code(), e.to_string()))?;
    Ok(Some(wanted))
}

/// Each update's refusal, if any, and the `FinalizeFeature` records the request asks for.
fn check_all(
    ctx: &RequestContext<'_>,
    request: &UpdateFeaturesRequest,
) -> (Vec<Option<Refusal>>, Vec<MetadataRecord>) {
    let mut refusals = Vec::new();
    let mut records = Vec::new();
    for update in &request.feature_updates {
        if update.feature.as_str() != FEATURE {
            refusals.push(fixed_refusal(update));
            continue;
        }
        match format_refusal(ctx, update) {
            Ok(raise) => {
                refusals.push(None);
                records.extend(raise.map(|level| MetadataRecord::FinalizeFeature {
                    name: FEATURE.to_string(),
                    level,
                }));
            }
            Err(refusal) => refusals.push(Some(refusal)),
        }
    }
    (refusals, records)
}

/// Proposes the checked records; the first one refused or not committed is the answer of
/// every update of `sluice.metadata.version` in the request.
async fn propose(ctx: &RequestContext<'_>, records: Vec<MetadataRecord>) -> Option<Refusal> {
    let cluster = ctx.shard.cluster.as_ref()?;
    for record in records {
        if let Err(refusal) = cluster.propose(record).await {
            return Some(refusal);
        }
    }
    tracing::info!(
        level = ctx.shard.metadata.load().cluster.as_deref().map(|c| c.format_level()),
        "{} finalized",
        format_level::FEATURE
    );
    None
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: UpdateFeaturesRequest,
) -> UpdateFeaturesResponse {
    let (mut refusals, records) = check_all(ctx, &request);
    let all_valid = refusals.iter().all(Option::is_none);
    if !all_valid && !records.is_empty() {
        // All or nothing, as Kafka's controller: a valid raise beside a refused update is
        // not made either.
        let skipped = invalid("not applied: another update of the request was refused".into());
        for (update, slot) in request.feature_updates.iter().zip(refusals.iter_mut()) {
            if update.feature.as_str() == FEATURE && slot.is_none() {
                *slot = skipped.clone();
            }
        }
    }
    if all_valid
        && !request.validate_only
        && let Some(refusal) = propose(ctx, records).await
    {
        for (update, slot) in request.feature_updates.iter().zip(refusals.iter_mut()) {
            if update.feature.as_str() == FEATURE {
                *slot = Some(refusal.clone());
            }
        }
    }
    let results: Vec<UpdatableFeatureResult> = request
        .feature_updates
        .iter()
        .zip(refusals)
        .map(|(update, refusal)| {
            let result = UpdatableFeatureResult::default().with_feature(update.feature.clone());
            match refusal {
                None => result.with_error_code(0).with_error_message(None),
                Some((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    let response = UpdateFeaturesResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(0)
        .with_error_message(None);
    if ctx.version <= 1 {
        return response.with_results(results);
    }
    match results.into_iter().find(|r| r.error_code != 0) {
        Some(failed) => response
            .with_error_code(failed.error_code)
            .with_error_message(failed.error_message),
        None => response,
    }
}
