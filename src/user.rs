//! `--user USER[:GROUP]`: resolves names and numbers to the uid, gid, supplementary groups and HOME the child
//! runs with, from the image's /etc/passwd and /etc/group (a static binary has no NSS). Pure parsers; the only
//! I/O is reading those two files, before anything is started.

use std::fmt;

/// The highest id accepted: `(uid_t)-1` means "unchanged" to setresuid, so it is never a user.
const MAX_ID: u32 = u32::MAX - 1;

/// What was asked for, as written: `USER` or `USER:GROUP`, each a name or a number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSpec {
    pub user: String,
    pub group: Option<String>,
}

impl fmt::Display for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.group {
            Some(group) => write!(f, "{}:{group}", self.user),
            None => f.write_str(&self.user),
        }
    }
}

/// Who the child runs as, resolved before anything is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Passed to setgroups: the primary group first, then (without an explicit group) every group of
    /// /etc/group that lists the user's name.
    pub groups: Vec<u32>,
    /// HOME for the child: the passwd entry's directory, or `/` when there is no entry (as gosu does).
    pub home: String,
    /// Whether setgroups must be called: the groups grace-init holds are not already those the child needs
    /// (a user namespace may deny setgroups even when nothing would change).
    pub set_groups: bool,
}

/// clap value parser for `--user`: checks the shape only (names are looked up once every option is read).
pub fn parse_spec(text: &str) -> Result<UserSpec, String> {
    let (user, group) = match text.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (text, None),
    };
    if user.is_empty() {
        return Err(format!("invalid user '{text}': the user name is empty"));
    }
    if group.is_some_and(str::is_empty) {
        return Err(format!(
            "invalid user '{text}': the group after ':' is empty"
        ));
    }
    for part in std::iter::once(user).chain(group) {
        if part.contains(':') || part.chars().any(char::is_whitespace) {
            return Err(format!(
                "invalid user '{text}': expected USER or USER:GROUP"
            ));
        }
        if looks_numeric(part) && id_of(part).is_none() {
            return Err(format!(
                "invalid user '{text}': id {part} is out of range (0..={MAX_ID})"
            ));
        }
    }
    Ok(UserSpec {
        user: user.to_string(),
        group: group.map(str::to_string),
    })
}

fn looks_numeric(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn id_of(text: &str) -> Option<u32> {
    if !looks_numeric(text) {
        return None;
    }
    text.parse::<u32>().ok().filter(|id| *id <= MAX_ID)
}

/// One line of /etc/passwd: `name:password:uid:gid:gecos:home:shell`.
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

/// One line of /etc/group: `name:password:gid:member,member`.
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

/// The well-formed entries of a passwd file; comments, blank and malformed lines are skipped, as the C
/// library does.
fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let uid = id_of(fields.next()?)?;
        let gid = id_of(fields.next()?)?;
        let _gecos = fields.next()?;
        let home = fields.next()?;
        (!name.is_empty() && !name.starts_with('#')).then_some(PasswdEntry {
            name,
            uid,
            gid,
            home,
        })
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let gid = id_of(fields.next()?)?;
        let members = fields.next().unwrap_or("");
        (!name.is_empty() && !name.starts_with('#')).then_some(GroupEntry { name, gid, members })
    })
}

/// Resolves `spec` against the text of /etc/passwd and /etc/group (either may be empty: a missing file).
/// `current_gid` is the primary group of a numeric user without a passwd entry (as with docker's `--user`).
pub fn resolve(
    spec: &UserSpec,
    passwd: &str,
    group: &str,
    current_gid: u32,
) -> Result<Identity, String> {
    let by_name = passwd_entries(passwd).find(|e| e.name == spec.user);
    let entry = by_name.or_else(|| {
        let uid = id_of(&spec.user)?;
        passwd_entries(passwd).find(|e| e.uid == uid)
    });
    let (uid, mut gid, home, name) = match (&entry, id_of(&spec.user)) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name)),
        (None, Some(uid)) => (uid, current_gid, "/".to_string(), None),
        (None, None) => {
            return Err(format!(
                "unknown user '{}': no such name in /etc/passwd",
                spec.user
            ));
        }
    };
    let home = if home.is_empty() {
        "/".to_string()
    } else {
        home
    };
    // HOME goes into the environment, which cannot hold a NUL: refused here, as a usage error, rather than
    // aborting grace-init when it sets the variable.
    if home.contains('\0') {
        return Err(format!(
            "user '{}': its home directory in /etc/passwd contains a NUL byte",
            spec.user
        ));
    }
    let mut groups = vec![];
    match &spec.group {
        // An explicit group is the primary group and the only one (as gosu and su-exec do).
        Some(wanted) => {
            let found = group_entries(group).find(|g| g.name == wanted.as_str());
            gid = match (found, id_of(wanted)) {
                (Some(g), _) => g.gid,
                (None, Some(id)) => id,
                (None, None) => {
                    return Err(format!(
                        "unknown group '{wanted}': no such name in /etc/group"
                    ));
                }
            };
            groups.push(gid);
        }
        None => {
            groups.push(gid);
            if let Some(name) = name {
                for g in group_entries(group) {
                    let member = g.members.split(',').any(|m| m.trim() == name);
                    if member && !groups.contains(&g.gid) {
                        groups.push(g.gid);
                    }
                }
            }
        }
    }
    Ok(Identity {
        uid,
        gid,
        groups,
        home,
        set_groups: true,
    })
}

/// Resolves `spec` from this system's /etc/passwd and /etc/group, and refuses a switch grace-init cannot make
/// or could not stand behind: only root may become another user, and only with CAP_SETUID and CAP_SETGID; the
/// ids must exist in grace-init's user namespace, and setgroups must be allowed there when the groups change;
/// and an app run as another user can be stopped only with CAP_KILL.
pub fn resolve_here(spec: &UserSpec) -> Result<Identity, String> {
    let passwd = read_text("/etc/passwd");
    let group = read_text("/etc/group");
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let mut identity = resolve(spec, &passwd, &group, egid)?;
    let refuse = |why: String| Err(format!("cannot run the command as user '{spec}': {why}"));
    if euid != 0 {
        if identity.uid != euid || identity.gid != egid {
            return refuse(format!(
                "grace-init is not root (uid {euid}), and only root can switch users"
            ));
        }
        return Ok(identity);
    }
    let caps = effective_caps();
    if !caps.is_none_or(has_setid_caps) {
        return refuse(
            "grace-init lacks CAP_SETUID or CAP_SETGID (grant them to the container)".to_string(),
        );
    }
    if identity.uid != euid && !caps.is_none_or(has_kill_cap) {
        return refuse(
            "grace-init lacks CAP_KILL, so it could not signal the command once it runs as another user \
             (grant CAP_KILL to the container)"
                .to_string(),
        );
    }
    for (kind, id, map) in [
        ("uid", identity.uid, "/proc/self/uid_map"),
        ("gid", identity.gid, "/proc/self/gid_map"),
    ] {
        if std::fs::read_to_string(map).is_ok_and(|text| !id_mapped(&text, id)) {
            return refuse(format!(
                "{kind} {id} is not mapped in this user namespace ({map})"
            ));
        }
    }
    let held: Option<Vec<u32>> = nix::unistd::getgroups()
        .ok()
        .map(|gids| gids.iter().map(|g| g.as_raw()).collect());
    let denied = std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|t| t.trim() == "deny");
    // Where setgroups is allowed the list is set whenever it differs, so the child's list is the user's as
    // written; where it is denied, it is enough that the groups held give the same rights.
    identity.set_groups = !held.is_some_and(|held| {
        let mut held = held;
        held.sort_unstable();
        held.dedup();
        let mut wanted = identity.groups.clone();
        wanted.sort_unstable();
        wanted.dedup();
        held == wanted || (denied && same_groups(&identity, &held))
    });
    if identity.set_groups && denied {
        return refuse(
            "this user namespace denies setgroups (/proc/self/setgroups), and the supplementary groups \
             grace-init holds are not the user's"
                .to_string(),
        );
    }
    Ok(identity)
}

/// Whether the groups `held` now, once the primary group is switched, give the rights of the groups `identity`
/// asks for (the primary group counts whether or not it is also listed as supplementary).
fn same_groups(identity: &Identity, held: &[u32]) -> bool {
    let with_primary = |groups: &[u32]| {
        let mut all: Vec<u32> = groups.iter().copied().chain([identity.gid]).collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    with_primary(&identity.groups) == with_primary(held)
}

/// Whether `id` lies in one of the ranges of a /proc/self/uid_map or gid_map (`inside outside count` lines).
fn id_mapped(map: &str, id: u32) -> bool {
    map.lines().any(|line| {
        let mut fields = line.split_whitespace().map(|f| f.parse::<u64>().ok());
        match (fields.next().flatten(), fields.nth(1).flatten()) {
            (Some(first), Some(count)) => {
                (first..first.saturating_add(count)).contains(&u64::from(id))
            }
            _ => false,
        }
    })
}

/// A file's text, with any byte that is not UTF-8 (a Latin-1 full name in another user's entry) replaced, so
/// one such line does not hide every user; empty when the file cannot be read (a scratch image has none).
fn read_text(path: &str) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// grace-init's effective capabilities (`CapEff`). Root in a container may lack some: runc's default spec
/// grants no CAP_SETUID or CAP_SETGID, a Kubernetes `drop: [ALL]` no CAP_KILL. `None` without /proc: then the
/// switch is attempted and fails, if it does, when the command starts.
fn effective_caps() -> Option<u64> {
    // Read as bytes: the `Name:` line holds grace-init's own name, which need not be UTF-8 (a binary renamed).
    let status = std::fs::read("/proc/self/status").ok()?;
    String::from_utf8_lossy(&status)
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// Whether a capability mask holds both CAP_SETGID (bit 6) and CAP_SETUID (bit 7).
fn has_setid_caps(mask: u64) -> bool {
    const SETID: u64 = (1 << 6) | (1 << 7);
    mask & SETID == SETID
}

/// Whether a capability mask holds CAP_KILL (bit 5): the right to signal another user's processes.
fn has_kill_cap(mask: u64) -> bool {
    mask & (1 << 5) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:The App,,,:/home/app:/bin/sh
broken line
nohome:x:1001:1001:::/bin/sh
";
    const GROUP: &str = "\
root:x:0:
daemon:x:1:
app:x:1000:
audio:x:29:pulse,app
video:x:44:app
staff:x:50:someone
";

    fn spec(text: &str) -> UserSpec {
        parse_spec(text).unwrap()
    }

    fn resolved(text: &str) -> Result<Identity, String> {
        resolve(&spec(text), PASSWD, GROUP, 0)
    }

    #[test]
    fn a_name_gets_its_entry_its_groups_and_its_home() {
        let id = resolved("app").unwrap();
        assert_eq!((id.uid, id.gid), (1000, 1000));
        assert_eq!(id.groups, vec![1000, 29, 44]);
        assert_eq!(id.home, "/home/app");
        // The uid of an entry finds the same entry.
        assert_eq!(resolved("1000").unwrap(), id);
    }

    #[test]
    fn an_explicit_group_is_the_primary_and_only_group() {
        let id = resolved("app:staff").unwrap();
        assert_eq!((id.uid, id.gid, id.groups.clone()), (1000, 50, vec![50]));
        let id = resolved("app:4242").unwrap();
        assert_eq!((id.gid, id.groups), (4242, vec![4242]));
        assert_eq!(resolved("0:daemon").unwrap().gid, 1);
    }

    #[test]
    fn numbers_without_an_entry_work_and_home_is_root() {
        let id = resolved("4242").unwrap();
        assert_eq!((id.uid, id.gid, id.groups.clone()), (4242, 0, vec![0]));
        assert_eq!(id.home, "/");
        let id = resolved("4242:4243").unwrap();
        assert_eq!((id.uid, id.gid), (4242, 4243));
        assert_eq!(resolved("nohome").unwrap().home, "/");
        // No files at all (a scratch image): numbers still work, names do not.
        assert_eq!(resolve(&spec("7:8"), "", "", 0).unwrap().gid, 8);
        assert!(resolve(&spec("app"), "", "", 0).is_err());
    }

    #[test]
    fn a_home_with_a_nul_byte_is_refused_with_the_users_name() {
        let passwd = "app:x:1000:1000::/home/app\0x:/bin/sh\n";
        let err = resolve(&spec("app"), passwd, GROUP, 0).unwrap_err();
        assert!(err.contains("'app'") && err.contains("NUL"), "{err}");
    }

    #[test]
    fn a_line_that_is_not_utf8_hides_no_other_user() {
        let path = std::env::temp_dir().join(format!("grace-init-passwd.{}", std::process::id()));
        let mut bytes = b"old:x:900:900:Jos\xe9 Old:/home/old:/bin/sh\n".to_vec();
        bytes.extend_from_slice(PASSWD.as_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let text = read_text(path.to_str().unwrap());
        let _ = std::fs::remove_file(&path);
        assert_eq!(resolve(&spec("app"), &text, GROUP, 0).unwrap().uid, 1000);
        assert_eq!(
            resolve(&spec("old"), &text, GROUP, 0).unwrap().home,
            "/home/old"
        );
        assert_eq!(read_text("/nonexistent/passwd"), "");
    }

    #[test]
    fn unknown_names_are_named() {
        assert!(
            resolved("nobody-here")
                .unwrap_err()
                .contains("'nobody-here'")
        );
        assert!(resolved("app:nogroup").unwrap_err().contains("'nogroup'"));
        // A comment is not an entry.
        assert!(resolved("#").is_err());
    }

    #[test]
    fn switching_needs_both_setid_capabilities() {
        assert!(has_setid_caps(0x1ff));
        assert!(has_setid_caps(0xc0));
        assert!(!has_setid_caps(0x40));
        assert!(!has_setid_caps(0x80));
        assert!(!has_setid_caps(0x20));
    }

    #[test]
    fn signalling_another_user_needs_cap_kill() {
        assert!(has_kill_cap(0x20));
        assert!(has_kill_cap(0x1ff));
        assert!(!has_kill_cap(0xc0));
    }

    #[test]
    fn ids_are_mapped_when_a_range_holds_them() {
        let host = "         0          0 4294967295\n";
        assert!(id_mapped(host, 0) && id_mapped(host, 4_294_967_294));
        // unshare --map-root-user: only 0, as the caller's id outside.
        let root_only = "         0       1000          1\n";
        assert!(id_mapped(root_only, 0));
        assert!(!id_mapped(root_only, 1) && !id_mapped(root_only, 1000));
        let two = "0 100000 10\n1000 1000 1\n";
        assert!(id_mapped(two, 9) && id_mapped(two, 1000));
        assert!(!id_mapped(two, 10) && !id_mapped(two, 999));
        assert!(!id_mapped("", 0) && !id_mapped("garbage\n", 0));
    }

    #[test]
    fn groups_that_would_not_change_need_no_setgroups() {
        let id = resolved("0:0").unwrap();
        // The primary group counts whether or not it is also listed as supplementary.
        assert!(same_groups(&id, &[]));
        assert!(same_groups(&id, &[0]));
        assert!(!same_groups(&id, &[0, 5]));
        let app = resolved("app").unwrap();
        assert!(same_groups(&app, &[44, 29]));
        assert!(same_groups(&app, &[1000, 44, 29]));
        assert!(!same_groups(&app, &[29]));
        assert!(!same_groups(&app, &[0]));
    }

    #[test]
    fn bad_shapes_are_refused() {
        for bad in [
            "",
            ":",
            ":app",
            "app:",
            "a:b:c",
            "4294967295",
            "4294967296",
            "app:99999999999",
            "a b",
        ] {
            let message = parse_spec(bad).unwrap_err();
            assert!(message.contains(&format!("'{bad}'")), "{bad}: {message}");
        }
        assert_eq!(spec("4294967294").user, "4294967294");
    }
}
