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
    /// Takes at most 15 bytes of `name` (what the kernel keeps), without a trailing newline.
    pub fn new(name: &[u8]) -> Comm {
        let name = name.strip_suffix(b"\n").unwrap_or(name);
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

impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        f.write_str(&String::from_utf8_lossy(name))
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
}
