//! Rolling upgrades (issue 17, decision 0027): a 3-node cluster where node 3 runs as an
//! older binary (the hidden `upgrade_test_max_metadata_format_level = 1`) stays at metadata
//! format level 1; UpdateFeatures to level 2 is refused naming node 3 until it restarts
//! with the newer binary; then the upgrade goes through and every node reports level 2
//! with a higher finalized epoch; an older binary started afterwards is refused
//! registration and stops instead of running diverged. A cluster whose initial nodes all
//! run the new binary starts at the newest level by itself.

mod support;

use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::{ApiVersionsRequest, UpdateFeaturesRequest, UpdateFeaturesResponse};
use kafka_protocol::protocol::StrBytes;
use std::time::{Duration, Instant};
use support::Broker;
use support::cluster::LocalCluster;
use support::wire::RawConn;

const FEATURE: &str = "sluice.metadata.version";
const INVALID_UPDATE_VERSION: i16 = 95;
/// The newest level this binary reads (`CURRENT_LEVEL` in src/metadata/format_level.rs).
const NEWEST: i16 = 5;
const OLD_BINARY: &str = "upgrade_test_max_metadata_format_level = 1";
/// How long an applied change may take to reach every node, and a restarted node to
/// register, on a loaded 2-core box.
const SETTLE: Duration = Duration::from_secs(30);

/// `(supported max, finalized level, finalized epoch)` of the feature as `node` reports it.
fn levels(node: &Broker) -> Option<(i16, i16, i64)> {
    let mut conn = RawConn::connect(&node.bootstrap()).ok()?;
    let response = conn.try_call(&ApiVersionsRequest::default(), 3).ok()?;
    let supported = response
        .supported_features
        .iter()
        .find(|f| f.name.as_str() == FEATURE)?
        .max_version;
    let finalized = response
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == FEATURE)?
        .max_version_level;
    Some((supported, finalized, response.finalized_features_epoch))
}

fn update(node: &Broker, level: i16, validate_only: bool) -> UpdateFeaturesResponse {
    let request = UpdateFeaturesRequest::default()
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only)
        .with_feature_updates(vec![
            FeatureUpdateKey::default()
                .with_feature(StrBytes::from_static_str(FEATURE))
                .with_max_version_level(level)
                .with_upgrade_type(1),
        ]);
    let mut conn = RawConn::connect(&node.bootstrap()).expect("connect");
    conn.call(&request, 1)
}

fn result(response: &UpdateFeaturesResponse) -> (i16, String) {
    let r = &response.results[0];
    let message = r.error_message.as_ref().map(|m| m.to_string());
    (r.error_code, message.unwrap_or_default())
}

/// Restarts node `id` with its config file's old-binary line present or not (an old binary
/// is not waited for).
fn restart(cluster: &mut LocalCluster, id: i32, old: bool) {
    let node = cluster.node_mut(id);
    node.kill();
    let at = node
        .extra_args
        .iter()
        .position(|a| a == "--config")
        .expect("--config")
        + 1;
    let path = node.extra_args[at].clone();
    let text = std::fs::read_to_string(&path).expect("read config");
    let mut text: String = text
        .lines()
        .filter(|l| !l.starts_with("upgrade_test_"))
        .map(|l| format!("{l}\n"))
        .collect();
    if old {
        text.push_str(OLD_BINARY);
        text.push('\n');
    }
    std::fs::write(&path, text).expect("write config");
    if old {
        // Only ever after the upgrade here: its registration is refused and it stops,
        // possibly before its port ever listens (it listens once caught up).
        node.spawn_unwaited();
    } else {
        node.spawn();
    }
}

fn wait_for<T>(what: &str, cluster: &LocalCluster, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not within {SETTLE:?}\n{}",
            cluster.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_new_cluster_of_new_binaries_starts_at_the_newest_level() {
    let cluster = LocalCluster::start(3);
    cluster.wait_until_formed(3);
    let mut epochs = Vec::new();
    for id in 1..=3 {
        let (supported, _, epoch) = wait_for("the bootstrapped level", &cluster, || {
            levels(cluster.node(id)).filter(|l| l.1 == NEWEST)
        });
        assert_eq!(supported, NEWEST);
        epochs.push(epoch);
    }
    assert!(
        epochs[0] > 0 && epochs.iter().all(|e| *e == epochs[0]),
        "{epochs:?}"
    );
}

#[test]
fn a_rolling_upgrade_raises_the_format_level_once_every_node_reads_it() {
    let (mut cluster, _ports) =
        LocalCluster::start_with_listeners(3, &|_| vec!["PLAINTEXT"], &|id| {
            if id == 3 {
                OLD_BINARY.into()
            } else {
                String::new()
            }
        });
    cluster.wait_until_formed(3);
    // Every node is at level 1, epoch 0; node 3 reads only level 1.
    for id in 1..=3 {
        let expected = (if id == 3 { 1 } else { NEWEST }, 1, 0);
        let seen = wait_for("ApiVersions", &cluster, || levels(cluster.node(id)));
        assert_eq!(seen, expected, "node {id}: (supported max, level, epoch)");
    }

    // With node 3 old, the upgrade is refused, naming it, through any node.
    for id in [1, 2] {
        let (code, message) = result(&update(cluster.node(id), 2, false));
        assert_eq!(code, INVALID_UPDATE_VERSION, "node {id}: {message}");
        assert!(message.contains("broker 3"), "node {id}: {message}");
    }
    let upgrade = [
        "cluster",
        "features",
        "--upgrade",
        "sluice.metadata.version=2",
    ];
    let (ok, _, stderr) = support::sluice_cli(&cluster.node(2).bootstrap(), &upgrade, None);
    assert!(!ok && stderr.contains("broker 3 (up to 1)"), "{stderr}");
    assert_eq!(levels(cluster.node(1)).map(|l| l.1), Some(1));

    // Node 3 rolls to the new binary: once its registration is applied, the check passes.
    restart(&mut cluster, 3, false);
    wait_for("node 3's new registration", &cluster, || {
        (result(&update(cluster.node(1), 2, true)).0 == 0).then_some(())
    });
    assert_eq!(
        levels(cluster.node(1)).map(|l| l.1),
        Some(1),
        "validate_only changed it"
    );
    let (ok, stdout, stderr) = support::sluice_cli(&cluster.node(2).bootstrap(), &upgrade, None);
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("sluice.metadata.version: finalized"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("sluice.metadata.version") && l.ends_with("finalized 2")),
        "{stdout}"
    );

    // Every node reports level 2 with the same epoch, above 0 (the record's log index).
    let mut epochs = Vec::new();
    for id in 1..=3 {
        let (_, _, epoch) = wait_for("level 2 everywhere", &cluster, || {
            levels(cluster.node(id)).filter(|l| l.1 == 2)
        });
        epochs.push(epoch);
    }
    assert!(
        epochs[0] > 0 && epochs.iter().all(|e| *e == epochs[0]),
        "{epochs:?}"
    );

    // An older binary can no longer join: refused registration, it stops with the reason.
    restart(&mut cluster, 3, true);
    let deadline = Instant::now() + SETTLE;
    let status = loop {
        let child = cluster.node_mut(3).child.as_mut().expect("node 3 runs");
        if let Some(status) = child.try_wait().expect("wait for node 3") {
            break status.code();
        }
        assert!(Instant::now() < deadline, "the old binary kept running");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, Some(78), "exit code of a refused registration");
    let log = std::fs::read_to_string(cluster.node(3).log_path.as_ref().expect("log")).unwrap();
    assert!(log.contains("broker registration refused"), "{log}");
    assert!(log.contains("finalized at 2"), "{log}");
}
