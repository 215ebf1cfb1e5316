//! Holding nothing of the caller's once the child runs: grace-init's own working directory becomes `/` (so it
//! keeps no mount point busy), its own stdin and stdout become /dev/null (so a reader of the caller's stdout sees
//! EOF when the app is done with it), and it closes, in itself, the descriptors above 2 it inherited (so a pipe
//! whose write end it was handed gives its reader EOF when the app closes its copy). The child keeps all of them.
//! The directory the app was started in is remembered by its path, for the pre-stop command: a descriptor
//! would keep its mount point busy.

use std::os::fd::RawFd;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::sys;

/// Moves grace-init (not the child) to `/`, points its own stdin and stdout at /dev/null and closes its
/// inherited descriptors, keeping 0, 1, 2 and `keep` (grace-init's own: the signalfd, a log descriptor, the
/// terminal). Returns the directory it was started in (the app's, the image's WORKDIR), when it has a path.
pub fn detach_from_caller(keep: &[RawFd]) -> Option<PathBuf> {
    let start_dir = match std::env::current_dir() {
        Ok(dir) => Some(dir),
        Err(e) => {
            log::warn!(
                "cannot tell the directory the app was started in ({e}): the pre-stop command will run in /"
            );
            None
        }
    };
    if let Err(e) = nix::unistd::chdir("/") {
        log::warn!(
            "cannot change grace-init's own directory to /: {}",
            e.desc()
        );
    }
    close_inherited_fds(keep);
    release_stdin_and_stdout();
    start_dir
}

/// Points grace-init's own descriptors 0 and 1 at /dev/null: it reads and writes neither (its log is stderr),
/// and a copy it held would keep the caller's pipe open after the app let go of it. Without /dev/null (a bare
/// image) they stay as they are.
fn release_stdin_and_stdout() {
    let null = match nix::fcntl::open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
    {
        Ok(null) => null,
        Err(e) => {
            log::debug!(
                "cannot open /dev/null ({}): stdin and stdout kept",
                e.desc()
            );
            return;
        }
    };
    for (name, result) in [
        ("stdin", nix::unistd::dup2_stdin(&null)),
        ("stdout", nix::unistd::dup2_stdout(&null)),
    ] {
        if let Err(e) = result {
            log::debug!(
                "cannot point grace-init's own {name} at /dev/null: {}",
                e.desc()
            );
        }
    }
}

/// Closes every descriptor above 2 but those in `keep`: with close_range around the kept ones, or, on a
/// kernel without it (before 5.9), those /proc/self/fd lists, or failing that, one close per number up to the
/// descriptor limit.
pub fn close_inherited_fds(keep: &[RawFd]) {
    let mut kept: Vec<u32> = keep
        .iter()
        .filter_map(|fd| u32::try_from(*fd).ok())
        .filter(|fd| *fd > 2)
        .collect();
    kept.sort_unstable();
    kept.dedup();
    match close_ranges_around(&kept, sys::close_range) {
        Ok(()) => {}
        Err(Errno::ENOSYS) | Err(Errno::EPERM) => close_one_by_one(&kept),
        Err(e) => log::warn!("cannot close inherited descriptors: {}", e.desc()),
    }
}

/// Calls `close(first, last)` for every range above 2 between the `kept` descriptors (sorted, unique).
fn close_ranges_around(
    kept: &[u32],
    mut close: impl FnMut(u32, u32) -> Result<(), Errno>,
) -> Result<(), Errno> {
    let mut first = 3u32;
    for &fd in kept {
        if fd > first {
            close(first, fd - 1)?;
        }
        first = fd.saturating_add(1);
    }
    if first < u32::MAX {
        close(first, u32::MAX)?;
    }
    Ok(())
}

/// The fallback: the descriptors /proc/self/fd lists, or every number below the descriptor limit.
fn close_one_by_one(kept: &[u32]) {
    let is_kept = |fd: i32| u32::try_from(fd).is_ok_and(|fd| kept.binary_search(&fd).is_ok());
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // Collected first: the directory's own descriptor is open while it is read.
        let open: Vec<i32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        for fd in open.into_iter().filter(|fd| *fd > 2 && !is_kept(*fd)) {
            sys::close_fd(fd);
        }
        return;
    }
    let limit = nix::unistd::sysconf(nix::unistd::SysconfVar::OPEN_MAX)
        .ok()
        .flatten()
        .map_or(1024, |n| n.clamp(3, 65_536));
    let limit = i32::try_from(limit).unwrap_or(1024);
    for fd in (3..limit).filter(|fd| !is_kept(*fd)) {
        sys::close_fd(fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(kept: &[u32]) -> Vec<(u32, u32)> {
        let mut seen = vec![];
        close_ranges_around(kept, |a, b| {
            seen.push((a, b));
            Ok(())
        })
        .unwrap();
        seen
    }

    #[test]
    fn ranges_skip_the_kept_descriptors() {
        assert_eq!(ranges(&[]), vec![(3, u32::MAX)]);
        assert_eq!(ranges(&[3]), vec![(4, u32::MAX)]);
        assert_eq!(ranges(&[5]), vec![(3, 4), (6, u32::MAX)]);
        assert_eq!(ranges(&[3, 4, 9]), vec![(5, 8), (10, u32::MAX)]);
        assert_eq!(ranges(&[u32::MAX]), vec![(3, u32::MAX - 1)]);
    }
}
