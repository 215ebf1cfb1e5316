//! A memory cgroup of a test's own: created below the test process's memory cgroup (in the v1 memory hierarchy
//! or in v2, whichever holds the memory controller), with a limit, and removed on drop once its processes are
//! gone. grace-init enters it through a launcher prefix, a shell that moves itself in and then execs grace-init,
//! so grace-init and everything it starts are charged to it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use grace_init::cgroup::{Version, locate};

use super::{Launch, host::under_ci};

/// A memory cgroup created by a test.
pub struct MemoryCgroup {
    pub dir: PathBuf,
    pub version: Version,
}

impl MemoryCgroup {
    /// Creates `grace-init-test-PID-NAME` below our own memory cgroup, limited to `limit` bytes (none with
    /// `None`). `None`, with a message, where no memory cgroup can be made here; under CI that is a failure.
    pub fn create(name: &str, limit: Option<u64>) -> Option<MemoryCgroup> {
        match Self::try_create(name, limit) {
            Ok(cgroup) => Some(cgroup),
            Err(why) if under_ci() => panic!("cannot create a memory cgroup under CI: {why}"),
            Err(why) => {
                eprintln!("SKIPPED memory cgroup test: {why}");
                None
            }
        }
    }

    fn try_create(name: &str, limit: Option<u64>) -> Result<MemoryCgroup, String> {
        let read = |p: &str| std::fs::read(p).map_err(|e| format!("{p}: {e}"));
        let mountinfo = read("/proc/self/mountinfo")?;
        let own = locate(&read("/proc/self/cgroup")?, &mountinfo)
            .ok_or("no memory cgroup is mounted for this process")?;
        // Below our own cgroup first. On cgroup v2 that cgroup holds processes (ours), so it cannot pass the
        // memory controller down to a child; the top of the hierarchy can (as root, outside a cgroup namespace).
        let mut parents = vec![own.dir.clone()];
        if own.version == Version::V2 {
            if let Some(top) = locate(b"0::/\n", &mountinfo) {
                if top.dir != own.dir {
                    parents.push(top.dir);
                }
            }
        }
        let mut why = String::new();
        for parent in parents {
            match Self::create_below(&parent, own.version, name, limit) {
                Ok(cgroup) => return Ok(cgroup),
                Err(e) => why = e,
            }
        }
        Err(why)
    }

    fn create_below(
        parent: &std::path::Path,
        version: Version,
        name: &str,
        limit: Option<u64>,
    ) -> Result<MemoryCgroup, String> {
        let dir = parent.join(format!("grace-init-test-{}-{name}", std::process::id()));
        if dir.exists() {
            // Left by an earlier run of the same pid: empty by now, or the test cannot be trusted.
            std::fs::remove_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        // Removed on drop from here on, whatever goes wrong.
        let cgroup = MemoryCgroup { dir, version };
        let (limit_file, kills_file) = match version {
            Version::V1 => ("memory.limit_in_bytes", "memory.oom_control"),
            Version::V2 => ("memory.max", "memory.events"),
        };
        if !cgroup.dir.join(kills_file).exists() {
            return Err(format!(
                "{} has no {kills_file}: the memory controller is not enabled for it",
                cgroup.dir.display()
            ));
        }
        if let Some(bytes) = limit {
            cgroup.write(limit_file, &bytes.to_string())?;
            // No swap to escape into: the limit is the memory (the files exist only where swap is accounted).
            let _ = match version {
                Version::V2 => cgroup.write("memory.swap.max", "0"),
                Version::V1 => cgroup.write("memory.memsw.limit_in_bytes", &bytes.to_string()),
            };
        }
        Ok(cgroup)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        let path = self.dir.join(file);
        std::fs::write(&path, value)
            .map_err(|e| format!("write {value} to {}: {e}", path.display()))
    }

    /// Programs that move themselves into the cgroup and exec grace-init in place (for `Launch::prefix`): PID 1
    /// of a new namespace writes its own pid as the namespace sees it, which the kernel reads that way.
    pub fn prefix(&self) -> Vec<String> {
        vec![
            "sh".to_string(),
            "-c".to_string(),
            format!(
                "echo $$ > '{}/cgroup.procs' && exec \"$0\" \"$@\"",
                self.dir.display()
            ),
        ]
    }

    /// The mode's launcher with grace-init moved into the cgroup.
    pub fn launch(&self) -> Launch {
        Launch {
            prefix: self.prefix(),
            ..Launch::default()
        }
    }

    /// Whether the kernel keeps a peak for the cgroup (v2's memory.peak is Linux 5.19 and later).
    pub fn keeps_peak(&self) -> bool {
        let file = match self.version {
            Version::V1 => "memory.max_usage_in_bytes",
            Version::V2 => "memory.peak",
        };
        self.dir.join(file).exists()
    }

    /// The OOM kills the cgroup counted.
    pub fn oom_kills(&self) -> Option<u64> {
        let file = match self.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        grace_init::cgroup::keyed(&std::fs::read(self.dir.join(file)).ok()?, "oom_kill")
    }
}

impl Drop for MemoryCgroup {
    /// Removes the cgroup once the processes the test started in it are gone (their runs end them); bounded.
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => {
                    eprintln!("cannot remove {}: {e}", self.dir.display());
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}
