//! The clean-stop mark (Kafka's clean-shutdown file holding the broker epoch, KIP-966). A
//! node whose shards closed every partition cleanly (each log fdatasync'ed whole) writes the
//! broker epoch it knows itself registered at and its start's incarnation to
//! `<data_dir>/meta/clean-stop` as it stops; its next start takes the mark (reads and removes
//! it) and its registration names both (`RegisterBroker::previous_epoch`,
//! `previous_incarnation`: a registration of the stopping start that committed after it last
//! applied one still names that incarnation), so the quorum does not treat the restart as one after a
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

/// What a clean stop leaves: the broker epoch the stopping start knew itself registered at,
/// and that start's incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub epoch: i64,
    pub incarnation: u64,
}

/// The last start's clean stop, taken: the mark is removed, so a crash of this start is
/// never mistaken for a clean one. None without a mark, with an unreadable one, or when it
/// cannot be removed (the next start could not tell).
pub fn take(data_dir: &Path) -> Option<Mark> {
    let path = mark_path(data_dir);
    let text = std::fs::read_to_string(&path).ok()?;
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "clean-stop mark not removed: this start counts as after a crash");
        return None;
    }
    let mut fields = text.split_whitespace();
    let epoch = fields.next().and_then(|f| f.parse().ok());
    let incarnation = fields.next().and_then(|f| f.parse().ok());
    match (epoch, incarnation) {
        (Some(epoch), Some(incarnation)) => Some(Mark { epoch, incarnation }),
        _ => {
            tracing::warn!(path = %path.display(), "clean-stop mark unreadable: this start counts as after a crash");
            None
        }
    }
}

/// Writes `mark`, durably: written aside, fdatasync'ed, renamed into place and the
/// directory synced.
pub fn write(data_dir: &Path, mark: Mark) -> std::io::Result<()> {
    let path = mark_path(data_dir);
    let aside = path.with_extension("tmp");
    let mut file = std::fs::File::create(&aside)?;
    file.write_all(format!("{} {}\n", mark.epoch, mark.incarnation).as_bytes())?;
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
        let mark = Mark {
            epoch: 42,
            incarnation: 7,
        };
        write(dir.path(), mark).unwrap();
        assert_eq!(take(dir.path()), Some(mark));
        assert_eq!(take(dir.path()), None, "taken: a later crash is not clean");
        std::fs::write(mark_path(dir.path()), "garbage").unwrap();
        assert_eq!(take(dir.path()), None);
        assert!(
            !mark_path(dir.path()).exists(),
            "an unreadable mark goes too"
        );
    }
}
