//! `sluice cluster features`: what `kafka-features.sh describe|upgrade` does, over the same
//! wire (ApiVersions v3's feature fields to describe, UpdateFeatures to raise a level), so
//! either tool works against a Sluice cluster (decision 0027).
//!
//! Must not: reach into broker internals.

use crate::client::Client;
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::{ApiVersionsRequest, UpdateFeaturesRequest};
use kafka_protocol::protocol::StrBytes;

/// How long the broker may take to commit an upgrade (the metadata quorum's round trip).
const UPDATE_TIMEOUT_MS: i32 = 30_000;
/// Kafka's `FeatureUpdate.UpgradeType.UPGRADE`.
const UPGRADE: i8 = 1;

fn parse(spec: &str) -> Result<(String, i16), String> {
    let (name, level) = spec
        .split_once('=')
        .ok_or_else(|| format!("--upgrade {spec}: expected NAME=LEVEL"))?;
    let level = level
        .parse::<i16>()
        .map_err(|_| format!("--upgrade {spec}: LEVEL must be a number"))?;
    Ok((name.to_string(), level))
}

pub fn run(bootstrap: &str, upgrades: &[String], dry_run: bool) -> Result<(), String> {
    let updates = upgrades
        .iter()
        .map(|s| parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut client = Client::connect(bootstrap).map_err(|e| e.to_string())?;
    let conn = client.any_connection().map_err(|e| e.to_string())?;
    if !updates.is_empty() {
        let request = UpdateFeaturesRequest::default()
            .with_timeout_ms(UPDATE_TIMEOUT_MS)
            .with_validate_only(dry_run)
            .with_feature_updates(
                updates
                    .iter()
                    .map(|(name, level)| {
                        FeatureUpdateKey::default()
                            .with_feature(StrBytes::from_string(name.clone()))
                            .with_max_version_level(*level)
                            .with_upgrade_type(UPGRADE)
                    })
                    .collect(),
            );
        let response = conn.call(&request).map_err(|e| e.to_string())?;
        let mut failed = Vec::new();
        for r in &response.results {
            let message = r.error_message.as_ref().map_or("", |m| m.as_str());
            if r.error_code == 0 {
                let verb = if dry_run {
                    "can be finalized"
                } else {
                    "finalized"
                };
                println!("{}: {verb}", r.feature.as_str());
            } else {
                failed.push(format!(
                    "{}: {message} (error {})",
                    r.feature.as_str(),
                    r.error_code
                ));
            }
        }
        if response.error_code != 0 || !failed.is_empty() {
            let top = response.error_message.as_ref().map_or("", |m| m.as_str());
            failed.insert(
                0,
                format!("UpdateFeatures refused {top}")
                    .trim_end()
                    .to_string(),
            );
            return Err(failed.join("\n"));
        }
    }
    describe(conn)
}

fn describe(conn: &mut crate::client::Connection) -> Result<(), String> {
    let versions = conn
        .call(&ApiVersionsRequest::default())
        .map_err(|e| e.to_string())?;
    println!("finalized epoch: {}", versions.finalized_features_epoch);
    for f in &versions.supported_features {
        let finalized = versions
            .finalized_features
            .iter()
            .find(|x| x.name == f.name)
            .map_or("-".to_string(), |x| x.max_version_level.to_string());
        println!(
            "{:<26} supported {}..={}  finalized {finalized}",
            f.name.as_str(),
            f.min_version,
            f.max_version
        );
    }
    Ok(())
}
