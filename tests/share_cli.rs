//! `sluice group describe` of a share group (KIP-932): members and their partitions, the
//! share-partition start offset, log end and lag, and with `--admin` the in-flight records
//! by state and the highest delivery count, while a confluent-kafka `ShareConsumer` holds
//! records (`tests/clients/share_describe.py`).
//!
//! Python comes from `SLUICE_TEST_PYTHON`, else `<repo>/.venv/bin/python`;
//! `SLUICE_SKIP_REAL_CLIENTS=1` skips with a loud notice.

mod support;

use support::scripts::run_script;
use support::{Broker, real_clients_skipped};

#[test]
fn group_describe_shows_a_share_groups_members_offsets_and_record_states() {
    if real_clients_skipped("share describe") {
        return;
    }
    let broker = Broker::start();
    let python = support::client_python("confluent_kafka");
    let args = vec![
        "share_describe.py".to_string(),
        broker.bootstrap(),
        format!("127.0.0.1:{}", broker.admin_port),
        env!("CARGO_BIN_EXE_sluice").to_string(),
    ];
    run_script("share_describe.py", &python, &args);
}
