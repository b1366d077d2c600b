//! Cluster-mode settings in Kafka's vocabulary (KRaft combined mode): `node_id`,
//! `controller_quorum_voters = "1@host:port,2@host:port,3@host:port"` and
//! `controller_listen`. Owns their parsing and the checks of how they combine; with none of
//! them set the broker is a single node and no quorum code runs.

use std::net::SocketAddr;

/// Most voters a quorum may name: Raft needs a majority of them for every change, and a
/// metadata quorum larger than this only slows commits down.
pub const MAX_QUORUM_VOTERS: usize = 9;
/// Kafka's `broker.session.timeout.ms`: a broker with no heartbeat for this long is fenced
/// and its partitions fail over. Kafka's 9 s would make failover take over 9 s; 1.5 s (six
/// heartbeats missed) keeps the kill-to-next-acknowledged-produce median under 3 s
/// (decision 0012, "Failover") while a loaded box's scheduling hiccups stay well inside it.
pub const DEFAULT_BROKER_SESSION_TIMEOUT_MS: u64 = 1_500;
/// Kafka's `broker.heartbeat.interval.ms` (2 s there): a sixth of the session timeout.
pub const DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS: u64 = 250;

/// One member of the metadata quorum: its node id and its controller address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub id: i32,
    pub host: String,
    pub port: u16,
}

impl QuorumVoter {
    /// `host:port`, an IPv6 host in brackets (what `ToSocketAddrs` parses).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parses `controller_quorum_voters`: comma-separated `id@host:port`, ids unique and >= 0.
pub fn parse_quorum_voters(text: &str) -> Result<Vec<QuorumVoter>, String> {
    let mut voters: Vec<QuorumVoter> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, address) = item
            .split_once('@')
            .ok_or_else(|| format!("`{item}` is not ID@HOST:PORT"))?;
        let id: i32 = id
            .trim()
            .parse()
            .map_err(|_| format!("`{item}`: node id `{id}` is not a number"))?;
        if id < 0 {
            return Err(format!("`{item}`: node ids are 0 or more"));
        }
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("`{item}` has no :PORT"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{item}`: port `{port}` is not a number"))?;
        let host = host.trim_matches(['[', ']']).to_string();
        if host.is_empty() || port == 0 {
            return Err(format!("`{item}` needs a host and a non-zero port"));
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(format!("node id {id} is listed twice"));
        }
        voters.push(QuorumVoter { id, host, port });
    }
    if voters.is_empty() {
        return Err("no voters listed".into());
    }
    if voters.len() > MAX_QUORUM_VOTERS {
        return Err(format!(
            "{} voters, above the limit of {MAX_QUORUM_VOTERS}",
            voters.len()
        ));
    }
    Ok(voters)
}

/// The checks of how the cluster settings combine, as one-line messages for start-up.
pub fn check_cluster_settings(
    node_id: i32,
    voters: Option<&str>,
    controller_listen: Option<SocketAddr>,
    listen: SocketAddr,
) -> Result<Option<Vec<QuorumVoter>>, String> {
    let (voters, controller_listen) = match (voters, controller_listen) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err("controller_quorum_voters is set but controller_listen is not".into());
        }
        (None, Some(_)) => {
            return Err("controller_listen is set but controller_quorum_voters is not".into());
        }
        (Some(v), Some(l)) => (parse_quorum_voters(v)?, l),
    };
    let me = voters
        .iter()
        .find(|v| v.id == node_id)
        .ok_or_else(|| format!("node_id {node_id} is not one of the controller_quorum_voters"))?;
    if me.port != controller_listen.port() {
        return Err(format!(
            "controller_listen port {} differs from this node's voter entry {}@{}",
            controller_listen.port(),
            me.id,
            me.address()
        ));
    }
    if controller_listen == listen {
        return Err(format!(
            "controller_listen {controller_listen} is also the Kafka listener"
        ));
    }
    Ok(Some(voters))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn voters_parse_in_kafka_syntax() {
        let voters =
            parse_quorum_voters("1@127.0.0.1:9093, 2@localhost:9094,3@[::1]:9095").unwrap();
        assert_eq!(voters.len(), 3);
        assert_eq!(voters[1].host, "localhost");
        assert_eq!(voters[2].host, "::1");
        assert_eq!(voters[2].port, 9095);
        assert_eq!(voters[2].address(), "[::1]:9095");
        assert_eq!(voters[1].address(), "localhost:9094");
    }

    #[test]
    fn bad_voter_lists_are_refused() {
        for bad in [
            "",
            "1@h",
            "x@h:1",
            "1@h:1,1@h:2",
            "1h:2",
            "-1@h:1",
            "1@:5",
            "1@h:0",
        ] {
            assert!(parse_quorum_voters(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn combinations_are_checked() {
        let listen = addr("127.0.0.1:9092");
        assert_eq!(check_cluster_settings(0, None, None, listen), Ok(None));
        assert!(check_cluster_settings(1, Some("1@h:9093"), None, listen).is_err());
        assert!(check_cluster_settings(1, None, Some(addr("127.0.0.1:9093")), listen).is_err());
        let not_member =
            check_cluster_settings(4, Some("1@h:9093"), Some(addr("127.0.0.1:9093")), listen);
        assert!(not_member.unwrap_err().contains("node_id 4"));
        let wrong_port =
            check_cluster_settings(1, Some("1@h:9093"), Some(addr("127.0.0.1:9099")), listen);
        assert!(wrong_port.is_err());
        let ok = check_cluster_settings(1, Some("1@h:9093"), Some(addr("0.0.0.0:9093")), listen);
        assert_eq!(ok.unwrap().unwrap()[0].id, 1);
    }
}
