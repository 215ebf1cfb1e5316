//! A cgroup v1 freezer of a test's own: a frozen process outlives SIGKILL until it is thawed (the v1 freezer
//! holds it in the kernel; a v2 freezer lets SIGKILL through), which is how a process stuck in the kernel (state
//! `D`, a dead NFS server) looks to grace-init. Thawed and removed on drop, so what it held dies of the SIGKILL
//! it was sent.

use std::path::PathBuf;
use std::time::Duration;

use super::{host::under_ci, wait_for};

/// A freezer cgroup created by a test.
pub struct Freezer {
    pub dir: PathBuf,
}

impl Freezer {
    /// Creates `grace-init-test-PID-NAME` below our own v1 freezer cgroup. `None`, with a message, where none can
    /// be made (no v1 freezer hierarchy, not root); under CI that is a failure.
    pub fn create(name: &str) -> Option<Freezer> {
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.split_once(":freezer:").map(|(_, path)| path.to_string()))
            });
        let made = own
            .ok_or("no v1 freezer hierarchy".to_string())
            .and_then(|own| {
                let dir = PathBuf::from(format!("/sys/fs/cgroup/freezer{own}"))
                    .join(format!("grace-init-test-{}-{name}", std::process::id()));
                std::fs::create_dir(&dir)
                    .map_err(|e| format!("{}: {e}", dir.display()))
                    .map(|()| Freezer { dir })
            });
        match made {
            Ok(freezer) => Some(freezer),
            Err(why) if under_ci() => panic!("cannot create a freezer cgroup under CI: {why}"),
            Err(why) => {
                eprintln!("SKIPPED freezer test: {why}");
                None
            }
        }
    }

    /// Moves `pid` (as the test sees it) in and freezes the cgroup; waits (at most 5 s) until it is frozen.
    pub fn freeze(&self, pid: i32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .expect("move into the freezer");
        std::fs::write(self.dir.join("freezer.state"), "FROZEN").expect("freeze");
        let frozen = wait_for(Duration::from_secs(5), || {
            let state = std::fs::read_to_string(self.dir.join("freezer.state")).ok()?;
            (state.trim() == "FROZEN").then_some(())
        });
        assert!(frozen.is_some(), "the cgroup did not freeze within 5 s");
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("freezer.state"), "THAWED");
        // Once thawed, what it holds dies of its pending SIGKILL; the cgroup can then be removed.
        wait_for(Duration::from_secs(5), || {
            std::fs::remove_dir(&self.dir).ok()
        });
    }
}
