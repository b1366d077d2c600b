//! `sluice group describe|reset-offsets` and `sluice topic alter-config` end to end against a
//! real broker (started with no initial rebalance delay so a group consume is quick).

mod support;

use sluice::client::{Client, GroupConfig, GroupMember};
use std::collections::BTreeMap;
use support::{Broker, Target};

/// (topic, partition) -> (committed, log end, lag) as `group describe` prints them.
type DescribeRows = BTreeMap<(String, i32), (String, String, String)>;

/// A broker started with no initial rebalance delay.
fn target() -> Target {
    Target::started(Broker::start_with_config(
        "group_initial_rebalance_delay_ms = 0\n",
        &[],
    ))
}

/// The commands these tests run, on top of `Target::run` and `Target::ok`.
impl Target {
    fn create_topic(&self, name: &str, partitions: u32, configs: &[&str]) {
        let partitions = partitions.to_string();
        let mut args = vec!["topic", "create", name, "--partitions", &partitions];
        for c in configs {
            args.extend(["--config", c]);
        }
        self.ok(&args, None);
    }

    fn produce(&self, topic: &str, from: usize, to: usize) {
        let input: String = (from..to).map(|i| format!("v{i}\n")).collect();
        self.ok(&["produce", topic], Some(&input));
    }

    /// Consumes up to `max` records as `group` (the CLI commits what it printed).
    fn consume(&self, topic: &str, group: &str, max: usize) -> usize {
        let max = max.to_string();
        let out = self.ok(
            &[
                "consume",
                topic,
                "--group",
                group,
                "--from-beginning",
                "--timeout-ms",
                "3000",
                "--max-messages",
                &max,
            ],
            None,
        );
        out.lines().count()
    }

    /// (topic, partition) -> (current, log end, lag) rows of `group describe`, and the total.
    fn describe(&self, group: &str) -> (DescribeRows, i64) {
        let out = self.ok(&["group", "describe", group], None);
        let mut rows = BTreeMap::new();
        let mut total = None;
        let mut in_table = false;
        for line in out.lines() {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.first() == Some(&"TOPIC") {
                in_table = true;
            } else if cols.first() == Some(&"TOTAL-LAG") {
                total = cols.get(1).and_then(|v| v.parse::<i64>().ok());
            } else if in_table && cols.len() >= 5 {
                let partition = cols[1].parse().expect("partition column");
                rows.insert(
                    (cols[0].to_string(), partition),
                    (
                        cols[2].to_string(),
                        cols[3].to_string(),
                        cols[4].to_string(),
                    ),
                );
            }
        }
        let total = total.unwrap_or_else(|| panic!("no TOTAL-LAG line in:\n{out}"));
        (rows, total)
    }

    fn committed(&self, group: &str, topic: &str, partition: i32) -> String {
        let (rows, _) = self.describe(group);
        rows.get(&(topic.to_string(), partition))
            .map(|r| r.0.clone())
            .unwrap_or_else(|| "-".to_string())
    }

    fn reset(&self, group: &str, topic: &str, how: &[&str]) -> String {
        let mut args = vec!["group", "reset-offsets", group, "--topic", topic];
        args.extend_from_slice(how);
        self.ok(&args, None)
    }
}

#[test]
fn group_describe_shows_lag_per_partition_and_in_total() {
    let t = target();
    t.create_topic("lagged", 2, &[]);
    t.produce("lagged", 0, 40);
    assert_eq!(t.consume("lagged", "lag-group", 15), 15);
    let (rows, total) = t.describe("lag-group");
    let mut ends = 0;
    let mut lag_sum = 0;
    for p in 0..2 {
        let (current, end, lag) = rows
            .get(&("lagged".to_string(), p))
            .unwrap_or_else(|| panic!("partition {p} row missing: {rows:?}"));
        let end: i64 = end.parse().expect("log end offset");
        ends += end;
        if current != "-" {
            let current: i64 = current.parse().expect("committed offset");
            let lag: i64 = lag.parse().expect("lag");
            assert_eq!(lag, end - current, "lag = log end - committed (p{p})");
            lag_sum += lag;
        }
    }
    assert_eq!(ends, 40, "every record is in some partition");
    assert_eq!(total, lag_sum, "total is the sum of the rows");
    assert_eq!(total, 25, "40 produced, 15 consumed and committed");
}

#[test]
fn group_describe_names_each_partitions_consumer_host_and_client_id() {
    let t = target();
    let (topic, group) = ("owned", "owner-group");
    t.create_topic(topic, 1, &[]);
    t.produce(topic, 0, 3);
    let mut client = Client::connect(&t.bootstrap).expect("client");
    let member = GroupMember::join(&mut client, GroupConfig::new(group), &[topic.to_string()])
        .expect("join");
    let out = t.ok(&["group", "describe", group], None);
    let header = out
        .lines()
        .find(|l| l.starts_with("TOPIC\t"))
        .unwrap_or_else(|| panic!("no table header in:\n{out}"));
    assert!(
        header.ends_with("\tCONSUMER-ID\tHOST\tCLIENT-ID"),
        "kafka-consumer-groups' last columns: {header}"
    );
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("owned\t0\t"))
        .unwrap_or_else(|| panic!("no row for partition 0 in:\n{out}"))
        .split('\t')
        .collect();
    // The member's id, its address as Kafka writes it (a slash, then the IP) and the
    // client id its requests carry.
    assert_eq!(
        &row[5..],
        [member.member_id(), "/127.0.0.1", "sluice-cli"],
        "{out}"
    );
    member.leave(&mut client).expect("leave");
}

#[test]
fn reset_offsets_every_mode_dry_run_and_refusal_while_members_are_active() {
    let t = target();
    let (topic, group) = ("resettable", "reset-group");
    t.create_topic(topic, 1, &[]);
    t.produce(topic, 0, 10);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let middle_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(50));
    t.produce(topic, 10, 30);
    assert_eq!(t.consume(topic, group, 7), 7);
    assert_eq!(t.committed(group, topic, 0), "7");

    let out = t.reset(group, topic, &["--to-earliest", "--dry-run"]);
    assert!(out.contains(&format!("{group}\t{topic}\t0\t7\t0")), "{out}");
    assert!(out.contains("dry run"), "{out}");
    assert_eq!(
        t.committed(group, topic, 0),
        "7",
        "a dry run commits nothing"
    );

    let cases: &[(&[&str], &str)] = &[
        (&["--to-earliest"], "0"),
        (&["--to-latest"], "30"),
        (&["--to-offset", "12"], "12"),
        (&["--shift-by", "-5"], "7"),
        (&["--shift-by", "100"], "30"),
        (&["--to-offset", "999"], "30"),
        (&["--to-datetime", &middle_ms], "10"),
        (&["--to-datetime", "1970-01-01T00:00:00Z"], "0"),
        (&["--to-datetime", "2999-01-01T00:00:00.000"], "30"),
    ];
    for (how, expected) in cases {
        let out = t.reset(group, topic, how);
        assert!(out.contains("committed 1 offset"), "{how:?}: {out}");
        assert_eq!(&t.committed(group, topic, 0), expected, "{how:?}");
    }
    let (ok, _, err) = t.run(
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-datetime",
            "last tuesday",
        ],
        None,
    );
    assert!(!ok && err.contains("is not a time"), "{err}");

    // An active member: Kafka's tool refuses, and so does this one.
    let mut client = Client::connect(&t.bootstrap).expect("client");
    let member = GroupMember::join(&mut client, GroupConfig::new(group), &[topic.to_string()])
        .expect("join");
    let (ok, out, err) = t.run(
        &[
            "group",
            "reset-offsets",
            group,
            "--topic",
            topic,
            "--to-earliest",
        ],
        None,
    );
    assert!(!ok, "reset with an active member must fail: {out}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    assert!(
        lines[0].contains("inactive") && lines[0].contains("Stable"),
        "{err}"
    );
    member.leave(&mut client).expect("leave");
    t.reset(group, topic, &["--to-earliest"]);
    assert_eq!(
        t.committed(group, topic, 0),
        "0",
        "reset works once it left"
    );
}

#[test]
fn topic_alter_config_sets_values_and_keeps_other_overrides() {
    let t = target();
    t.create_topic("tunable", 1, &["retention.ms=60000"]);
    let out = t.ok(
        &[
            "topic",
            "alter-config",
            "tunable",
            "--set",
            "segment.bytes=1048576",
            "--set",
            "cleanup.policy=compact",
        ],
        None,
    );
    assert!(out.contains("set segment.bytes=1048576"), "{out}");
    let configs = |t: &Target| -> String {
        let out = t.ok(&["topic", "describe", "tunable"], None);
        out.lines()
            .find_map(|l| l.strip_prefix("Configs: "))
            .unwrap_or_else(|| panic!("no Configs line:\n{out}"))
            .to_string()
    };
    let set = configs(&t);
    for kv in [
        "retention.ms=60000",
        "segment.bytes=1048576",
        "cleanup.policy=compact",
    ] {
        assert!(set.split(',').any(|c| c == kv), "{kv} in {set}");
    }
    t.ok(
        &[
            "topic",
            "alter-config",
            "tunable",
            "--set",
            "retention.ms=120000",
        ],
        None,
    );
    let set = configs(&t);
    for kv in [
        "retention.ms=120000",
        "segment.bytes=1048576",
        "cleanup.policy=compact",
    ] {
        assert!(set.split(',').any(|c| c == kv), "{kv} in {set}");
    }
    let (ok, _, err) = t.run(
        &["topic", "alter-config", "tunable", "--set", "no.such.key=1"],
        None,
    );
    assert!(!ok, "an unknown config key is refused: {err}");
}
