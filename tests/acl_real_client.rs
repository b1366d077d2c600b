//! confluent-kafka against the authorizer: ACL admin calls, a producer and a consumer group
//! on an allowed topic, TOPIC_AUTHORIZATION_FAILED and a hidden topic where WRITE is denied
//! (`tests/clients/confluent_acls.py`).

mod support;

use support::scripts::run_script;
use support::{Broker, real_clients_skipped};

#[test]
fn confluent_kafka_admin_acls_and_denied_writes() {
    if real_clients_skipped("confluent_kafka_admin_acls_and_denied_writes") {
        return;
    }
    let python = support::client_python("confluent_kafka");
    let broker = Broker::start_with_config(
        "authorizer = \"standard\"\nallow_everyone_if_no_acl_found = true\n",
        &[],
    );
    let args = vec![
        "confluent_acls.py".to_string(),
        "--bootstrap".to_string(),
        broker.bootstrap(),
    ];
    run_script("confluent_acls.py", &python, &args);
}
