//! The web console in a real headless browser (Debian's chromium): a broker with a topic, records
//! and a consumer group; the overview, topic, group and message-browser pages are rendered
//! after their JavaScript ran, and must show the broker's real values. Screenshots go to
//! `target/console-artifacts/` (kept as test artifacts, never committed). The JSON API's
//! answers and refusals are checked over plain HTTP too.

mod support;

use sluice::client::{Client, GroupConfig, GroupMember};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Broker, Target};

const TOPIC: &str = "console-orders";
const GROUP: &str = "console-readers";
/// The acceptance bound: a page's HTML, JS, CSS and JSON from a fresh broker.
const PAGE_LOAD_LIMIT: Duration = Duration::from_secs(1);
/// How long chromium may run for one page (it starts slowly on a loaded machine).
const BROWSER_TIMEOUT_SECS: u64 = 90;

/// A GET over a fresh connection: (status, body).
fn http_get(port: u16, target: &str) -> (u16, String) {
    http(port, "GET", target, "")
}

/// One request with extra header lines (each ending in CRLF): (status, body).
fn http(port: u16, method: &str, target: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "{method} {target} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read response");
    let (head, body) = out.split_once("\r\n\r\n").expect("response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_string())
}

/// Waits for `/v1/ready`: the Kafka port may accept before the admin listener sees the shards.
fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(port, "/v1/ready").0 != 200 {
        assert!(Instant::now() < deadline, "broker never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn json(port: u16, target: &str) -> serde_json::Value {
    let (status, body) = http_get(port, target);
    assert_eq!(status, 200, "{target}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{target}: {e}: {body}"))
}

fn kcat_produce(broker: &Broker, lines: &str) {
    let mut child = Command::new("timeout")
        .args(["30", "kcat", "-P", "-b", &broker.bootstrap(), "-t", TOPIC])
        .args(["-p", "0", "-K", "|", "-H", "source=console-test"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed (tests/run.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write to kcat");
    let out = child.wait_with_output().expect("wait for kcat");
    assert!(
        out.status.success(),
        "kcat: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("console-artifacts");
    std::fs::create_dir_all(&dir).expect("create artifacts dir");
    dir
}

/// Runs headless chromium on `url` with its own profile directory; returns stdout.
fn chromium(url: &str, mode: &[String]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new("timeout")
        .arg(BROWSER_TIMEOUT_SECS.to_string())
        .args([
            "chromium",
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=5000", "--window-size=1280,900"])
        .args(mode)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("chromium is installed (tests/run.sh installs it: apt-get install chromium)");
    assert!(
        out.status.success(),
        "chromium {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page's DOM after its script ran, and a screenshot of it as `<name>.png`.
fn render(broker: &Broker, fragment: &str, name: &str) -> String {
    let url = format!("http://127.0.0.1:{}/console{fragment}", broker.admin_port);
    let dom = chromium(&url, &["--dump-dom".to_string()]);
    assert!(
        dom.contains(r#"data-loaded="true""#),
        "{name}: the page never finished loading:\n{dom}"
    );
    assert!(
        !dom.contains(r#"id="error""#),
        "{name}: page shows an error:\n{dom}"
    );
    let shot = artifacts_dir().join(format!("{name}.png"));
    let _ = std::fs::remove_file(&shot);
    chromium(&url, &[format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "{name}: screenshot is not a real PNG"
    );
    dom
}

fn assert_has(dom: &str, page: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(dom.contains(w), "{page}: {w:?} is not on the page:\n{dom}");
    }
}

/// Each page's HTML, script and stylesheet and the JSON it reads load within the limit.
fn assert_pages_load_fast(port: u16) {
    let assets = ["/console", "/console/console.js", "/console/console.css"];
    let messages = format!("/v1/messages?topic={TOPIC}&partition=0&offset=0");
    let topic = format!("/v1/topics/{TOPIC}");
    for (page, data) in [
        ("overview", vec!["/v1/status", "/v1/topics", "/metrics"]),
        ("topic", vec!["/v1/status", topic.as_str(), "/metrics"]),
        ("group", vec!["/v1/status", "/v1/groups", "/metrics"]),
        (
            "messages",
            vec!["/v1/status", "/v1/topics", messages.as_str()],
        ),
    ] {
        let started = Instant::now();
        for target in assets.iter().chain(data.iter()) {
            let (status, _) = http_get(port, target);
            assert_eq!(status, 200, "{page}: {target}");
        }
        let took = started.elapsed();
        assert!(
            took < PAGE_LOAD_LIMIT,
            "{page} took {took:?} to load (limit {PAGE_LOAD_LIMIT:?})"
        );
        eprintln!("console page {page}: HTML+JS+CSS+JSON in {took:?}");
    }
}

#[test]
fn console_pages_show_the_brokers_real_state_in_a_browser() {
    let t = Target::started(Broker::start_with_config(
        "group_initial_rebalance_delay_ms = 0\n",
        &[],
    ));
    let broker = t.broker.as_ref().expect("started broker");
    let port = broker.admin_port;
    wait_ready(port);
    t.ok(&["topic", "create", TOPIC, "--partitions", "3"], None);
    assert_pages_load_fast(port);

    let first: String = (0..5)
        .map(|i| format!("order-{i}|{{\"id\":{i},\"item\":\"widget\"}}\n"))
        .collect();
    kcat_produce(broker, &first);
    std::thread::sleep(Duration::from_millis(100));
    let between = now_ms();
    std::thread::sleep(Duration::from_millis(100));
    kcat_produce(broker, "order-5|late arrival\n");

    // The group reads three records and commits; then a live member holds an assignment.
    let read = t.ok(
        &[
            "consume",
            TOPIC,
            "--group",
            GROUP,
            "--from-beginning",
            "--timeout-ms",
            "3000",
            "--max-messages",
            "3",
        ],
        None,
    );
    assert_eq!(read.lines().count(), 3, "{read}");
    let mut client = Client::connect(&t.bootstrap).expect("client");
    let _member = GroupMember::join(&mut client, GroupConfig::new(GROUP), &[TOPIC.to_string()])
        .expect("join group");

    // The JSON behind the pages, checked exactly.
    let topic = json(port, &format!("/v1/topics/{TOPIC}"));
    assert_eq!(topic["partition_count"], 3);
    assert_eq!(topic["partitions"][0]["end_offset"], 6);
    assert_eq!(topic["partitions"][1]["end_offset"], 0);
    assert_eq!(topic["offline_partitions"], 0);
    let groups = json(port, "/v1/groups");
    let group = &groups["groups"][0];
    assert_eq!(group["group_id"], GROUP);
    assert_eq!(group["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        group["members"][0]["assignment"][TOPIC],
        serde_json::json!([0, 1, 2])
    );
    let p0 = group["offsets"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["partition"] == 0))
        .expect("partition 0 committed");
    assert_eq!(
        (p0["committed_offset"].as_i64(), p0["lag"].as_i64()),
        (Some(3), Some(3))
    );
    let page = json(
        port,
        &format!("/v1/messages?topic={TOPIC}&partition=0&timestamp={between}"),
    );
    assert_eq!(page["records"][0]["offset"], 5, "{page}");
    assert_eq!(page["records"][0]["value"]["text"], "late arrival");
    assert_eq!(
        page["records"][0]["headers"][0]["value"]["text"],
        "console-test"
    );
    // A byte limit smaller than one record still shows that one record, and only it.
    let small = json(
        port,
        &format!("/v1/messages?topic={TOPIC}&partition=0&offset=1&max_bytes=1"),
    );
    assert_eq!(small["records"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        (
            small["records"][0]["offset"].as_i64(),
            small["next_offset"].as_i64()
        ),
        (Some(1), Some(2))
    );
    for (bad, status, why) in [
        ("/v1/messages?partition=0", 400, "topic is required"),
        (
            "/v1/messages?topic=x&offset=-",
            400,
            "offset is not a valid number",
        ),
        ("/v1/messages?topic=nope", 404, "no topic nope"),
        (
            &format!("/v1/messages?topic={TOPIC}&partition=9")[..],
            404,
            "no partition 9",
        ),
        ("/v1/topics/nope", 404, "no topic nope"),
    ] {
        let (got, body) = http_get(port, bad);
        assert_eq!(got, status, "{bad}: {body}");
        assert!(body.contains(why) && !body.contains('\n'), "{bad}: {body}");
    }

    let overview = render(broker, "#/", "overview");
    assert_has(
        &overview,
        "overview",
        &[
            r#"data-page="overview""#,
            r#"id="topic-count">1<"#,
            r#"id="partition-count">3<"#,
            r#"id="offline-count">0<"#,
            "<canvas",
        ],
    );
    let topic_page = render(broker, &format!("#/topics/{TOPIC}"), "topic");
    assert_has(
        &topic_page,
        "topic",
        &[
            &format!("Topic {TOPIC}"),
            r#"id="topic-partitions">3<"#,
            r#"class="end-offset" data-partition="0">6<"#,
            r#"class="end-offset" data-partition="2">0<"#,
            "retention_ms",
        ],
    );
    let group_page = render(broker, &format!("#/groups/{GROUP}"), "group");
    assert_has(
        &group_page,
        "group",
        &[
            &format!("Consumer group {GROUP}"),
            r#"id="group-members">1<"#,
            r#"id="group-lag">3<"#,
            &format!("{TOPIC}: 0,1,2"),
        ],
    );
    let browser = render(
        broker,
        &format!("#/messages?topic={TOPIC}&partition=0&offset=2"),
        "messages",
    );
    assert_has(
        &browser,
        "messages",
        &[
            "order-2",
            // JSON values are pretty-printed.
            "\"item\": \"widget\"",
            "order-5",
            "late arrival",
            "source: ",
            "console-test",
        ],
    );
    assert!(
        !browser.contains("order-1<"),
        "seek to offset 2 shows offset 1"
    );
}

#[test]
fn console_writes_need_its_header_and_stop_when_read_only() {
    const WRITE: &str = "X-Sluice-Console: 1\r\n";
    let broker = Broker::start();
    let port = broker.admin_port;
    wait_ready(port);
    let create = "/v1/topics?name=made-in-console&partitions=2";
    let (status, body) = http(port, "POST", create, "");
    assert_eq!(status, 403, "a write without the console's header: {body}");
    assert!(body.contains("x-sluice-console"), "{body}");
    assert_eq!(http_get(port, "/v1/topics/made-in-console").0, 404);
    let (status, body) = http(port, "POST", create, WRITE);
    assert_eq!(status, 200, "{body}");
    let topic = json(port, "/v1/topics/made-in-console");
    assert_eq!(topic["partition_count"], 2);
    assert_eq!(topic["partitions"].as_array().map(Vec::len), Some(2));
    assert_eq!(topic["read_only"], false);
    let (status, body) = http(port, "POST", create, WRITE);
    assert_eq!(status, 409, "creating it twice: {body}");
    let (status, body) = http(port, "POST", "/v1/topics?name=bad%2Fname", WRITE);
    assert_eq!(status, 400, "an invalid topic name: {body}");
    // The topics page offers the create form, the topic page the delete button.
    let url = format!("http://127.0.0.1:{port}/console");
    let dom = chromium(&format!("{url}#/topics"), &["--dump-dom".to_string()]);
    assert_has(
        &dom,
        "topics (writable)",
        &[r#"id="create-topic""#, "made-in-console"],
    );
    let dom = chromium(
        &format!("{url}#/topics/made-in-console"),
        &["--dump-dom".to_string()],
    );
    assert_has(
        &dom,
        "topic (writable)",
        &[r#"id="delete-topic""#, r#"id="alter-config""#],
    );
    // A config set from the console is the topic's override, live; a bad value is refused
    // with the topic config's own validation; delete=true goes back to the default.
    let alter = "/v1/topics/made-in-console/configs?key=retention.ms&value=123456";
    let (status, body) = http(port, "POST", alter, "");
    assert_eq!(status, 403, "an alter without the console's header: {body}");
    let (status, body) = http(port, "POST", alter, WRITE);
    assert_eq!(status, 200, "{body}");
    let topic = json(port, "/v1/topics/made-in-console");
    assert_eq!(topic["overrides"]["retention.ms"], "123456", "{topic}");
    let bad = "/v1/topics/made-in-console/configs?key=retention.ms&value=soon";
    let (status, body) = http(port, "POST", bad, WRITE);
    assert_eq!(status, 400, "a value the config refuses: {body}");
    let unknown = "/v1/topics/no-such-topic/configs?key=retention.ms&value=1";
    assert_eq!(http(port, "POST", unknown, WRITE).0, 404);
    let reset = "/v1/topics/made-in-console/configs?key=retention.ms&delete=true";
    let (status, body) = http(port, "POST", reset, WRITE);
    assert_eq!(status, 200, "{body}");
    let topic = json(port, "/v1/topics/made-in-console");
    assert!(topic["overrides"].get("retention.ms").is_none(), "{topic}");
    let (status, body) = http(port, "DELETE", "/v1/topics/made-in-console", WRITE);
    assert_eq!(status, 200, "{body}");
    assert_eq!(http_get(port, "/v1/topics/made-in-console").0, 404);
    let (status, _) = http(port, "DELETE", "/v1/topics/made-in-console", WRITE);
    assert_eq!(status, 404, "deleting it twice");

    let read_only = Broker::start_with_config("console_read_only = true\n", &[]);
    let port = read_only.admin_port;
    wait_ready(port);
    let (status, body) = http(port, "POST", create, WRITE);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("read-only"), "{body}");
    assert_eq!(http_get(port, "/v1/topics/made-in-console").0, 404);
    assert_eq!(json(port, "/v1/topics")["read_only"], true);
    let dom = chromium(
        &format!("http://127.0.0.1:{port}/console#/topics"),
        &["--dump-dom".to_string()],
    );
    assert!(dom.contains(r#"data-loaded="true""#), "{dom}");
    assert!(
        !dom.contains(r#"id="create-topic""#),
        "read-only console offers a create form"
    );
}
