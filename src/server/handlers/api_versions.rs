//! ApiVersions: what this broker serves. Default-valued tagged fields are never written
//! (as Apache Kafka does): Debian's kcat (librdkafka 2.0.2) mis-parses them.

use crate::server::context::RequestContext;
use crate::metadata::format_level::{self, LevelRange};
use crate::server::features::{FEATURES, FINALIZED_FEATURES_EPOCH};
use crate::server::registry::SERVED_APIS;
use crate::server::response::{Reply, encode_frame};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

fn served() -> Vec<ApiVersion> {
    SERVED_APIS
        .iter()
        .map(|served| {
            ApiVersion::default()
                .with_api_key(served.api as i16)
                .with_min_version(served.min_version)
                .with_max_version(served.max_version)
        })
        .collect()
}

/// KIP-584's supported and finalized features (tagged fields of v3+), as a Kafka 4.x
/// broker lists them: finalized only where the level is above 0. Beside Kafka's fixed
/// ones, `sluice.metadata.version` (decision 0027): this binary's range, and in cluster
/// mode the level the metadata log finalized, whose record's index is the epoch (a single
/// node has nothing to upgrade: its own level, epoch 0).
fn with_features(ctx: &RequestContext<'_>, response: ApiVersionsResponse) -> ApiVersionsResponse {
    let range = LevelRange::of_this_node(ctx.shard.config.upgrade_test_max_metadata_format_level);
    let snapshot = ctx.shard.metadata.load();
    let (level, epoch) = match snapshot.cluster.as_deref() {
        Some(cluster) if ctx.shard.cluster.is_some() => {
            (cluster.format_level(), cluster.features_epoch())
        }
        _ => (range.max, FINALIZED_FEATURES_EPOCH),
    };
    let name = StrBytes::from_static_str(format_level::FEATURE);
    let mut supported: Vec<SupportedFeatureKey> = FEATURES
        .iter()
        .map(|f| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(f.name))
                .with_min_version(f.min_version)
                .with_max_version(f.max_version)
        })
        .collect();
    supported.push(
        SupportedFeatureKey::default()
            .with_name(name.clone())
            .with_min_version(range.min)
            .with_max_version(range.max),
    );
    let mut finalized: Vec<FinalizedFeatureKey> = FEATURES
        .iter()
        .filter(|f| f.finalized_level > 0)
        .map(|f| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_static_str(f.name))
                .with_min_version_level(f.finalized_level)
                .with_max_version_level(f.finalized_level)
        })
        .collect();
    finalized.push(
        FinalizedFeatureKey::default()
            .with_name(name)
            .with_min_version_level(level)
            .with_max_version_level(level),
    );
    response
        .with_supported_features(supported)
        .with_finalized_features_epoch(epoch)
        .with_finalized_features(finalized)
}

pub async fn handle(ctx: &RequestContext<'_>, _request: ApiVersionsRequest) -> ApiVersionsResponse {
    let response = ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(served())
        .with_throttle_time_ms(0);
    if ctx.version >= 3 {
        with_features(ctx, response)
    } else {
        response
    }
}

/// A client asked for an ApiVersions version we do not serve: answer in v0 (which every
/// client can parse) with UNSUPPORTED_VERSION and our list, so it can retry lower.
pub fn unsupported_version(correlation_id: i32) -> Reply {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(served());
    match encode_frame(correlation_id, 0, &body, 0) {
        Ok(frame) => Reply::Frame(frame),
        Err(e) => Reply::Close(e),
    }
}
