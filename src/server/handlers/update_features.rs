//! UpdateFeatures (KIP-584): the levels in `server::features` are fixed, so an update to a
//! feature's current level succeeds (nothing changes) and any other answers
//! INVALID_UPDATE_VERSION with the reason. v2 drops per-feature results: the first failure
//! becomes the top-level error, as in Kafka.

use crate::server::context::RequestContext;
use crate::server::features::feature;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};
use kafka_protocol::protocol::StrBytes;

/// Why `update` cannot be applied, if it cannot.
fn refusal(update: &FeatureUpdateKey) -> Option<String> {
    let name = update.feature.as_str();
    let Some(known) = feature(name) else {
        return Some(format!("This node does not support the {name} feature."));
    };
    let wanted = update.max_version_level;
    if wanted == known.finalized_level {
        return None;
    }
    Some(format!(
        "Cannot change {name} from level {} to {wanted}: this single node's feature levels are fixed.",
        known.finalized_level
    ))
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: UpdateFeaturesRequest,
) -> UpdateFeaturesResponse {
    let results: Vec<UpdatableFeatureResult> = request
        .feature_updates
        .iter()
        .map(|update| {
            let result = UpdatableFeatureResult::default().with_feature(update.feature.clone());
            match refusal(update) {
                None => result.with_error_code(0).with_error_message(None),
                Some(message) => result
                    .with_error_code(ResponseError::InvalidUpdateVersion.code())
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
