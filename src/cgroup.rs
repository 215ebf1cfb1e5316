//! The memory cgroup grace-init runs in: where it is (from /proc/self/cgroup and /proc/self/mountinfo), how
//! many processes in it the kernel's OOM killer has killed, its limit and its peak. The parsers are pure; the
//! reads are a few small files at start and one `pread` of the kill counter when a death needs explaining.
//! Nothing here runs while grace-init is idle.
//!
//! cgroup v2 keeps the count in `memory.events` (`oom_kill`), v1 in `memory.oom_control` (`oom_kill`); both
//! count kills in the cgroup and below it. On a hybrid host (v1 controllers, an empty v2 tree beside them) the
//! memory controller is on v1, so a v1 `memory` line wins over the v2 one.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Which cgroup interface holds the memory controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Where a process's memory cgroup is, as a directory of the mounted cgroup file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub version: Version,
    pub dir: PathBuf,
}

/// A memory limit as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// No limit is set on this cgroup (`max`, or v1's page-counter maximum).
    Unlimited,
    Bytes(u64),
}

/// What the memory cgroup says about an OOM kill: how many it counted, the limit and the peak where they can
/// be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OomKill {
    /// Kills the cgroup counted since grace-init last looked.
    pub kills: u64,
    pub limit: Option<Limit>,
    pub peak: Option<u64>,
}

/// v1 reports "no limit" as the largest page-aligned page-counter value; anything this large is no limit.
const V1_UNLIMITED: u64 = 1 << 62;

/// The memory cgroup's location, from the contents of /proc/self/cgroup and /proc/self/mountinfo. `None`
/// when there is no memory controller, no mount of its hierarchy, or the cgroup is outside every mount (a
/// cgroup namespace whose root is below the process's cgroup).
pub fn locate(proc_cgroup: &[u8], mountinfo: &[u8]) -> Option<Location> {
    let mut v2_path = None;
    for line in proc_cgroup.split(|&b| b == b'\n') {
        let mut fields = line.splitn(3, |&b| b == b':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if controllers.split(|&b| b == b',').any(|c| c == b"memory") {
            return mounted_at(mountinfo, Version::V1, path);
        }
        if id == b"0" && controllers.is_empty() {
            v2_path = Some(path);
        }
    }
    mounted_at(mountinfo, Version::V2, v2_path?)
}

/// The directory of `path` (a cgroup path as /proc/self/cgroup gives it) under the first mount of its
/// hierarchy whose root holds it.
fn mounted_at(mountinfo: &[u8], version: Version, path: &[u8]) -> Option<Location> {
    let path = std::str::from_utf8(path).ok()?;
    // A cgroup removed while we are in it reads "/path (deleted)"; it holds no new information then.
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    for line in mountinfo.split(|&b| b == b'\n') {
        let Some(mount) = Mount::parse(line) else {
            continue;
        };
        let wanted = match version {
            Version::V1 => {
                mount.fstype == b"cgroup"
                    && mount
                        .super_options
                        .split(|&b| b == b',')
                        .any(|o| o == b"memory")
            }
            Version::V2 => mount.fstype == b"cgroup2",
        };
        if !wanted {
            continue;
        }
        let Ok(root) = std::str::from_utf8(&mount.root) else {
            continue;
        };
        let Some(below) = below_root(root, path) else {
            continue;
        };
        let Ok(point) = String::from_utf8(mount.point) else {
            continue;
        };
        let mut dir = PathBuf::from(point);
        dir.extend(below.split('/').filter(|c| !c.is_empty()));
        return Some(Location { version, dir });
    }
    None
}

/// `path` relative to `root`, compared component by component; `None` when it is not below `root` or climbs
/// out of it (`/..`, as a cgroup outside the reader's cgroup namespace reads).
fn below_root<'a>(root: &str, path: &'a str) -> Option<&'a str> {
    if path.split('/').any(|c| c == "..") {
        return None;
    }
    let root = root.trim_end_matches('/');
    let rest = path.strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// The fields of one mountinfo line that matter here, unescaped.
struct Mount<'a> {
    root: Vec<u8>,
    point: Vec<u8>,
    fstype: &'a [u8],
    super_options: &'a [u8],
}

impl<'a> Mount<'a> {
    /// `36 35 98:0 /root /point rw,noatime [optional fields...] - fstype source super,options`.
    fn parse(line: &'a [u8]) -> Option<Mount<'a>> {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let dash = fields.iter().position(|f| *f == b"-")?;
        if dash < 6 {
            return None;
        }
        Some(Mount {
            root: unescape(fields.get(3)?),
            point: unescape(fields.get(4)?),
            fstype: fields.get(dash + 1)?,
            super_options: fields.get(dash + 3).copied().unwrap_or_default(),
        })
    }
}

/// Mountinfo escapes space, tab, newline and backslash as `\` and three octal digits.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while let Some(&b) = field.get(i) {
        let octal = field.get(i + 1..i + 4).and_then(|digits| {
            digits
                .iter()
                .try_fold(0u32, |n, &d| {
                    (b'0'..=b'7')
                        .contains(&d)
                        .then(|| n * 8 + u32::from(d - b'0'))
                })
                .and_then(|n| u8::try_from(n).ok())
        });
        match (b, octal) {
            (b'\\', Some(decoded)) => {
                out.push(decoded);
                i += 4;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The value of `key` in a flat-keyed file (`memory.events`, `memory.oom_control`): lines of `key value`.
pub fn keyed(text: &[u8], key: &str) -> Option<u64> {
    text.split(|&b| b == b'\n').find_map(|line| {
        let line = std::str::from_utf8(line).ok()?;
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// A limit file: `max` (v2) or a number of bytes, where v1 writes "unlimited" as a huge number.
pub fn parse_limit(text: &[u8]) -> Option<Limit> {
    let text = std::str::from_utf8(text).ok()?.trim();
    if text == "max" {
        return Some(Limit::Unlimited);
    }
    let bytes: u64 = text.parse().ok()?;
    Some(if bytes >= V1_UNLIMITED {
        Limit::Unlimited
    } else {
        Limit::Bytes(bytes)
    })
}

/// A file holding one number of bytes (`memory.peak`, `memory.max_usage_in_bytes`).
pub fn parse_bytes(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}

/// Bytes in binary units, for people: "512 B", "64 MiB", "1.5 GiB".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let mut unit = "B";
        let mut scale = 1u64;
        for next in UNITS {
            if self.0 < scale.saturating_mul(1024) {
                break;
            }
            unit = next;
            scale = scale.saturating_mul(1024);
        }
        let whole = self.0 / scale;
        // One decimal, rounded down, and only when it is not zero: "63.9 MiB" is never shown as "64 MiB".
        let tenth = (self.0 % scale).saturating_mul(10) / scale;
        if tenth == 0 {
            write!(f, "{whole} {unit}")
        } else {
            write!(f, "{whole}.{tenth} {unit}")
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Limit::Unlimited => f.write_str("no limit"),
            Limit::Bytes(b) => Bytes(b).fmt(f),
        }
    }
}

/// A small kernel file, whole. /proc and cgroup files report a size of 0, so `std::fs::read` would ask for
/// the size and then read a few bytes at a time; two pages take most such files in one read.
fn read_small(path: impl AsRef<Path>) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut text = vec![0u8; 8192];
    let mut len = 0;
    loop {
        if len == text.len() {
            text.resize(len * 2, 0);
        }
        match file.read(text.get_mut(len..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    text.truncate(len);
    Ok(text)
}

/// The memory cgroup, opened at start: its kill counter stays open, so a look costs one `pread`.
#[derive(Debug)]
pub struct Memory {
    location: Location,
    counter: File,
    /// The count when grace-init started.
    at_start: u64,
    /// The count when grace-init last looked.
    seen: u64,
}

/// What one look at the kill counter found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Look {
    /// Kills since the previous look.
    pub new: u64,
    /// Kills since grace-init started.
    pub since_start: u64,
}

impl Memory {
    /// Finds and opens grace-init's memory cgroup, and reads the kill count it starts from. `None` (with a
    /// debug line saying why) where it cannot be read: then nothing is ever said about OOM kills.
    pub fn open() -> Option<Memory> {
        let location = match (
            read_small("/proc/self/cgroup"),
            read_small("/proc/self/mountinfo"),
        ) {
            (Ok(cgroup), Ok(mountinfo)) => locate(&cgroup, &mountinfo),
            (Err(e), _) | (_, Err(e)) => {
                log::debug!("no memory cgroup to read OOM kills from: {e}");
                return None;
            }
        };
        let Some(location) = location else {
            log::debug!(
                "no memory cgroup to read OOM kills from: none is mounted for this process"
            );
            return None;
        };
        let name = match location.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        let counter = match File::open(location.dir.join(name)) {
            Ok(file) => file,
            Err(e) => {
                log::debug!(
                    "no memory cgroup to read OOM kills from: {}: {e}",
                    location.dir.join(name).display()
                );
                return None;
            }
        };
        let mut memory = Memory {
            location,
            counter,
            at_start: 0,
            seen: 0,
        };
        let Some(count) = memory.count() else {
            log::debug!(
                "no memory cgroup to read OOM kills from: {} has no oom_kill count",
                memory.location.dir.join(name).display()
            );
            return None;
        };
        memory.at_start = count;
        memory.seen = count;
        log::debug!(
            "memory cgroup {}: limit {}, {count} OOM kills so far",
            memory.location.dir.display(),
            memory
                .limit()
                .map_or_else(|| "unknown".to_string(), |l| l.to_string()),
        );
        if memory.location.version == Version::V2 && memory.oom_group() == Some(true) {
            log::debug!(
                "memory.oom.group is set: an OOM kill takes every process in the cgroup, grace-init included, \
                 and cannot be reported"
            );
        }
        Some(memory)
    }

    /// The descriptor to keep open when grace-init closes what it inherited.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.counter)
    }

    fn count(&self) -> Option<u64> {
        let mut buf = [0u8; 256];
        let n = self.counter.read_at(&mut buf, 0).ok()?;
        keyed(buf.get(..n)?, "oom_kill")
    }

    /// Reads the counter again: how many kills are new since the last look, and since the start. `None`
    /// when it cannot be read.
    pub fn look(&mut self) -> Option<Look> {
        let count = self.count()?;
        let look = Look {
            new: count.saturating_sub(self.seen),
            since_start: count.saturating_sub(self.at_start),
        };
        self.seen = count;
        Some(look)
    }

    /// What to report about `kills` OOM kills: the count with the limit and the peak, as far as they can be read.
    pub fn report(&self, kills: u64) -> OomKill {
        OomKill {
            kills,
            limit: self.limit(),
            peak: self.peak(),
        }
    }

    fn read(&self, name: &str) -> Option<Vec<u8>> {
        read_small(self.location.dir.join(name)).ok()
    }

    /// `memory.max` / `memory.limit_in_bytes`.
    pub fn limit(&self) -> Option<Limit> {
        parse_limit(&self.read(match self.location.version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        })?)
    }

    /// `memory.peak` (v2, Linux 5.19 and later) / `memory.max_usage_in_bytes`.
    pub fn peak(&self) -> Option<u64> {
        parse_bytes(&self.read(match self.location.version {
            Version::V1 => "memory.max_usage_in_bytes",
            Version::V2 => "memory.peak",
        })?)
    }

    /// Whether v2's `memory.oom.group` is set: an OOM kill takes every process in the cgroup at once.
    pub fn oom_group(&self) -> Option<bool> {
        let text = self.read("memory.oom.group")?;
        Some(parse_bytes(&text)? == 1)
    }

    /// The directory of the cgroup.
    pub fn dir(&self) -> &Path {
        &self.location.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine: v1 controllers and an empty v2 tree (a hybrid host), the session in a memory cgroup of
    /// its own.
    const HYBRID_CGROUP: &str = "9:name=systemd:/\n8:pids:/\n7:blkio:/\n6:freezer:/\n5:devices:/\n\
        4:memory:/process_api/e1f7a0e32e45527dfd211f29cf3d5f9a\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";
    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn a_hybrid_host_reads_the_v1_memory_hierarchy() {
        assert_eq!(
            locate(HYBRID_CGROUP.as_bytes(), HYBRID_MOUNTINFO.as_bytes()),
            Some(Location {
                version: Version::V1,
                dir: PathBuf::from(
                    "/sys/fs/cgroup/memory/process_api/e1f7a0e32e45527dfd211f29cf3d5f9a"
                ),
            })
        );
    }

    #[test]
    fn a_v2_host_and_a_v2_container_with_a_cgroup_namespace() {
        // A kubelet node (systemd driver, containerd): the cgroup path is the whole slice.
        let node = "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod4f1c.slice/cri-containerd-9a8b.scope\n";
        let node_mounts = "\
24 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
        assert_eq!(
            locate(node.as_bytes(), node_mounts.as_bytes()),
            Some(Location {
                version: Version::V2,
                dir: PathBuf::from(
                    "/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod4f1c.slice/cri-containerd-9a8b.scope"
                ),
            })
        );
        // Inside the container: a cgroup namespace makes its own cgroup the root.
        let inside = "0::/\n";
        let inside_mounts = "\
1390 1380 0:151 / / rw,relatime master:500 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
1401 1399 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot
";
        assert_eq!(
            locate(inside.as_bytes(), inside_mounts.as_bytes()),
            Some(Location {
                version: Version::V2,
                dir: PathBuf::from("/sys/fs/cgroup"),
            })
        );
    }

    #[test]
    fn a_v1_container_without_a_cgroup_namespace_strips_the_mount_root() {
        // Docker on a v1 host: the hierarchy is mounted from the container's own cgroup down.
        let cgroup = "12:memory:/docker/0123abcd\n11:cpu,cpuacct:/docker/0123abcd\n0::/system.slice/containerd.service\n";
        let mounts = "\
700 690 0:40 /docker/0123abcd /sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,noexec,relatime master:16 - cgroup cgroup rw,cpu,cpuacct
701 690 0:41 /docker/0123abcd /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:17 - cgroup cgroup rw,memory
";
        assert_eq!(
            locate(cgroup.as_bytes(), mounts.as_bytes()),
            Some(Location {
                version: Version::V1,
                dir: PathBuf::from("/sys/fs/cgroup/memory"),
            })
        );
    }

    #[test]
    fn nothing_is_guessed() {
        // No memory controller mounted anywhere.
        assert_eq!(
            locate(
                HYBRID_CGROUP.as_bytes(),
                b"31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
            ),
            None
        );
        // The process is outside the namespace's root (a cgroup namespace created, then the process moved up).
        let outside = "0::/../../user.slice\n";
        let mounts = "41 31 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(locate(outside.as_bytes(), mounts.as_bytes()), None);
        // A mount of another part of the hierarchy only; "/docker/ab" is not below "/docker/a".
        let cgroup = "4:memory:/docker/ab\n";
        let mounts = "35 31 0:32 /docker/a /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(locate(cgroup.as_bytes(), mounts.as_bytes()), None);
        // Empty or broken files.
        assert_eq!(locate(b"", b""), None);
        assert_eq!(locate(b"garbage", b"a b c\n-\n"), None);
    }

    #[test]
    fn mount_points_are_unescaped() {
        let cgroup = "0::/a b\n";
        let mounts = "41 31 0:38 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            locate(cgroup.as_bytes(), mounts.as_bytes()).map(|l| l.dir),
            Some(PathBuf::from("/sys/fs/my cgroup/a b"))
        );
        assert_eq!(unescape(b"a\\134b\\011c\\9"), b"a\\b\tc\\9".to_vec());
    }

    #[test]
    fn kill_counts_from_real_files() {
        // v1 memory.oom_control, as this machine's kernel writes it after one OOM kill.
        let v1 = b"oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
        assert_eq!(keyed(v1, "oom_kill"), Some(1));
        // v2 memory.events.
        let v2 = b"low 0\nhigh 0\nmax 1403\noom 20\noom_kill 20\noom_group_kill 2\n";
        assert_eq!(keyed(v2, "oom_kill"), Some(20));
        assert_eq!(keyed(v2, "oom_group_kill"), Some(2));
        // Kernels before 4.13 have no oom_kill line in v1.
        assert_eq!(
            keyed(b"oom_kill_disable 0\nunder_oom 0\n", "oom_kill"),
            None
        );
        assert_eq!(keyed(b"oom_kill x\n", "oom_kill"), None);
    }

    #[test]
    fn limits_and_peaks() {
        assert_eq!(parse_limit(b"max\n"), Some(Limit::Unlimited));
        assert_eq!(parse_limit(b"67108864\n"), Some(Limit::Bytes(64 << 20)));
        // v1 without a limit.
        assert_eq!(
            parse_limit(b"9223372036854771712\n"),
            Some(Limit::Unlimited)
        );
        assert_eq!(parse_limit(b""), None);
        assert_eq!(parse_bytes(b"66949120\n"), Some(66_949_120));
        assert_eq!(parse_bytes(b"n/a"), None);
    }

    #[test]
    fn bytes_for_people() {
        let table = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1 KiB"),
            (1536, "1.5 KiB"),
            (64 << 20, "64 MiB"),
            ((64 << 20) - 1, "63.9 MiB"),
            (66_949_120, "63.8 MiB"),
            (3 << 30, "3 GiB"),
            (u64::MAX, "15.9 EiB"),
        ];
        for (bytes, want) in table {
            assert_eq!(Bytes(bytes).to_string(), want, "{bytes}");
        }
        assert_eq!(Limit::Unlimited.to_string(), "no limit");
    }

    #[test]
    fn this_machine_s_cgroup_reads_when_there_is_one() {
        // Whatever the host: opening never panics, and a counter that opened can be read again.
        if let Some(mut memory) = Memory::open() {
            assert!(memory.look().is_some(), "{}", memory.dir().display());
        }
    }
}
