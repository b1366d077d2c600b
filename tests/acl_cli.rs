//! `sluice acl add|list|remove` against a broker with the standard authorizer: the CLI's
//! ACLs are stored, listed, enforced and removed.

mod support;

use support::{Broker, sluice_cli};

#[test]
fn acl_cli_adds_lists_and_removes_acls() {
    let broker = Broker::start_with_config(
        "authorizer = \"standard\"\nsuper_users = [\"User:ANONYMOUS\"]\n",
        &[],
    );
    let bootstrap = broker.bootstrap();
    let run = |args: &[&str]| {
        let (ok, out, err) = sluice_cli(&bootstrap, args, None);
        assert!(ok, "sluice {args:?} failed: {err}");
        out
    };
    run(&[
        "acl",
        "add",
        "--topic",
        "pay.",
        "--prefixed",
        "--principal",
        "User:alice",
        "--operation",
        "write",
    ]);
    run(&[
        "acl",
        "add",
        "--group",
        "g1",
        "--principal",
        "User:bob",
        "--operation",
        "read",
        "--deny",
    ]);
    let listed = run(&["acl", "list"]);
    assert!(
        listed.contains("pay.") && listed.contains("Prefixed") && listed.contains("User:alice"),
        "{listed}"
    );
    assert!(listed.contains("g1") && listed.contains("Deny"), "{listed}");
    let alice = run(&["acl", "list", "--principal", "User:alice"]);
    assert!(!alice.contains("g1"), "{alice}");

    let (ok, _, err) = sluice_cli(
        &bootstrap,
        &[
            "acl",
            "add",
            "--topic",
            "t",
            "--principal",
            "alice",
            "--operation",
            "read",
        ],
        None,
    );
    assert!(
        !ok && err.contains("principal"),
        "a malformed principal is refused: {err}"
    );
    let (ok, _, err) = sluice_cli(&bootstrap, &["acl", "remove"], None);
    assert!(
        !ok,
        "removing every ACL needs a resource or principal: {err}"
    );

    let removed = run(&["acl", "remove", "--principal", "User:alice"]);
    assert!(removed.contains("removed 1"), "{removed}");
    let listed = run(&["acl", "list"]);
    assert!(
        !listed.contains("User:alice") && listed.contains("g1"),
        "{listed}"
    );
}
