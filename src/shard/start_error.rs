//! Why a broker could not start: each variant names what an operator must fix.

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("cannot use data directory {path}: {message}")]
    DataDir { path: String, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot create an io_uring ring on shard {shard}: {source}. io_uring may be disabled \
         (kernel.io_uring_disabled, a seccomp filter in a container) or the locked-memory limit \
         (ulimit -l, LimitMEMLOCK=) is below what {entries} ring entries need; lower `ring_entries` \
         or raise the limit"
    )]
    Ring {
        shard: usize,
        entries: u32,
        source: std::io::Error,
    },
    #[error("shard {0} failed to start: {1}")]
    Shard(usize, String),
    /// Told to stop (SIGTERM, SIGINT) while waiting for the metadata quorum: a clean stop,
    /// not a failure.
    #[error("stopped before serving: the metadata quorum was not reached")]
    StoppedBeforeServing,
}
