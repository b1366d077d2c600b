//! The controllers' own connections (decision 0021, controller addendum). A controller
//! listener trusts whatever reaches its port unless `controller_security_protocol = SSL`:
//! then the controllers speak mutual TLS with the brokers' certificates, and a process that
//! is not one of them cannot forge a frame. The forgery used here is the cheapest harmful
//! one: heartbeats in a dead broker's name, which keep the quorum from fencing it (its
//! partitions would keep a leader that answers nobody).
//! 3 nodes on 127.0.0.1, one core each, short broker sessions so fencing is quick.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::cluster::{LocalCluster, metadata};
use support::tls::Certs;

/// Short sessions: a broker silent this long is fenced.
const SESSIONS: &str = "broker_session_timeout_ms = 1500\nbroker_heartbeat_interval_ms = 300\n";
/// How long the quorum may take to fence a silent broker (its session, a few ticks, and a
/// slow box).
const FENCE_WITHIN: Duration = Duration::from_secs(20);
/// How long a fenced-looking broker must stay listed before the forgery counts as working.
const FORGERY_HOLDS_FOR: Duration = Duration::from_secs(6);

/// A controller frame as `cluster::transport` writes it: `[u32 len][u32 crc32c][kind][body]`,
/// kind 2 a broker heartbeat carrying the sender's node id.
fn forged_heartbeat(node_id: i32) -> Vec<u8> {
    let mut body = vec![2u8];
    body.extend_from_slice(&node_id.to_le_bytes());
    let mut frame = Vec::new();
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Each node's controller address, from the `id@host:port` voter list.
fn controller_addresses(cluster: &LocalCluster) -> Vec<(i32, String)> {
    cluster
        .voters
        .split(',')
        .filter_map(|v| {
            let (id, address) = v.split_once('@')?;
            Some((id.parse().ok()?, address.to_string()))
        })
        .collect()
}

/// Until `stop`, every 100 ms: heartbeats in `victim`'s name to every other controller,
/// each over a fresh plain TCP connection (as an attacker on the network would).
fn forge_heartbeats(
    targets: Vec<String>,
    victim: i32,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            for address in &targets {
                if let Ok(mut stream) = TcpStream::connect(address) {
                    let _ = stream.write_all(&forged_heartbeat(victim));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// Certificates for the controllers and a node config (short sessions, `extra`) that makes
/// them speak mutual TLS. Each controller is a TLS server and client at once: one
/// certificate (CN=sluice-controller) for both uses. The certificates live as long as the
/// returned `Certs`.
fn mutual_tls_config(extra: &str) -> (Certs, String) {
    let certs = Certs::make();
    certs.issue(
        "controller",
        "/CN=sluice-controller",
        "serverAuth,clientAuth",
        "localhost",
    );
    let toml = format!(
        "{SESSIONS}{extra}controller_security_protocol = \"SSL\"\n\
         ssl_certificate_location = \"{}\"\nssl_key_location = \"{}\"\n\
         ssl_truststore_location = \"{}\"\n",
        certs.path("controller.pem").display(),
        certs.path("controller.key").display(),
        certs.path("ca.pem").display(),
    );
    (certs, toml)
}

/// Whether `node`'s Metadata lists broker `id` (a fenced broker is not listed).
fn lists_broker(cluster: &LocalCluster, node: i32, id: i32) -> Option<bool> {
    let response = metadata(cluster.node(node), None).ok()?;
    Some(response.brokers.iter().any(|b| b.node_id.0 == id))
}

/// Kills node 3, forges its heartbeats to nodes 1 and 2, and returns how long node 1 kept
/// listing it (`None`: still listed after `FORGERY_HOLDS_FOR` + `FENCE_WITHIN`).
fn fence_despite_forgery(cluster: &mut LocalCluster) -> Option<Duration> {
    let victim = 3;
    let targets: Vec<String> = controller_addresses(cluster)
        .into_iter()
        .filter(|(id, _)| *id != victim)
        .map(|(_, address)| address)
        .collect();
    assert_eq!(targets.len(), 2, "voters {}", cluster.voters);
    let stop = Arc::new(AtomicBool::new(false));
    cluster.node_mut(victim).kill();
    let forger = forge_heartbeats(targets, victim, stop.clone());
    let killed = Instant::now();
    let mut fenced = None;
    while killed.elapsed() < FORGERY_HOLDS_FOR + FENCE_WITHIN {
        if lists_broker(cluster, 1, victim) == Some(false) {
            fenced = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = forger.join();
    fenced
}

#[test]
fn a_plaintext_controller_listener_takes_forged_heartbeats() {
    // The control for the test below: it shows the forgery reaches the quorum and works
    // when nothing guards the controller port (Kafka's PLAINTEXT controller listener is
    // exactly as open), so its absence under TLS is the guard's doing.
    let mut cluster = LocalCluster::start_with_config(3, SESSIONS);
    cluster.wait_until_formed(3);
    let fenced = fence_despite_forgery(&mut cluster);
    assert!(
        fenced.is_none(),
        "node 3 was fenced after {fenced:?} although its heartbeats were forged: the \
         forgery did not reach the quorum, so the TLS test proves nothing\n{}",
        cluster.diagnostics()
    );
}

#[test]
fn controllers_speak_mutual_tls_and_refuse_anyone_else() {
    let (_certs, toml) = mutual_tls_config("");
    let mut cluster = LocalCluster::start_with_config(3, &toml);
    // Electing a leader and registering every broker took Raft messages and heartbeats
    // over mutual TLS between all three.
    cluster.wait_until_formed(3);
    let topic_code =
        support::cluster::create_topic(cluster.node(1), "guarded", 3, 3, Duration::from_secs(30));
    assert_eq!(topic_code, 0, "CreateTopics through the TLS quorum");

    // A plain connection is dropped at its first bytes (they are no TLS ClientHello).
    let (_, address) = controller_addresses(&cluster)[0].clone();
    let mut plain = TcpStream::connect(&address).expect("connect to a controller port");
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    plain.write_all(&forged_heartbeat(3)).expect("write");
    let mut answer = [0u8; 64];
    match plain.read(&mut answer) {
        // Closed, or a TLS alert (content type 21) and then closed.
        Ok(0) | Err(_) => {}
        Ok(n) => assert_eq!(answer[0], 21, "{n} bytes of something else than an alert"),
    }

    let fenced = fence_despite_forgery(&mut cluster);
    assert!(
        fenced.is_some_and(|after| after < FENCE_WITHIN),
        "node 3 stayed listed ({fenced:?}): forged plaintext heartbeats reached a TLS \
         controller listener\n{}",
        cluster.diagnostics()
    );
    let refused = [1, 2].iter().any(|id| {
        let log = cluster.node(*id).log_path.as_ref();
        log.and_then(|path| std::fs::read_to_string(path).ok())
            .is_some_and(|text| text.contains("controller connection refused"))
    });
    assert!(
        refused,
        "no node logged the refusal\n{}",
        cluster.diagnostics()
    );
    // And what the quorum does goes on over TLS: node 3 comes back and is registered again.
    cluster.node_mut(3).spawn();
    cluster.wait_until_formed(3);
}

#[test]
fn with_an_authorizer_only_super_users_may_be_controller_peers() {
    // Kafka asks CLUSTER_ACTION of every controller request, and the ACLs that could grant
    // it travel over these connections: a peer must be a super user. Here the brokers'
    // certificate is valid but its principal is not one, so no controller hears another.
    let (_certs, toml) =
        mutual_tls_config("authorizer = \"standard\"\nsuper_users = [\"User:admin\"]\n");
    // No quorum can form, so no node catches up and none listens: started unwaited.
    let mut cluster = LocalCluster::start_unwaited_with_config(3, &toml);
    let why = "User:CN=sluice-controller is not one of super_users";
    support::wait_until(FENCE_WITHIN, Duration::from_millis(200), || {
        let logged = (1..=3).any(|id| {
            let log = cluster.node(id).log_path.as_ref();
            log.and_then(|path| std::fs::read_to_string(path).ok())
                .is_some_and(|text| text.contains(why))
        });
        if logged {
            Ok(())
        } else {
            Err(format!("no node logged {why:?}\n{}", cluster.diagnostics()))
        }
    });
    // Longer than a healthy cluster of three takes to elect a leader (about a second): a
    // node that caught up with an elected quorum would listen.
    for id in 1..=3 {
        let watch = Duration::from_secs(if id == 1 { 4 } else { 1 });
        cluster.node_mut(id).assert_refuses_connections_for(
            watch,
            "a node caught up with a quorum although no peer was admitted",
        );
    }
}
