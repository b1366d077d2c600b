//! `sluice group list|describe|delete|reset-offsets`: consumer-group administration (like
//! kafka-consumer-groups) against any Kafka-compatible broker.
//!
//! Must not: join groups. The only offsets it commits are those `reset-offsets` computes,
//! and only for a group with no active members (as Kafka's tool refuses otherwise).

use super::DEFAULT_BOOTSTRAP_SERVER;
use crate::client::group::{
    commit_offsets, describe_group, describe_share_group, fetch_committed, find_coordinator,
    list_groups, share_group_start_offsets,
};
use crate::client::{Client, ClientError, OffsetSpec};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;

#[derive(Debug, Args)]
pub struct GroupArgs {
    /// Broker to bootstrap from, HOST:PORT[,HOST:PORT...].
    #[arg(long, global = true, default_value = DEFAULT_BOOTSTRAP_SERVER)]
    pub bootstrap_server: String,
    #[command(flatten)]
    pub security: super::security::SecurityArgs,
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List group ids with their type (classic, consumer, share).
    List,
    /// Show state, members, committed offsets and lag of a group. For a share group: its
    /// members and their partitions, and per partition the share-partition start offset and
    /// lag (with --admin, also its in-flight records by state and highest delivery count).
    Describe {
        group: String,
        /// A Sluice broker's admin listener (HOST:PORT), for a share group's record states
        /// from its metrics.
        #[arg(long)]
        admin: Option<String>,
    },
    /// Delete a group that has no members.
    Delete { group: String },
    /// Set a group's committed offsets for a topic (the group must have no active members).
    ResetOffsets(ResetArgs),
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("target")
        .required(true)
        .args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])
))]
pub struct ResetArgs {
    pub group: String,
    /// TOPIC, or TOPIC:P1,P2,... for some partitions only.
    #[arg(long)]
    pub topic: String,
    /// Each partition's log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Each partition's log end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// This offset (clamped to each partition's earliest..latest).
    #[arg(long, allow_negative_numbers = true)]
    pub to_offset: Option<i64>,
    /// First offset at or after this time: YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM|-HH:MM]
    /// (UTC when no zone is given) or milliseconds since the epoch.
    #[arg(long)]
    pub to_datetime: Option<String>,
    /// Committed offset plus N (may be negative; clamped to earliest..latest).
    #[arg(long, allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// Show the new offsets without committing them.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: GroupArgs) -> Result<(), String> {
    let mut client =
        Client::connect_with(&args.bootstrap_server, args.security.connection_config()?)
            .map_err(|e| e.to_string())?;
    match args.command {
        GroupCommand::List => {
            // The id first (scripts cut it), then the group's type: classic, consumer or
            // share (KIP-932 share groups are listed with the others, as Kafka's
            // kafka-groups.sh --list does).
            for g in list_groups(&mut client).map_err(|e| e.to_string())? {
                println!("{}\t{}", g.group_id, g.group_type);
            }
        }
        GroupCommand::Describe { group, admin } => {
            let listed = list_groups(&mut client).map_err(|e| e.to_string())?;
            let is_share = listed
                .iter()
                .any(|g| g.group_id == group && g.group_type == "share");
            if is_share {
                describe_share(&mut client, &group, admin.as_deref())?
            } else {
                describe(&mut client, &group)?
            }
        }
        GroupCommand::Delete { group } => {
            crate::client::group::delete_group(&mut client, &group).map_err(|e| e.to_string())?;
            println!("deleted group {group}");
        }
        GroupCommand::ResetOffsets(reset) => reset_offsets(&mut client, &reset)?,
    }
    Ok(())
}

/// Group states in which offsets may be reset (no member could overwrite them).
const RESETTABLE_STATES: &[&str] = &["Empty", "Dead"];

/// Parses `TOPIC` or `TOPIC:P1,P2`.
fn parse_topic_spec(spec: &str) -> Result<(String, Option<Vec<i32>>), String> {
    match spec.split_once(':') {
        None => Ok((spec.to_string(), None)),
        Some((topic, parts)) => {
            let parts = parts
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<i32>()
                        .map_err(|_| format!("`{p}` in --topic {spec} is not a partition number"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((topic.to_string(), Some(parts)))
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Milliseconds since the epoch for `--to-datetime`.
pub fn parse_datetime_ms(text: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "`{text}` is not a time: use YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM] or epoch milliseconds"
        )
    };
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let (date, rest) = text.split_once('T').ok_or_else(bad)?;
    let mut ymd = date.split('-').map(|v| v.parse::<i64>());
    let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day)), None) =
        (ymd.next(), ymd.next(), ymd.next(), ymd.next())
    else {
        return Err(bad());
    };
    // Split off the zone: Z, +HH:MM or -HH:MM (a '-' after the time part).
    let (time, offset_min) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, zone) = rest.split_at(i);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':').ok_or_else(bad)?;
        let h: i64 = h.parse().map_err(|_| bad())?;
        let m: i64 = m.parse().map_err(|_| bad())?;
        (t, sign * (h * 60 + m))
    } else {
        (rest, 0)
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut parts = hms.split(':').map(|v| v.parse::<i64>());
    let (Some(Ok(h)), Some(Ok(mi)), Some(Ok(sec)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    if frac.is_empty() || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let millis: i64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Ok(seconds * 1000 + millis)
}

fn reset_offsets(client: &mut Client, args: &ResetArgs) -> Result<(), String> {
    let group = args.group.as_str();
    let described = describe_group(client, group).map_err(|e| e.to_string())?;
    if !RESETTABLE_STATES.contains(&described.state.as_str()) {
        return Err(format!(
            "Assignments can only be reset if the group '{group}' is inactive, but the current \
             state is {} ({} member(s)); stop its consumers first",
            described.state,
            described.members.len()
        ));
    }
    let (topic, only) = parse_topic_spec(&args.topic)?;
    let meta = client.describe_topic(&topic).map_err(|e| e.to_string())?;
    let all: Vec<i32> = meta.partitions.iter().map(|p| p.partition).collect();
    let partitions = match only {
        Some(list) => {
            if let Some(p) = list.iter().find(|p| !all.contains(p)) {
                return Err(format!("topic {topic} has no partition {p}"));
            }
            list
        }
        None => all,
    };
    let offsets_of = |client: &mut Client, spec| -> Result<BTreeMap<i32, i64>, String> {
        Ok(client
            .list_offsets(&topic, &partitions, spec)
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect())
    };
    let earliest = offsets_of(client, OffsetSpec::Earliest)?;
    let latest = offsets_of(client, OffsetSpec::Latest)?;
    let coordinator = find_coordinator(client, group).map_err(|e| e.to_string())?;
    let wanted = vec![(topic.clone(), partitions.clone())];
    let committed: BTreeMap<i32, i64> = fetch_committed(client, coordinator, group, Some(&wanted))
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|(_, p, o)| o.map(|o| (p, o)))
        .collect();
    let by_time = match &args.to_datetime {
        Some(text) => Some(offsets_of(
            client,
            OffsetSpec::Timestamp(parse_datetime_ms(text)?),
        )?),
        None => None,
    };
    let mut new_offsets = Vec::with_capacity(partitions.len());
    for &p in &partitions {
        let (lo, hi) = (earliest[&p], latest[&p]);
        let target = if args.to_earliest {
            lo
        } else if args.to_latest {
            hi
        } else if let Some(n) = args.to_offset {
            n.clamp(lo, hi)
        } else if let Some(n) = args.shift_by {
            let current = committed.get(&p).copied().ok_or_else(|| {
                format!("cannot shift {topic}-{p}: the group has no committed offset there")
            })?;
            current.saturating_add(n).clamp(lo, hi)
        } else if let Some(found) = &by_time {
            // No record at or after the time: the end of the log, as Kafka does.
            match found.get(&p) {
                Some(&o) if o >= 0 => o,
                _ => hi,
            }
        } else {
            return Err("choose one of --to-earliest, --to-latest, --to-offset, \
                        --to-datetime, --shift-by"
                .to_string());
        };
        new_offsets.push((topic.clone(), p, target));
    }
    println!("GROUP\tTOPIC\tPARTITION\tPREVIOUS-OFFSET\tNEW-OFFSET");
    for (t, p, o) in &new_offsets {
        let previous = committed.get(p).map_or("-".to_string(), |c| c.to_string());
        println!("{group}\t{t}\t{p}\t{previous}\t{o}");
    }
    if args.dry_run {
        println!("dry run: nothing committed");
        return Ok(());
    }
    commit_offsets(client, coordinator, group, -1, "", &new_offsets).map_err(|e| e.to_string())?;
    println!(
        "committed {} offset(s) for group {group}",
        new_offsets.len()
    );
    Ok(())
}

fn describe(client: &mut Client, group: &str) -> Result<(), String> {
    let described = describe_group(client, group).map_err(|e| e.to_string())?;
    let coordinator = find_coordinator(client, group).map_err(|e| e.to_string())?;
    // "All committed partitions" (null topics) is the natural ask, but some brokers answer
    // it with a malformed response; then ask for every partition of every topic.
    let committed = match fetch_committed(client, coordinator, group, None) {
        Ok(c) => c,
        Err(ClientError::Protocol { .. }) => {
            let all: Vec<(String, Vec<i32>)> = client
                .list_topics()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|t| (t.name, t.partitions.iter().map(|p| p.partition).collect()))
                .collect();
            fetch_committed(client, coordinator, group, Some(&all))
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|(_, _, o)| o.is_some())
                .collect()
        }
        Err(e) => return Err(e.to_string()),
    };
    println!(
        "Group: {}\tState: {}\tProtocol: {}\tMembers: {}",
        described.group_id,
        described.state,
        described.protocol,
        described.members.len()
    );
    // Who owns each partition right now: its consumer id, host and client id, the last
    // three columns of kafka-consumer-groups --describe.
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &described.members {
        let who = format!("{}\t{}\t{}", m.member_id, m.client_host, m.client_id);
        for (topic, partitions) in &m.assignment {
            for p in partitions {
                owner.insert((topic.clone(), *p), who.clone());
            }
        }
    }
    let mut rows: BTreeMap<(String, i32), Option<i64>> =
        committed.into_iter().map(|(t, p, o)| ((t, p), o)).collect();
    for key in owner.keys() {
        rows.entry(key.clone()).or_insert(None);
    }
    // Every partition of the topics shown, as kafka-consumer-groups does: a partition the
    // group never committed is part of its work too.
    let topics: std::collections::BTreeSet<String> = rows.keys().map(|(t, _)| t.clone()).collect();
    for topic in topics {
        if let Ok(meta) = client.describe_topic(&topic) {
            for p in meta.partitions {
                rows.entry((topic.clone(), p.partition)).or_insert(None);
            }
        }
    }
    println!("TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMER-ID\tHOST\tCLIENT-ID");
    let mut total_lag: i64 = 0;
    for ((topic, partition), offset) in rows {
        let end = client
            .list_offsets(&topic, &[partition], OffsetSpec::Latest)
            .ok()
            .and_then(|v| v.first().map(|(_, o)| *o));
        let lag = match (offset, end) {
            (Some(o), Some(e)) => {
                let lag = (e - o).max(0);
                total_lag = total_lag.saturating_add(lag);
                lag.to_string()
            }
            _ => "-".to_string(),
        };
        println!(
            "{topic}\t{partition}\t{}\t{}\t{lag}\t{}",
            offset.map_or("-".to_string(), |o| o.to_string()),
            end.map_or("-".to_string(), |o| o.to_string()),
            owner
                .get(&(topic.clone(), partition))
                .map_or("-\t-\t-", String::as_str)
        );
    }
    // Partitions without a committed offset have no lag to add.
    println!("TOTAL-LAG\t{total_lag}");
    Ok(())
}

/// A share group: members and assignments (ShareGroupDescribe), each partition's start
/// offset and lag (DescribeShareGroupOffsets, ListOffsets) and, from a Sluice admin
/// listener's `/metrics`, its in-flight records by state and highest delivery count.
fn describe_share(client: &mut Client, group: &str, admin: Option<&str>) -> Result<(), String> {
    let described = describe_share_group(client, group).map_err(|e| e.to_string())?;
    let starts = share_group_start_offsets(client, group).map_err(|e| e.to_string())?;
    println!(
        "Group: {}\tType: share\tState: {}\tEpoch: {}\tMembers: {}",
        described.group_id,
        described.state,
        described.group_epoch,
        described.members.len()
    );
    println!("MEMBER-ID\tCLIENT-ID\tHOST\tEPOCH\tASSIGNMENT");
    let mut members_of: BTreeMap<(String, i32), Vec<String>> = BTreeMap::new();
    for m in &described.members {
        let assignment: Vec<String> = m
            .assignment
            .iter()
            .map(|(t, ps)| {
                for p in ps {
                    members_of
                        .entry((t.clone(), *p))
                        .or_default()
                        .push(m.member_id.clone());
                }
                let ps: Vec<String> = ps.iter().map(i32::to_string).collect();
                format!("{t}:{}", ps.join(","))
            })
            .collect();
        println!(
            "{}\t{}\t{}\t{}\t{}",
            m.member_id,
            m.client_id,
            m.client_host,
            m.member_epoch,
            if assignment.is_empty() {
                "-".to_string()
            } else {
                assignment.join(" ")
            }
        );
    }
    let states = admin.map(|a| share_states_from_metrics(a, group));
    if let Some(Err(e)) = &states {
        println!("RecordStates: unavailable ({e})");
    }
    let states = states.and_then(Result::ok);
    let mut header = "TOPIC\tPARTITION\tSTART-OFFSET\tLOG-END-OFFSET\tLAG".to_string();
    if states.is_some() {
        header.push_str(
            "\tAVAILABLE\tACQUIRED\tACKNOWLEDGED\tARCHIVING\tARCHIVED\tMAX-DELIVERY-COUNT",
        );
    }
    println!("{header}\tMEMBERS");
    let mut total_lag: i64 = 0;
    for (topic, partition, start) in starts {
        let end = client
            .list_offsets(&topic, &[partition], OffsetSpec::Latest)
            .ok()
            .and_then(|v| v.first().map(|(_, o)| *o));
        let lag = end.map(|e| (e - start).max(0));
        total_lag = total_lag.saturating_add(lag.unwrap_or(0));
        let mut row = format!(
            "{topic}\t{partition}\t{start}\t{}\t{}",
            end.map_or("-".to_string(), |e| e.to_string()),
            lag.map_or("-".to_string(), |l| l.to_string())
        );
        if let Some(states) = &states {
            let key = (topic.clone(), partition);
            let get = |name: &str| {
                states
                    .get(&(key.clone(), name.to_string()))
                    .map_or("0".to_string(), |v| v.to_string())
            };
            for name in [
                "available",
                "acquired",
                "acknowledged",
                "archiving",
                "archived",
                DELIVERY_COUNT_MAX,
            ] {
                row.push('\t');
                row.push_str(&get(name));
            }
        }
        let members = members_of
            .get(&(topic.clone(), partition))
            .map_or("-".to_string(), |m| m.join(","));
        println!("{row}\t{members}");
    }
    println!("TOTAL-LAG\t{total_lag}");
    Ok(())
}

/// ((topic, partition), state) -> records (or the highest delivery count).
type ShareStates = BTreeMap<((String, i32), String), u64>;

/// The pseudo-state under which `share_states_from_metrics` keeps the highest delivery count.
const DELIVERY_COUNT_MAX: &str = "delivery_count_max";

/// ((topic, partition), state) -> value of the group's `sluice_share_records` series, and
/// its `sluice_share_delivery_count_max` under the state `delivery_count_max`.
fn share_states_from_metrics(admin: &str, group: &str) -> Result<ShareStates, String> {
    let body = crate::cli::top::fetch_admin(admin, "/metrics")?;
    let mut out = BTreeMap::new();
    for line in body.lines() {
        let (name, rest) = match line.split_once('{') {
            Some(split) => split,
            None => continue,
        };
        if name != "sluice_share_records" && name != "sluice_share_delivery_count_max" {
            continue;
        }
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        let labels = parse_labels(labels);
        let label = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if label("group") != Some(group) {
            continue;
        }
        let (Some(topic), Some(partition)) = (label("topic"), label("partition")) else {
            continue;
        };
        let Ok(partition) = partition.parse::<i32>() else {
            continue;
        };
        let state = if name == "sluice_share_records" {
            label("state").unwrap_or("").to_string()
        } else {
            DELIVERY_COUNT_MAX.to_string()
        };
        let value = value.trim().parse::<f64>().unwrap_or(0.0).max(0.0) as u64;
        out.insert(((topic.to_string(), partition), state), value);
    }
    Ok(out)
}

/// `a="x",b="y\"z"` -> [(a, x), (b, y"z)], with Prometheus' escapes (\\, \", \n).
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() || chars.next() != Some('"') {
            return out;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((name.trim_start_matches(',').trim().to_string(), value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_labels_parse_with_escapes() {
        assert_eq!(
            parse_labels(r#"group="g,1",topic="t",state="a\"b""#),
            vec![
                ("group".to_string(), "g,1".to_string()),
                ("topic".to_string(), "t".to_string()),
                ("state".to_string(), "a\"b".to_string()),
            ]
        );
    }

    #[test]
    fn datetimes_parse_as_kafka_writes_them() {
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:00.000"), Ok(0));
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(
            parse_datetime_ms("2024-02-29T12:30:45.5Z"),
            Ok(1_709_209_845_500)
        );
        assert_eq!(
            parse_datetime_ms("2024-02-29T14:30:45.500+02:00"),
            Ok(1_709_209_845_500)
        );
        assert_eq!(
            parse_datetime_ms("2024-02-29T07:30:45.500-05:00"),
            Ok(1_709_209_845_500)
        );
        assert_eq!(parse_datetime_ms("1709209845500"), Ok(1_709_209_845_500));
        assert!(parse_datetime_ms("2024-13-01T00:00:00").is_err());
        assert!(parse_datetime_ms("yesterday").is_err());
        assert!(parse_datetime_ms("2024-01-01 00:00:00").is_err());
    }

    #[test]
    fn topic_spec_with_and_without_partitions() {
        assert_eq!(parse_topic_spec("t"), Ok(("t".to_string(), None)));
        assert_eq!(
            parse_topic_spec("t:0,2"),
            Ok(("t".to_string(), Some(vec![0, 2])))
        );
        assert!(parse_topic_spec("t:x").is_err());
    }
}
