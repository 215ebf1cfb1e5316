//! stderr without blocking: a stalled reader (a full pipe, a log driver that hangs, a terminal paused with
//! Ctrl-S) must never hold grace-init in a write.
//!
//! The open file description behind fd 2 is shared with the app, so its flags must not change (setting
//! O_NONBLOCK on it would make the app's own writes fail with EAGAIN). Instead, by what fd 2 is:
//! - a pipe or a terminal: a private description of the same pipe or terminal, opened through
//!   /proc/self/fd/2 with O_NONBLOCK (falling back to a zero-timeout poll before each write without /proc);
//! - a socket: send(2) with MSG_DONTWAIT, which is per call;
//! - a regular file or anything else: a plain write, which does not wait for a reader.
//!
//! Text goes out in chunks of at most PIPE_BUF bytes cut at line ends, so each chunk reaches a pipe whole
//! or not at all, and a line is never cut in two by a full pipe.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::stat::{Mode, SFlag, fstat};

use crate::sys;

/// The most a pipe takes in one write, all or nothing.
const CHUNK: usize = libc::PIPE_BUF;

/// Where log text goes.
pub enum Sink {
    /// A non-blocking description of the pipe or terminal that fd 2 is.
    Private(OwnedFd),
    /// fd 2 is a socket: send with MSG_DONTWAIT.
    Socket,
    /// fd 2 is a pipe that could not be reopened (no /proc, or another user's pipe): each write says "do not
    /// wait" (RWF_NOWAIT); where the kernel cannot honour that, a write goes out only when FIONREAD and
    /// F_GETPIPE_SZ prove a slot of the pipe free.
    Measured,
    /// fd 2 is a terminal that could not be reopened: poll for room before each write. A terminal that has
    /// some room but less than a line can still hold the write up; lines are short, and this is the last resort.
    Polled,
    /// fd 2 is a file: write to it.
    Plain,
    /// fd 2 is closed.
    Closed,
}

impl Sink {
    /// Looks at fd 2 once and picks how to write to it.
    pub fn open() -> Sink {
        let stderr = std::io::stderr();
        let Ok(stat) = fstat(stderr.as_fd()) else {
            return Sink::Closed;
        };
        let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFSOCK {
            return Sink::Socket;
        }
        if kind != SFlag::S_IFIFO && kind != SFlag::S_IFCHR {
            return Sink::Plain;
        }
        let flags = OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        match open("/proc/self/fd/2", flags, Mode::empty()) {
            Ok(fd) => Sink::Private(fd),
            // No /proc, a pipe or terminal of another user (EACCES), or a pipe whose reader is gone (ENXIO).
            Err(_) if kind == SFlag::S_IFIFO => Sink::Measured,
            Err(_) => Sink::Polled,
        }
    }

    /// The private descriptor, which grace-init keeps when it closes what it inherited.
    pub fn raw_fd(&self) -> Option<RawFd> {
        match self {
            Sink::Private(fd) => Some(fd.as_raw_fd()),
            _ => None,
        }
    }

    /// Writes whole lines of `text` for as long as stderr takes them, never waiting. Returns how many lines
    /// did not get through.
    pub fn write_lines(&self, text: &[u8]) -> usize {
        let mut rest = text;
        while !rest.is_empty() {
            let cut = chunk_end(rest);
            let (chunk, after) = rest.split_at(cut);
            match self.write_chunk(chunk) {
                Ok(n) if n == chunk.len() => rest = after,
                // A terminal may take part of a chunk: the rest of it, and what follows, is lost.
                Ok(n) => {
                    return count_lines(chunk.get(n..).unwrap_or_default()) + count_lines(after);
                }
                Err(_) => return count_lines(rest),
            }
        }
        0
    }

    fn write_chunk(&self, chunk: &[u8]) -> Result<usize, Errno> {
        // SAFETY of the borrow: fd 2 stays open for grace-init's whole life (it never closes 0, 1 or 2).
        let stderr = std::io::stderr();
        match self {
            Sink::Private(fd) => nix::unistd::write(fd, chunk),
            Sink::Socket => sys::send_nonblocking(stderr.as_fd(), chunk),
            Sink::Measured => match sys::write_nowait(stderr.as_fd(), chunk) {
                // The kernel cannot promise not to wait on this pipe (before Linux 6.4, or once something was
                // spliced into it), or a seccomp filter refuses pwritev2 (EPERM, ENOSYS): write only when a
                // free slot is certain. Another writer can still take it between the look and the write; it
                // would have to fill the whole pipe in that moment.
                Err(Errno::EOPNOTSUPP | Errno::EINVAL | Errno::ENOSYS | Errno::EPERM) => {
                    if !pipe_has_free_slot(stderr.as_fd()) {
                        return Err(Errno::EAGAIN);
                    }
                    nix::unistd::write(stderr.as_fd(), chunk)
                }
                done => done,
            },
            Sink::Polled => {
                if !writable(stderr.as_fd()) {
                    return Err(Errno::EAGAIN);
                }
                nix::unistd::write(stderr.as_fd(), chunk)
            }
            Sink::Plain => nix::unistd::write(stderr.as_fd(), chunk),
            Sink::Closed => Err(Errno::EBADF),
        }
    }
}

/// Whether the pipe behind `fd` surely has a free slot, so that a write of at most PIPE_BUF bytes cannot wait
/// (it takes at most one slot: merged into the last page or a page of its own). A pipe holds up to
/// F_GETPIPE_SZ / page-size pages, and each page in use holds at least one unread byte, but possibly only one:
/// data spliced in (sendfile, busybox `cat`) is never merged. So only fewer bytes queued (FIONREAD) than the
/// pipe has slots prove a slot free. `false` when either cannot be read.
fn pipe_has_free_slot(fd: BorrowedFd) -> bool {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|page| usize::try_from(page).ok())
        .filter(|page| *page > 0);
    match (sys::pipe_fill(fd), page) {
        (Ok((size, queued)), Some(page)) => queued < size / page,
        _ => false,
    }
}

/// Whether fd has room for a write right now (a poll that does not wait).
fn writable(fd: BorrowedFd) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
        && fds.first().and_then(|f| f.revents()).is_some_and(|r| {
            r.contains(PollFlags::POLLOUT) && !r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP)
        })
}

/// Where the next chunk ends: the last line end within CHUNK bytes, or the first line end after (a single
/// line longer than a chunk goes alone), or the end of the text.
fn chunk_end(text: &[u8]) -> usize {
    if text.len() <= CHUNK {
        return text.len();
    }
    let head = text.get(..CHUNK).unwrap_or(text);
    if let Some(i) = head.iter().rposition(|&b| b == b'\n') {
        return i + 1;
    }
    text.iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| i + 1)
}

/// Lines in `text`, a last one without a newline included.
fn count_lines(text: &[u8]) -> usize {
    let newlines = text.iter().filter(|&&b| b == b'\n').count();
    newlines + usize::from(text.last().is_some_and(|&b| b != b'\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_end_at_line_ends_within_pipe_buf() {
        let line = [b'x'; 99].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        let text: Vec<u8> = line.iter().cycle().take(100 * 100).copied().collect();
        let cut = chunk_end(&text);
        assert!(cut <= CHUNK && cut % 100 == 0, "{cut}");
        let long: Vec<u8> = std::iter::repeat_n(b'y', 5000).chain(*b"\nz\n").collect();
        assert_eq!(chunk_end(&long), 5001);
        assert_eq!(chunk_end(b"short\n"), 6);
    }

    #[test]
    fn lines_are_counted_with_or_without_a_last_newline() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a\nb\n"), 2);
        assert_eq!(count_lines(b"a\nb"), 2);
    }
}
