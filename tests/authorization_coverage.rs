//! "A new handler cannot forget": every API whose line in `api_table!` names a topic,
//! group or transactional-id requirement must have a handler that asks the authorizer for
//! the names in its request (`access::permitted`, or the config-resource helpers built on
//! it). Cluster-only requirements are enforced by routing before any handler, and a unit
//! test in `server::routing` checks each of those APIs has a refusal answer.

use std::path::{Path, PathBuf};

/// Calls that check a request's names against the table's requirements.
const CHECKS: &[&str] = &[
    "permitted(",
    "config_refusal(",
    "config_resources::alter",
    "config_resources::{alter",
];

/// Requirements on resources the request names (not the cluster).
const NAMED_RESOURCES: &[&str] = &[
    "needs(Topic",
    "needs(Group",
    "needs(TransactionalId",
    "TOPIC_CREATE",
];

fn handler_sources(module: &str) -> String {
    let handlers = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server/handlers");
    let file = handlers.join(format!("{module}.rs"));
    let dir: PathBuf = handlers.join(module);
    let mut text = std::fs::read_to_string(&file).unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    assert!(!text.is_empty(), "no handler source for `{module}`");
    text
}

#[test]
fn every_handler_of_an_api_with_named_resources_checks_them() {
    let registry = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server/registry.rs"),
    )
    .expect("registry.rs");
    let mut checked = 0;
    let mut forgotten = Vec::new();
    for line in registry.lines().map(str::trim) {
        let Some((_, rest)) = line.split_once(" => ") else {
            continue;
        };
        let Some((module, authorize)) = rest.split_once(", Authorize::") else {
            continue;
        };
        if !NAMED_RESOURCES.iter().any(|r| authorize.contains(r)) {
            continue;
        }
        checked += 1;
        let source = handler_sources(module);
        if !CHECKS.iter().any(|c| source.contains(c)) {
            forgotten.push(module.to_string());
        }
    }
    assert!(checked > 20, "the table was not parsed ({checked} APIs)");
    assert!(
        forgotten.is_empty(),
        "handlers that never check the names in their request: {forgotten:?}"
    );
}
