//! The Grafana dashboard (`docs/grafana/sluice-dashboard.json`) against a real scrape: every
//! metric name in every panel query and template variable is a family the broker's
//! `/metrics` declares (histograms also by their `_bucket`, `_sum` and `_count` series), and
//! every label a query selects on is one that family's samples carry. A renamed metric or
//! label therefore fails here instead of leaving an empty panel.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use support::{Broker, scrape_metrics};

/// Labels Prometheus adds at scrape time, which the broker never writes.
const SCRAPE_TIME_LABELS: &[&str] = &["instance", "job"];
/// Histogram series suffixes (the family is declared without them).
const HISTOGRAM_SUFFIXES: &[&str] = &["_bucket", "_sum", "_count"];
/// How long to wait for the workload's series to show up in the scrape.
const SERIES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn dashboard() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/grafana/sluice-dashboard.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// Every query of the dashboard: (where it is, the PromQL text).
fn queries(dash: &serde_json::Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or("");
            assert!(
                !expr.trim().is_empty(),
                "panel {title:?} has an empty query"
            );
            found.push((format!("panel {title:?}"), expr.to_string()));
        }
    }
    for variable in dash["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(query) = variable["query"]["query"].as_str() {
            let name = variable["name"].as_str().unwrap_or("?");
            found.push((format!("variable {name:?}"), query.to_string()));
        }
    }
    found
}

/// A metric named in a query, with the label names its selector matches on.
#[derive(Debug)]
struct Selector {
    metric: String,
    labels: Vec<String>,
}

/// The `sluice_*` metric selectors of one PromQL expression. String literals and range
/// durations are skipped; everything the broker exports is named `sluice_*`.
fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if is_start(c) {
            let start = i;
            while i < chars.len() && is_part(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if !word.starts_with("sluice_") {
                continue;
            }
            let mut labels = Vec::new();
            if chars.get(i) == Some(&'{') {
                let close = closing_brace(&chars, i)
                    .unwrap_or_else(|| panic!("unclosed selector in {expr}"));
                let inside: String = chars[i + 1..close].iter().collect();
                labels = label_names(&inside);
                i = close + 1;
            }
            found.push(Selector {
                metric: word,
                labels,
            });
        } else {
            i += 1;
        }
    }
    found
}

/// The index of the `}` closing the selector that opens at `open`, outside string literals.
fn closing_brace(chars: &[char], open: usize) -> Option<usize> {
    let mut in_string = false;
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if in_string => i += 1,
            '"' => in_string = !in_string,
            '}' if !in_string => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Label names of a matcher list such as `instance=~"$instance",api="Produce"`.
fn label_names(matchers: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_string = false;
    let mut current = String::new();
    for c in matchers.chars() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '=' | '!' | '~' => {
                if !current.trim().is_empty() {
                    names.push(current.trim().to_string());
                }
                current.clear();
            }
            ',' => current.clear(),
            _ => current.push(c),
        }
    }
    names
}

/// Families the scrape declares (`# TYPE name kind`) and the label names seen on each
/// series name.
struct Scrape {
    families: BTreeMap<String, String>,
    labels: BTreeMap<String, BTreeSet<String>>,
}

fn parse_scrape(text: &str) -> Scrape {
    let mut families = BTreeMap::new();
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                families.insert(name.to_string(), kind.to_string());
            }
        } else if line.starts_with("sluice_") {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let entry = labels.entry(line[..name_end].to_string()).or_default();
            if line[name_end..].starts_with('{')
                && let Some(close) = line.find('}')
            {
                entry.extend(label_names(&line[name_end + 1..close]));
            }
        }
    }
    Scrape { families, labels }
}

impl Scrape {
    /// The declared family a series name belongs to, if any.
    fn family_of(&self, series: &str) -> Option<&str> {
        if self.families.contains_key(series) {
            return self.families.get_key_value(series).map(|(k, _)| k.as_str());
        }
        HISTOGRAM_SUFFIXES.iter().find_map(|suffix| {
            let base = series.strip_suffix(suffix)?;
            match self.families.get_key_value(base) {
                Some((name, kind)) if kind == "histogram" => Some(name.as_str()),
                _ => None,
            }
        })
    }
}

/// Produce, consume with a group and commit, so labelled families have samples.
fn run_workload(broker: &Broker) {
    let bootstrap = broker.bootstrap();
    let lines: String = (0..200).map(|i| format!("record-{i}\n")).collect();
    let (ok, _, err) = support::sluice_cli(&bootstrap, &["produce", "dash"], Some(&lines));
    assert!(ok, "produce: {err}");
    let (ok, _, err) = support::sluice_cli(
        &bootstrap,
        &[
            "consume",
            "dash",
            "--group",
            "dash-group",
            "--from-beginning",
            "--max-messages",
            "100",
            "--timeout-ms",
            "10000",
        ],
        None,
    );
    assert!(ok, "consume: {err}");
}

#[test]
fn every_dashboard_query_names_metrics_and_labels_the_broker_exports() {
    let dash = dashboard();
    let queries = queries(&dash);
    assert!(queries.len() >= 20, "only {} queries", queries.len());

    let broker = Broker::start();
    run_workload(&broker);
    let deadline = std::time::Instant::now() + SERIES_TIMEOUT;
    let scrape = loop {
        let scrape = parse_scrape(&scrape_metrics(broker.admin_port));
        let ready = ["sluice_partition_bytes_out_total", "sluice_io_driver"]
            .iter()
            .all(|name| scrape.labels.contains_key(*name));
        if ready || std::time::Instant::now() > deadline {
            break scrape;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        scrape.families.len() > 20,
        "scrape declares only {} families",
        scrape.families.len()
    );

    let mut problems = Vec::new();
    let mut labels_checked = 0;
    let mut named = BTreeSet::new();
    for (place, expr) in &queries {
        let found = selectors(expr);
        if found.is_empty() {
            problems.push(format!("{place}: no sluice_* metric in `{expr}`"));
        }
        for selector in found {
            let Some(family) = scrape.family_of(&selector.metric) else {
                problems.push(format!("{place}: `{}` is not exported", selector.metric));
                continue;
            };
            named.insert(family.to_string());
            // A family without samples in this workload cannot show its labels.
            let Some(seen) = scrape.labels.get(&selector.metric) else {
                continue;
            };
            for label in &selector.labels {
                if SCRAPE_TIME_LABELS.contains(&label.as_str()) {
                    continue;
                }
                labels_checked += 1;
                if !seen.contains(label) {
                    problems.push(format!(
                        "{place}: `{}` has no label `{label}` (it has {seen:?})",
                        selector.metric
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(labels_checked >= 5, "only {labels_checked} labels checked");
    // The issue's panels: throughput, latency percentiles, fsync, connections, partitions,
    // group lag.
    for family in [
        "sluice_partition_bytes_in_total",
        "sluice_partition_bytes_out_total",
        "sluice_request_duration_seconds",
        "sluice_request_duration_seconds_quantile",
        "sluice_fsync_duration_seconds",
        "sluice_connections",
        "sluice_partition_size_bytes",
        "sluice_consumer_lag",
    ] {
        assert!(named.contains(family), "no panel shows {family}");
    }
}

#[test]
fn the_query_parser_finds_metrics_and_labels_and_skips_strings() {
    let found = selectors(
        r#"histogram_quantile(0.99, sum by (le) (rate(sluice_fsync_duration_seconds_bucket{instance=~"$instance",api!="x{y}"}[5m]))) / sluice_uptime_seconds"#,
    );
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].metric, "sluice_fsync_duration_seconds_bucket");
    assert_eq!(found[0].labels, vec!["instance", "api"]);
    assert_eq!(found[1].metric, "sluice_uptime_seconds");
    assert!(found[1].labels.is_empty());
    let scrape = parse_scrape(
        "# TYPE sluice_fsync_duration_seconds histogram\n\
         sluice_fsync_duration_seconds_bucket{le=\"0.1\"} 1\n\
         # TYPE sluice_connections gauge\n",
    );
    assert_eq!(
        scrape.family_of("sluice_fsync_duration_seconds_bucket"),
        Some("sluice_fsync_duration_seconds")
    );
    assert_eq!(scrape.family_of("sluice_connections_count"), None);
    assert_eq!(scrape.family_of("sluice_nothing"), None);
}
