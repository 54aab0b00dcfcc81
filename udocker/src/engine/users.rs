//! Users inside the container (`spec/udocker.md` §6): `--user=name|uid|uid:gid` is looked up in
//! the container's (or, with `--hostauth`, the host's) password database, and `/etc/passwd` and
//! `/etc/group` are synthesized from those files plus an entry for the user when it has none.
//! Differences from upstream, on purpose: a found user keeps its own uid/gid (the P engines fake
//! them), an unknown name is an error (as docker), and `--user=1000:1001` without an entry gets
//! the name `user1000` (upstream writes a passwd line whose *name* is `1000:1001`).
//! Pure functions over file contents; reading and writing files is the caller's job.

use super::EngineError;

/// One line of passwd(5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

impl PasswdEntry {
    pub fn line(&self) -> String {
        format!(
            "{}:x:{}:{}:{}:{}:{}",
            self.name, self.uid, self.gid, self.gecos, self.home, self.shell
        )
    }
}

/// The valid entries of a passwd(5) file; malformed lines are skipped (the file comes from an
/// image and is not trusted).
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() != 7 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                gecos: f[4].to_string(),
                home: f[5].to_string(),
                shell: f[6].to_string(),
            })
        })
        .collect()
}

/// `(name, gid)` of each valid line of a group(5) file.
pub fn parse_group(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() != 4 || f[0].is_empty() {
                return None;
            }
            Some((f[0].to_string(), f[2].parse().ok()?))
        })
        .collect()
}

/// What `--user` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSpec {
    Name(String),
    Uid(u32),
    UidGid(u32, u32),
}

/// Parse `--user`: `name` (`^[a-zA-Z_][a-zA-Z0-9_.-]*$`), `uid` or `uid:gid` (upstream's two
/// regular expressions, plus `.` which Debian's adduser allows in names).
pub fn parse_user_spec(s: &str) -> Result<UserSpec, EngineError> {
    let bad = || EngineError::InvalidUser(s.to_string());
    let num = |t: &str| -> Option<u32> {
        (!t.is_empty() && t.len() <= 10 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    if let Some((u, g)) = s.split_once(':') {
        return Ok(UserSpec::UidGid(
            num(u).ok_or_else(bad)?,
            num(g).ok_or_else(bad)?,
        ));
    }
    if let Some(u) = num(s) {
        return Ok(UserSpec::Uid(u));
    }
    let mut b = s.bytes();
    let first_ok = b
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_');
    if first_ok
        && s.len() <= 256
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
    {
        return Ok(UserSpec::Name(s.to_string()));
    }
    Err(bad())
}

/// The user a container runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunUser {
    pub entry: PasswdEntry,
    /// No entry in the password database: one is added to the synthesized file.
    pub synthesized: bool,
}

impl RunUser {
    pub fn is_root(&self) -> bool {
        self.entry.uid == 0
    }
}

/// Find the user `spec` names in `passwd`. `None` means root. Names must exist (docker's rule);
/// numeric ids need not: they get an entry named `user<uid>` with home `/` (a numeric uid alone
/// gets gid 0, as in docker).
pub fn resolve_user(
    spec: Option<&UserSpec>,
    passwd: &[PasswdEntry],
) -> Result<RunUser, EngineError> {
    let found = |e: &PasswdEntry| RunUser {
        entry: e.clone(),
        synthesized: false,
    };
    let synth = |uid: u32, gid: u32| RunUser {
        entry: PasswdEntry {
            name: if uid == 0 {
                "root".into()
            } else {
                format!("user{uid}")
            },
            uid,
            gid,
            gecos: "udocker".into(),
            home: if uid == 0 { "/root".into() } else { "/".into() },
            shell: "/bin/sh".into(),
        },
        synthesized: true,
    };
    match spec {
        None => Ok(passwd
            .iter()
            .find(|e| e.uid == 0 && e.name == "root")
            .or_else(|| passwd.iter().find(|e| e.uid == 0))
            .map(found)
            .unwrap_or_else(|| synth(0, 0))),
        Some(UserSpec::Name(n)) => passwd
            .iter()
            .find(|e| e.name == *n)
            .map(found)
            .ok_or_else(|| EngineError::UserNotFound(n.clone())),
        Some(UserSpec::Uid(u)) => Ok(passwd
            .iter()
            .find(|e| e.uid == *u)
            .map(found)
            .unwrap_or_else(|| synth(*u, 0))),
        Some(UserSpec::UidGid(u, g)) => Ok(match passwd.iter().find(|e| e.uid == *u) {
            Some(e) => {
                let mut r = found(e);
                r.entry.gid = *g;
                r
            }
            None => synth(*u, *g),
        }),
    }
}

fn ensure_newline(s: &mut String) {
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
}

/// `base` (a passwd file) plus the user's line when no entry has its name and uid.
pub fn synth_passwd(base: &str, user: &RunUser) -> String {
    let mut out = base.to_string();
    let present = parse_passwd(base)
        .iter()
        .any(|e| e.name == user.entry.name && e.uid == user.entry.uid);
    if !present {
        ensure_newline(&mut out);
        out.push_str(&user.entry.line());
        out.push('\n');
    }
    out
}

/// `base` (a group file) plus a group for the user's gid when none has it: named after the user
/// when that name is free, else `group<gid>`.
pub fn synth_group(base: &str, user: &RunUser) -> String {
    let groups = parse_group(base);
    let mut out = base.to_string();
    if !groups.iter().any(|(_, g)| *g == user.entry.gid) {
        let name = if groups.iter().any(|(n, _)| *n == user.entry.name) {
            format!("group{}", user.entry.gid)
        } else {
            user.entry.name.clone()
        };
        ensure_newline(&mut out);
        out.push_str(&format!("{name}:x:{}:\n", user.entry.gid));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
broken line\n\
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash";
    const GROUP: &str = "root:x:0:\nalice:x:1000:\nusers:x:100:alice\n";

    #[test]
    fn user_specs() {
        assert_eq!(
            parse_user_spec("alice").unwrap(),
            UserSpec::Name("alice".into())
        );
        assert_eq!(
            parse_user_spec("_a.b-c").unwrap(),
            UserSpec::Name("_a.b-c".into())
        );
        assert_eq!(parse_user_spec("1000").unwrap(), UserSpec::Uid(1000));
        assert_eq!(
            parse_user_spec("1000:1001").unwrap(),
            UserSpec::UidGid(1000, 1001)
        );
        for bad in [
            "",
            "-x",
            "1a",
            "a:b",
            "1:",
            ":1",
            "1:2:3",
            "a b",
            "99999999999",
            "ü",
        ] {
            assert!(parse_user_spec(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn resolution() {
        let pw = parse_passwd(PASSWD);
        assert_eq!(pw.len(), 3);
        let root = resolve_user(None, &pw).unwrap();
        assert!(root.is_root() && !root.synthesized && root.entry.home == "/root");
        let a = resolve_user(Some(&UserSpec::Name("alice".into())), &pw).unwrap();
        assert_eq!(
            (a.entry.uid, a.entry.gid, a.synthesized),
            (1000, 1000, false)
        );
        assert!(matches!(
            resolve_user(Some(&UserSpec::Name("bob".into())), &pw),
            Err(EngineError::UserNotFound(_))
        ));
        let u = resolve_user(Some(&UserSpec::Uid(1000)), &pw).unwrap();
        assert_eq!(u.entry.name, "alice");
        let u = resolve_user(Some(&UserSpec::UidGid(1000, 100)), &pw).unwrap();
        assert_eq!((u.entry.name.as_str(), u.entry.gid), ("alice", 100));
        let s = resolve_user(Some(&UserSpec::UidGid(4242, 4343)), &pw).unwrap();
        assert!(s.synthesized);
        assert_eq!(s.entry.line(), "user4242:x:4242:4343:udocker:/:/bin/sh");
        let s = resolve_user(Some(&UserSpec::Uid(4242)), &pw).unwrap();
        assert_eq!(s.entry.gid, 0);
        // An image without /etc/passwd still runs as root.
        let r = resolve_user(None, &[]).unwrap();
        assert!(r.is_root() && r.synthesized);
    }

    #[test]
    fn synthesized_files() {
        let pw = parse_passwd(PASSWD);
        let a = resolve_user(Some(&UserSpec::Name("alice".into())), &pw).unwrap();
        assert_eq!(
            synth_passwd(PASSWD, &a),
            PASSWD,
            "present users are not added"
        );
        assert_eq!(synth_group(GROUP, &a), GROUP);
        let s = resolve_user(Some(&UserSpec::UidGid(4242, 4343)), &pw).unwrap();
        let p = synth_passwd(PASSWD, &s);
        assert!(p.starts_with(PASSWD) && p.ends_with("\nuser4242:x:4242:4343:udocker:/:/bin/sh\n"));
        assert_eq!(parse_passwd(&p).len(), 4);
        let g = synth_group(GROUP, &s);
        assert!(g.ends_with("users:x:100:alice\nuser4242:x:4343:\n"));
        // The user's name is taken by another group: group<gid>.
        let s2 = RunUser {
            entry: PasswdEntry {
                name: "alice".into(),
                gid: 77,
                ..s.entry.clone()
            },
            synthesized: true,
        };
        assert!(synth_group(GROUP, &s2).ends_with("group77:x:77:\n"));
        assert_eq!(
            synth_passwd("", &s),
            "user4242:x:4242:4343:udocker:/:/bin/sh\n"
        );
    }
}
