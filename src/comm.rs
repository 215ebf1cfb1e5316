//! A process's name as the kernel keeps it (`/proc/<pid>/comm`, at most 15 bytes): read while a zombie still
//! has its entry, and carried by value (it is `Copy`) into the supervisor's events.

use std::fmt;

/// A process name of at most 15 bytes, stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Comm {
    bytes: [u8; 16],
    len: u8,
}

impl Comm {
    /// Takes at most 15 bytes of `name` (what the kernel keeps), without a trailing newline (as /proc/<pid>/comm
    /// ends).
    pub fn new(name: &[u8]) -> Comm {
        Comm::exact(name.strip_suffix(b"\n").unwrap_or(name))
    }

    /// Takes at most 15 bytes of `name`, whatever they are (as /proc/<pid>/stat holds them).
    pub fn exact(name: &[u8]) -> Comm {
        let mut bytes = [0u8; 16];
        let mut len = 0u8;
        for (slot, b) in bytes.iter_mut().zip(name.iter().take(15)) {
            *slot = *b;
            len += 1;
        }
        Comm { bytes, len }
    }

    /// The name of `pid` from /proc, if it can be read (a zombie's still can).
    pub fn of(pid: i32) -> Option<Comm> {
        std::fs::read(format!("/proc/{pid}/comm"))
            .ok()
            .map(|b| Comm::new(&b))
    }
}

/// The name as text for a log line, which it must not break: UTF-8 as it is, except control characters and
/// bytes that are no UTF-8 (a character the kernel cut), which are written `\xNN`.
impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        for chunk in name.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() || c == '\\' {
                    let mut utf8 = [0u8; 4];
                    for b in c.encode_utf8(&mut utf8).bytes() {
                        write!(f, "\\x{b:02x}")?;
                    }
                } else {
                    fmt::Write::write_char(f, c)?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_at_15_bytes_and_lose_the_newline() {
        assert_eq!(Comm::new(b"sleep\n").to_string(), "sleep");
        assert_eq!(
            Comm::new(b"a-very-long-process-name").to_string(),
            "a-very-long-pro"
        );
        assert_eq!(Comm::new(b"").to_string(), "");
        let me = Comm::of(std::process::id() as i32).unwrap();
        assert!(!me.to_string().is_empty());
    }

    #[test]
    fn a_name_prints_on_one_line_whatever_its_bytes() {
        // Cut by the kernel inside a character (worker_数据同步.py), or given with prctl(PR_SET_NAME).
        assert_eq!(
            Comm::new(b"worker_\xe6\x95\xb0\xe6\x8d\xae\xe5\x90\n").to_string(),
            "worker_数据\\xe5\\x90"
        );
        assert_eq!(Comm::exact(b"a) b\nc\td").to_string(), "a) b\\x0ac\\x09d");
        assert_eq!(Comm::exact(b"back\\slash").to_string(), "back\\x5cslash");
        assert_eq!(Comm::exact(b"\xff").to_string(), "\\xff");
    }
}
