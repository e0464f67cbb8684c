//! The lines Samba sends rushesd's system log socket, read as text: the syslog frame,
//! full_audit's `CLIENT|USER|SHARE|PID|OP|RESULT|ARGS` records, smbd's failed logins
//! and the headers Samba puts before its messages. Only std here, so the fuzzer (`appliance/rushesd/fuzz`) builds this very file.

use std::net::IpAddr;

/// One parsed full_audit line.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditLine {
    pub client: IpAddr,
    pub user: String,
    pub share: String,
    /// The smbd process serving this client.
    pub pid: Option<u32>,
    pub op: &'static str,
    pub ok: bool,
    pub reason: Option<String>,
    /// Absolute paths as Samba logged them.
    pub path: Option<String>,
    pub to: Option<String>,
}

/// One syslog message: `<PRI>Mmm dd hh:mm:ss TAG[PID]: TEXT`.
#[derive(Debug, PartialEq)]
pub struct SyslogLine<'a> {
    pub tag: &'a str,
    pub pid: Option<u32>,
    pub text: &'a str,
}

pub fn split_syslog(datagram: &str) -> Option<SyslogLine<'_>> {
    let rest = datagram.strip_prefix('<')?;
    let rest = &rest[rest.find('>')? + 1..];
    // The timestamp is 15 characters and a space.
    let rest = rest.get(16..).unwrap_or(rest);
    let colon = rest.find(": ")?;
    let (tag, pid) = match rest[..colon].split_once('[') {
        Some((tag, pid)) => (tag, pid.trim_end_matches(']').parse().ok()),
        None => (&rest[..colon], None),
    };
    Some(SyslogLine {
        tag,
        pid,
        text: rest[colon + 2..].trim_end_matches(['\n', '\0']),
    })
}

/// Parse `CLIENT|USER|SHARE|PID|OP|RESULT|ARGS…`. Paths are absolute, so a `|` inside
/// one is told apart from a separator by the `/` that follows a separator.
pub fn parse_audit(text: &str) -> Option<AuditLine> {
    let mut f = text.splitn(7, '|');
    let client: IpAddr = f.next()?.trim().parse().ok()?;
    let user = f.next()?.to_string();
    let share = f.next()?.to_string();
    let pid = f.next()?.parse().ok();
    let vfs_op = f.next()?;
    let result = f.next()?;
    let args = f.next().unwrap_or("");
    let (ok, reason) = match result {
        "ok" => (true, None),
        r => (
            false,
            Some(
                r.trim_start_matches("fail")
                    .trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .to_string(),
            ),
        ),
    };
    let absolute = |s: &str| s.starts_with('/').then(|| s.to_string());
    let (op, path, to) = match vfs_op {
        "connect" => ("CONNECT", None, None),
        "disconnect" => ("DISCONNECT", None, None),
        "create_file" => {
            // ACCESS_MASK|file or dir|DISPOSITION|PATH
            let mut a = args.splitn(4, '|');
            let _mask = a.next();
            let kind = a.next().unwrap_or("");
            let disposition = a.next().unwrap_or("");
            let path = a.next().and_then(absolute);
            let op = match (kind, disposition) {
                ("dir", "create") => "MKDIR",
                ("dir", _) => "OPENDIR",
                (_, "open") => "OPEN",
                _ => "CREATE",
            };
            (op, path, None)
        }
        "renameat" => match args.find("|/") {
            Some(i) => ("RENAME", absolute(&args[..i]), absolute(&args[i + 1..])),
            None => ("RENAME", absolute(args), None),
        },
        "unlinkat" => ("DELETE", absolute(args), None),
        "mkdirat" => ("MKDIR", absolute(args), None),
        "pread" | "pread_recv" => ("READ", absolute(args), None),
        "pwrite" | "pwrite_recv" => ("WRITE", absolute(args), None),
        _ => return None,
    };
    Some(AuditLine {
        client: client.to_canonical(),
        user,
        share,
        pid,
        op,
        ok,
        reason,
        path,
        to,
    })
}

/// A login smbd refused (its auth_audit line).
#[derive(Debug, PartialEq)]
pub struct FailedLogin<'a> {
    pub client: IpAddr,
    pub user: &'a str,
    pub status: &'a str,
}

/// The text between `after` and the next `]` in `text`.
fn bracketed<'a>(text: &'a str, after: &str) -> Option<&'a str> {
    let start = text.find(after)? + after.len();
    let len = text[start..].find(']')?;
    Some(&text[start..start + len])
}

/// smbd's auth_audit line for a failed login: `Auth: [SMB2,(null)] user
/// [DOMAIN]\[name] at [...] with [NTLMv2] status [NT_STATUS_WRONG_PASSWORD] ... remote
/// host [ipv4:10.0.0.9:51234] ...`. `None` for anything else, successes included.
pub fn parse_failed_login(text: &str) -> Option<FailedLogin<'_>> {
    let text = text.trim_start();
    if !text.starts_with("Auth: [") {
        return None;
    }
    let status = bracketed(text, " status [")?;
    if status == "NT_STATUS_OK" {
        return None;
    }
    let user = bracketed(text, "]\\[").unwrap_or("");
    let remote = bracketed(text, " remote host [")?;
    let address = remote
        .strip_prefix("ipv4:")
        .or_else(|| remote.strip_prefix("ipv6:"))?;
    let (ip, _port) = address.rsplit_once(':')?;
    Some(FailedLogin {
        client: ip.trim_matches(|c| c == '[' || c == ']').parse().ok()?,
        user,
        status,
    })
}

/// The header Samba writes before each message (`[2026/12/05 19:00:57.558002,  0]
/// ../../source3/smbd/server.c:1741(main)`); the message follows in the next datagram.
pub fn is_samba_header(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with("[20") && t.contains("] ") && t.trim_end().ends_with(')')
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const FAILED: &str = "  Auth: [SMB2,(null)] user [WORKGROUP]\\[bob] at [Sat, 05 Dec 2026 19:01:00.540588 UTC] with [NTLMv2] status [NT_STATUS_WRONG_PASSWORD] workstation [VM] remote host [ipv4:10.0.0.9:41988] mapped to [WORKGROUP]\\[bob]. local host [ipv4:10.0.0.2:445] \n";

    #[test]
    fn smbd_failed_logins_are_read_and_successes_and_headers_are_not() {
        assert_eq!(
            parse_failed_login(FAILED),
            Some(FailedLogin {
                client: "10.0.0.9".parse().unwrap(),
                user: "bob",
                status: "NT_STATUS_WRONG_PASSWORD"
            })
        );
        let ok = FAILED.replace("NT_STATUS_WRONG_PASSWORD", "NT_STATUS_OK");
        assert_eq!(parse_failed_login(&ok), None);
        let v6 = FAILED.replace("ipv4:10.0.0.9:41988", "ipv6:fd00::9:41988");
        assert_eq!(
            parse_failed_login(&v6).map(|f| f.client),
            Some("fd00::9".parse().unwrap())
        );
        assert_eq!(
            parse_failed_login("  smbd version 4.17.12-Debian started."),
            None
        );
        assert!(is_samba_header(
            "[2026/12/05 19:01:00.540607,  2] ../../auth/auth_log.c:647(log_authentication_event_human_readable)\n"
        ));
        assert!(!is_samba_header(FAILED));
    }

    #[test]
    fn syslog_datagrams_split_into_tag_and_text() {
        let line = split_syslog(
            "<173>Nov 26 13:31:53 smbd_audit: 127.0.0.1|editor|media|4242|connect|ok|media",
        )
        .unwrap();
        assert_eq!(line.tag, "smbd_audit");
        assert_eq!(line.pid, None);
        assert_eq!(line.text, "127.0.0.1|editor|media|4242|connect|ok|media");
        let line = split_syslog("<30>Nov  6 01:02:03 udhcpc[88]: lease obtained\n").unwrap();
        assert_eq!((line.tag, line.pid), ("udhcpc", Some(88)));
        assert_eq!(line.text, "lease obtained");
    }

    #[test]
    fn audit_lines_become_operations_with_paths_and_results() {
        let l = parse_audit(
            "10.1.2.3|editor|media|4242|create_file|ok|0x12019f|file|overwrite_if|/pools/fast/media/a|b.mov",
        )
        .unwrap();
        assert_eq!((l.op, l.ok, l.pid), ("CREATE", true, Some(4242)));
        assert_eq!(l.path.as_deref(), Some("/pools/fast/media/a|b.mov"));
        let l = parse_audit(
            "10.1.2.3|editor|media|4242|renameat|ok|/pools/fast/media/x|y.mov|/pools/fast/media/z.mov",
        )
        .unwrap();
        assert_eq!(l.op, "RENAME");
        assert_eq!(l.path.as_deref(), Some("/pools/fast/media/x|y.mov"));
        assert_eq!(l.to.as_deref(), Some("/pools/fast/media/z.mov"));
        let l = parse_audit(
            "::ffff:10.1.2.3|intern|media|4242|create_file|fail (Permission denied)|0x100|file|open|/pools/fast/media/a",
        )
        .unwrap();
        assert_eq!(l.client.to_string(), "10.1.2.3");
        assert_eq!((l.op, l.ok), ("OPEN", false));
        assert_eq!(l.reason.as_deref(), Some("Permission denied"));
        assert_eq!(
            parse_audit("10.1.2.3|e|m|4242|create_file|ok|0x1|dir|create|/p/m/new")
                .unwrap()
                .op,
            "MKDIR"
        );
        assert!(parse_audit("garbage").is_none());
        assert!(parse_audit("10.1.2.3|e|m|4242|fsync|ok|/x").is_none());
    }
}
