//! The termination message: on exit, grace-init's last line goes to a file the orchestrator reads (Kubernetes
//! shows /dev/termination-log as the container's last state in `kubectl describe pod`). The file is looked at
//! once at start and written once at exit: never more than 4096 bytes, never over a message the app wrote
//! itself (the file must be as it was at start), and never blocking (a FIFO without a reader is skipped).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where Kubernetes mounts the file it reads the message from (`terminationMessagePath`'s default).
pub const KUBERNETES_PATH: &str = "/dev/termination-log";

/// The most Kubernetes keeps of a termination message.
pub const LIMIT: usize = 4096;

/// Where the termination message goes, as asked for on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Not asked: /dev/termination-log when it exists at start.
    Default,
    /// `--termination-log none`.
    Off,
    /// `--termination-log PATH`: created if it does not exist.
    Path(PathBuf),
}

/// Parses a `--termination-log` value: a path, or `none`.
pub fn parse_destination(value: &str) -> Result<Destination, String> {
    if value == "none" {
        Ok(Destination::Off)
    } else if value.is_empty() {
        Err("invalid termination log path '': give a file, or `none`".to_string())
    } else {
        Ok(Destination::Path(PathBuf::from(value)))
    }
}

/// The file as it was at start: the message is written only over exactly this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    Absent,
    File {
        dev: u64,
        ino: u64,
        len: u64,
        mtime: (i64, i64),
    },
    /// A FIFO, a character device: written as it is, without blocking.
    Other,
}

impl Found {
    fn of(meta: &std::fs::Metadata) -> Found {
        if meta.file_type().is_file() {
            Found::File {
                dev: meta.dev(),
                ino: meta.ino(),
                len: meta.len(),
                mtime: (meta.mtime(), meta.mtime_nsec()),
            }
        } else {
            Found::Other
        }
    }
}

/// The termination message's file, looked at when grace-init started.
#[derive(Debug)]
pub struct TerminationLog {
    path: PathBuf,
    at_start: Found,
}

impl TerminationLog {
    /// Looks at the destination before the app starts. `None` when there is nothing to write to: off, or the
    /// default path does not exist (not under Kubernetes).
    pub fn prepare(destination: &Destination) -> Option<TerminationLog> {
        let (path, explicit) = match destination {
            Destination::Off => return None,
            Destination::Default => (PathBuf::from(KUBERNETES_PATH), false),
            Destination::Path(path) => (path.clone(), true),
        };
        let at_start = match std::fs::metadata(&path) {
            Ok(meta) => Found::of(&meta),
            Err(_) if !explicit => return None,
            Err(_) => Found::Absent,
        };
        log::debug!("the termination message will go to {}", path.display());
        Some(TerminationLog { path, at_start })
    }

    /// Writes `message` (cut to 4096 bytes), unless the app has written the file since start. Logs what it did
    /// not do; never blocks.
    pub fn write(&self, message: &str) {
        match self.try_write(message) {
            Ok(true) => log::debug!("termination message written to {}", self.path.display()),
            Ok(false) => log::info!(
                "termination message not written: {} changed since start (the app wrote its own)",
                self.path.display()
            ),
            Err(e) => log::warn!(
                "cannot write the termination message to {}: {e}",
                self.path.display()
            ),
        }
    }

    fn try_write(&self, message: &str) -> std::io::Result<bool> {
        let mut options = OpenOptions::new();
        options
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
        if self.at_start == Found::Absent {
            // Created here, or someone else's: an app that created it meanwhile keeps its message.
            options.create_new(true).mode(0o644);
        }
        let mut file = match options.open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            // A FIFO nobody reads: the message has nowhere to go, and waiting for a reader is not an option.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                log::debug!(
                    "no reader on {}: termination message dropped",
                    self.path.display()
                );
                return Ok(true);
            }
            Err(e) => return Err(e),
        };
        let now = Found::of(&file.metadata()?);
        match (self.at_start, now) {
            (Found::Absent, Found::File { .. }) | (Found::Other, Found::Other) => {}
            (before, now) if before == now => file.set_len(0)?,
            _ => return Ok(false),
        }
        write_once(&mut file, message)?;
        Ok(true)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The message, newline-terminated, cut at a character boundary to fit `LIMIT`, in one write.
fn write_once(file: &mut File, message: &str) -> std::io::Result<()> {
    let text = fit(message);
    file.write(text.as_bytes()).map(|_| ())
}

/// `message` with a newline, at most `LIMIT` bytes: cut with "…" when longer.
pub fn fit(message: &str) -> String {
    let message = message.trim_end_matches('\n');
    if message.len() < LIMIT {
        return format!("{message}\n");
    }
    let mut end = LIMIT - "…\n".len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…\n", message.get(..end).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "grace-init-termination-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn destinations() {
        assert_eq!(parse_destination("none"), Ok(Destination::Off));
        assert_eq!(
            parse_destination("/tmp/x"),
            Ok(Destination::Path(PathBuf::from("/tmp/x")))
        );
        assert!(parse_destination("").unwrap_err().contains("''"));
        assert!(TerminationLog::prepare(&Destination::Off).is_none());
    }

    #[test]
    fn messages_are_cut_to_the_limit() {
        assert_eq!(fit("short"), "short\n");
        let long = fit(&"é".repeat(5000));
        assert!(
            long.len() <= LIMIT && long.len() > LIMIT - 8,
            "{}",
            long.len()
        );
        assert!(long.ends_with("…\n"));
    }

    #[test]
    fn an_empty_file_is_written_and_a_message_the_app_wrote_is_kept() {
        let dir = scratch("kept");
        let path = dir.join("termination-log");
        std::fs::write(&path, "").unwrap();
        let log = TerminationLog::prepare(&Destination::Path(path.clone())).unwrap();
        assert_eq!(log.try_write("grace-init: bye").ok(), Some(true));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "grace-init: bye\n");

        std::fs::write(&path, "").unwrap();
        let log = TerminationLog::prepare(&Destination::Path(path.clone())).unwrap();
        std::fs::write(&path, "app: database unreachable\n").unwrap();
        assert_eq!(log.try_write("grace-init: bye").ok(), Some(false));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "app: database unreachable\n"
        );

        // Absent at start: created; created by the app meanwhile: kept.
        let fresh = dir.join("fresh");
        let log = TerminationLog::prepare(&Destination::Path(fresh.clone())).unwrap();
        assert_eq!(log.try_write("grace-init: bye").ok(), Some(true));
        assert_eq!(
            std::fs::read_to_string(&fresh).unwrap(),
            "grace-init: bye\n"
        );
        let raced = dir.join("raced");
        let log = TerminationLog::prepare(&Destination::Path(raced.clone())).unwrap();
        std::fs::write(&raced, "app\n").unwrap();
        assert_eq!(log.try_write("grace-init: bye").ok(), Some(false));
        assert_eq!(std::fs::read_to_string(&raced).unwrap(), "app\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_fifo_without_a_reader_does_not_block() {
        let dir = scratch("fifo");
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let log = TerminationLog::prepare(&Destination::Path(fifo)).unwrap();
        let started = std::time::Instant::now();
        assert!(log.try_write("grace-init: bye").is_ok());
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
