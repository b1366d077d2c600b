//! Network namespaces a test makes for itself, so it can cut one broker off from its peers
//! the way a failed switch port would: `count` namespaces, each with one veth into a bridge
//! in the test's own namespace and one address on a private /24, chosen per test process so
//! concurrent runs do not meet. `cut(i)` takes namespace `i`'s bridge port down (nothing in
//! or out, the namespace's own loopback and address still work inside it); `heal(i)` brings
//! it back. Everything is deleted on drop. Needs root (CAP_NET_ADMIN) and iproute2's `ip`.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Namespaces {
    /// Prefix of every name made here (`<tag>br`, `<tag>n<i>`, `<tag>v<i>`): at most 9
    /// characters, so interface names stay within Linux's 15.
    tag: String,
    /// The first three octets of the /24, e.g. `10.213.7`.
    subnet: String,
    count: usize,
}

/// Runs `ip args`; the error names the command and what `ip` printed.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Namespaces {
    /// Makes `count` (at most 250) namespaces on a fresh bridge, or says why it could not.
    pub fn create(count: usize) -> Result<Namespaces, String> {
        assert!(count > 0 && count <= 250, "1..=250 namespaces");
        static SERIAL: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let unique = (pid % 100_000) * 10 + serial % 10;
        let net = Namespaces {
            tag: format!("sl{:x}", unique % 0xfffff),
            subnet: format!("10.{}.{}", 200 + unique % 50, (unique / 50) % 250),
            count,
        };
        net.build()?;
        Ok(net)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    fn port(&self, i: usize) -> String {
        format!("{}v{i}", self.tag)
    }

    pub fn count(&self) -> usize {
        self.count
    }

    pub fn namespace(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }

    /// Namespace `i`'s address (reachable from the test's namespace through the bridge).
    pub fn address(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, i + 1)
    }

    fn build(&self) -> Result<(), String> {
        let bridge = self.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}.254/24", self.subnet),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..self.count {
            let (ns, port) = (self.namespace(i), self.port(i));
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &port, "master", &bridge])?;
            ip(&["link", "set", &port, "up"])?;
            let address = format!("{}/24", self.address(i));
            ip(&["-n", &ns, "addr", "add", &address, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Cuts namespace `i` off: its bridge port goes down, so no packet reaches it or leaves it.
    pub fn cut(&self, i: usize) {
        ip(&["link", "set", &self.port(i), "down"]).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Reconnects namespace `i`.
    pub fn heal(&self, i: usize) {
        ip(&["link", "set", &self.port(i), "up"]).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth end and with it the pair; the bridge last.
        for i in 0..self.count {
            let _ = ip(&["netns", "delete", &self.namespace(i)]);
            let _ = ip(&["link", "delete", &self.port(i)]);
        }
        let _ = ip(&["link", "delete", &self.bridge()]);
    }
}
