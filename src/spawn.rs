//! Starts processes: the main child (own process group, terminal foreground, clean signal state) and the
//! pre-stop command (the same clean start, in the app's directory).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::errno::Errno;

use crate::exit_code::{NOT_EXECUTABLE, NOT_FOUND, SETUP_FAILED};
use crate::sys;
use crate::user::Identity;

/// Why the command could not be started: grace-init's exit code and a one-line message.
#[derive(Debug)]
pub struct SpawnError {
    pub code: i32,
    pub message: String,
}

/// Starts the main child. `take_terminal`: make its group the terminal's foreground group; `user`: run it as
/// that user (`--user`). When socket activation names grace-init (`LISTEN_PID` is its pid), the child gets its
/// own pid there, and the LISTEN_* variables are then removed from grace-init's own environment.
pub fn spawn_child(
    command: &[OsString],
    take_terminal: bool,
    user: Option<&Identity>,
) -> Result<i32, SpawnError> {
    let Some((program, args)) = command.split_first() else {
        return Err(SpawnError {
            code: SETUP_FAILED,
            message: "no command given".to_string(),
        });
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    sys::start_clean(&mut cmd, take_terminal);
    become_user(&mut cmd, user);
    // Keep `cmd` free of env()/env_remove()/env_clear(): the LISTEN_PID hook only works while std execs with
    // the process's own environment (HOME for --user is set there too, in `become_user`).
    let activated = socket_activation_names_us();
    if activated {
        sys::set_listen_pid_in_child(&mut cmd);
    }
    match cmd.spawn().and_then(|child| pid_of(&child)) {
        Ok(pid) => {
            if activated {
                log::debug!("socket activation: LISTEN_PID passed on to the child as {pid}");
                // The descriptors are the child's now (grace-init closes its copies): nothing grace-init starts
                // later (the pre-stop command) may take them for its own.
                for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
                    sys::remove_env(var);
                }
            }
            Ok(pid)
        }
        Err(e) => Err(explain(program, &e)),
    }
}

/// Whether LISTEN_PID (systemd's socket activation) names grace-init itself. Naming another pid, it is left
/// alone and passes through as it is.
fn socket_activation_names_us() -> bool {
    std::env::var("LISTEN_PID")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        == Some(std::process::id())
}

/// `--user`: HOME in grace-init's own environment (which the child inherits; grace-init does not use it), and
/// the switch of uid, gid and groups between fork and exec.
fn become_user(cmd: &mut Command, user: Option<&Identity>) {
    if let Some(id) = user {
        sys::set_env("HOME", &id.home);
        // Not root: `--user` passed validation only because it names grace-init's own ids, so there is nothing
        // to switch (and setgroups would be refused).
        if nix::unistd::geteuid().is_root() {
            let groups = id.set_groups.then(|| id.groups.clone());
            sys::switch_user(cmd, id.uid, id.gid, groups);
        }
    }
}

/// The child's pid as kill(2) takes it. Linux pids fit an i32; were one not to, refusing is safer than a
/// placeholder (0 would turn a group kill into a kill of grace-init's own group).
fn pid_of(child: &std::process::Child) -> io::Result<i32> {
    i32::try_from(child.id())
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| io::Error::other(format!("unusable pid {}", child.id())))
}

/// Maps an exec or fork failure to the conventional exit code: 127 not found, 126 not executable,
/// 1 when the system itself refused (no fork, no descriptors).
fn explain(program: &OsString, error: &io::Error) -> SpawnError {
    let shown = program.to_string_lossy();
    let errno = Errno::from_raw(error.raw_os_error().unwrap_or(0));
    let path = Path::new(program);
    let has_slash = shown.contains('/');
    // ENOENT for a file that exists: its #! interpreter or its loader is missing. It was found, so 126.
    let bad_interpreter = errno == Errno::ENOENT && has_slash && path.is_file();
    let code = match errno {
        Errno::ENOENT if !bad_interpreter => NOT_FOUND,
        Errno::ENOENT => NOT_EXECUTABLE,
        Errno::EACCES
        | Errno::ENOEXEC
        | Errno::EISDIR
        | Errno::ETXTBSY
        | Errno::ENOTDIR
        | Errno::ELOOP
        | Errno::ENAMETOOLONG
        | Errno::E2BIG
        | Errno::EPERM => NOT_EXECUTABLE,
        _ => SETUP_FAILED,
    };
    let reason = match errno {
        Errno::ENOENT if !has_slash => "command not found in PATH".to_string(),
        Errno::ENOENT if bad_interpreter => {
            "the file exists, but its interpreter (#! line) or loader was not found".to_string()
        }
        Errno::EACCES if has_slash && path.is_dir() => "is a directory".to_string(),
        Errno::EAGAIN => {
            "cannot fork: process limit reached (resource temporarily unavailable)".to_string()
        }
        Errno::ENOMEM => "cannot fork: out of memory".to_string(),
        Errno::EMFILE | Errno::ENFILE => "too many open files".to_string(),
        Errno::UnknownErrno => error.to_string(),
        e => e.desc().to_lowercase(),
    };
    let message = if code == SETUP_FAILED {
        format!("cannot start '{shown}': {reason}")
    } else {
        format!("cannot run '{shown}': {reason}")
    };
    SpawnError { code, message }
}

/// Starts the pre-stop command line in a process group of its own, in the directory the app was started in
/// (`start_dir`), with stdin on /dev/null and its output on grace-init's stderr. Uses `/bin/sh -c`; in an
/// image without a shell the line is split on white space and executed directly.
pub fn spawn_pre_stop(
    line: &str,
    user: Option<&Identity>,
    start_dir: Option<&Path>,
) -> io::Result<i32> {
    let mut cmd = if Path::new("/bin/sh").exists() {
        let mut sh = Command::new("/bin/sh");
        sh.arg("-c").arg(line);
        sh
    } else {
        let mut words = line.split_whitespace();
        let program = words
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
        let mut direct = Command::new(program);
        direct.args(words);
        direct
    };
    let stderr = io::stderr().as_fd().try_clone_to_owned().map(File::from);
    cmd.stdin(Stdio::null());
    if let Ok(stderr) = stderr {
        cmd.stdout(stderr);
    }
    sys::start_clean(&mut cmd, false);
    if let Some(dir) = start_dir {
        cmd.current_dir(dir);
    }
    become_user(&mut cmd, user);
    let spawned = cmd.spawn();
    if let (Err(e), Some(dir)) = (&spawned, start_dir) {
        // The app's directory was removed (or unmounted) since: say which, besides the bare "not found".
        if e.kind() == io::ErrorKind::NotFound && !dir.is_dir() {
            log::warn!(
                "the directory the app was started in, {}, is gone: the pre-stop command cannot run there",
                dir.display()
            );
        }
    }
    spawned.and_then(|child| pid_of(&child))
}
