//! The clean-stop mark (Kafka's clean-shutdown file holding the broker epoch, KIP-966). A
//! node whose shards closed every partition cleanly (each log fdatasync'ed whole) writes the
//! broker epoch it is registered at to `<data_dir>/meta/clean-stop` as it stops; its next
//! start takes the mark (reads and removes it) and its registration names that epoch
//! (`RegisterBroker::previous_epoch`), so the quorum does not treat the restart as one after a
//! crash (`apply_register_broker`): after a clean stop the logs hold everything they ever
//! acknowledged, and the node may lead on where it led.
//! Must not: decide anything from the mark (the registration's apply does).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The mark's name under `<data_dir>/meta`.
const MARK: &str = "clean-stop";

fn mark_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meta").join(MARK)
}

/// The broker epoch the last start stopped cleanly at, taken: the mark is removed, so a
/// crash of this start is never mistaken for a clean one. None without a mark, with an
/// unreadable one, or when it cannot be removed (the next start could not tell).
pub fn take(data_dir: &Path) -> Option<i64> {
    let path = mark_path(data_dir);
    let text = std::fs::read_to_string(&path).ok()?;
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "clean-stop mark not removed: this start counts as after a crash");
        return None;
    }
    match text.trim().parse() {
        Ok(broker_epoch) => Some(broker_epoch),
        Err(_) => {
            tracing::warn!(path = %path.display(), "clean-stop mark unreadable: this start counts as after a crash");
            None
        }
    }
}

/// Writes the mark for `broker_epoch`, durably: written aside, fdatasync'ed, renamed into
/// place and the directory synced.
pub fn write(data_dir: &Path, broker_epoch: i64) -> std::io::Result<()> {
    let path = mark_path(data_dir);
    let aside = path.with_extension("tmp");
    let mut file = std::fs::File::create(&aside)?;
    file.write_all(format!("{broker_epoch}\n").as_bytes())?;
    file.sync_data()?;
    std::fs::rename(&aside, &path)?;
    std::fs::File::open(data_dir.join("meta"))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("meta")).unwrap();
        assert_eq!(take(dir.path()), None, "no mark");
        write(dir.path(), 42).unwrap();
        assert_eq!(take(dir.path()), Some(42));
        assert_eq!(take(dir.path()), None, "taken: a later crash is not clean");
        std::fs::write(mark_path(dir.path()), "garbage").unwrap();
        assert_eq!(take(dir.path()), None);
        assert!(
            !mark_path(dir.path()).exists(),
            "an unreadable mark goes too"
        );
    }
}
