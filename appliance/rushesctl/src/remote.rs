//! rushesctl from another machine (`--host BOX --token T`): boxes' certificates pinned
//! by fingerprint on first use, as SSH pins host keys; and the admin plane's own
//! commands (`token`, `web`).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Subcommand;
use rushes_api as api;
use rushes_api::{Client, ClientError};

use crate::output::{json, now_secs, out, table, Res};

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Every API token: name, role, expiry, last use (never the token itself).
    List,
    /// Make a token for a script or another machine; it is printed this once.
    #[command(
        after_help = "Example:\n  rushesctl token create grading-suite --role operator --expires 30d\n  rushesctl --host nas.example:443 --token rushes_… jobs"
    )]
    Create {
        name: String,
        /// viewer (looks), operator (runs jobs, recalls, copies), admin (everything).
        #[arg(long)]
        role: api::Role,
        /// How long it lasts: 12h, 30d, 1y [default: 90d].
        #[arg(long)]
        expires: Option<String>,
    },
    /// Revoke a token: requests with it are refused from now on.
    Revoke { name: String },
}

#[derive(Subcommand)]
pub enum WebCmd {
    /// Where HTTPS listens and the certificate's fingerprint (compare it with what a
    /// browser or `rushesctl --host` shows on first use).
    Show,
    /// Install the facility's own certificate (chain, leaf first) and its private key,
    /// as PEM files. A certificate that fails the checks is refused; the old one stays.
    Certificate {
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
}

/// `HOST` or `HOST:PORT` (443 unless given).
pub fn address(host: &str) -> String {
    let has_port = match host.rsplit_once(':') {
        Some((h, p)) => {
            p.chars().all(|c| c.is_ascii_digit()) && (!h.contains(':') || h.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        host.to_string()
    } else if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:443")
    } else {
        format!("{host}:443")
    }
}

/// The file of pinned boxes: `RUSHES_KNOWN_BOXES`, else ~/.config/rushes/known-boxes.
fn known_boxes() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RUSHES_KNOWN_BOXES") {
        return Some(PathBuf::from(p));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("rushes").join("known-boxes"))
}

/// The fingerprint pinned for `address`, if any.
fn pinned(address: &str) -> Option<String> {
    let text = std::fs::read_to_string(known_boxes()?).ok()?;
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(a, _)| *a == address)
        .map(|(_, fp)| fp.trim().to_string())
}

/// Pin `fingerprint` for `address`, replacing what was pinned.
fn remember(address: &str, fingerprint: &str) -> std::io::Result<()> {
    let path = known_boxes()
        .ok_or_else(|| std::io::Error::other("no home folder to keep pinned boxes in"))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut text: String = old
        .lines()
        .filter(|l| l.split_once(' ').is_none_or(|(a, _)| a != address))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!("{address} {fingerprint}\n"));
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)
}

/// The client `--host` asks for: `--fingerprint` pins (and is remembered), else what was
/// pinned before.
pub fn client(host: &str, token: Option<String>, fingerprint: Option<&str>) -> Client {
    let address = address(host);
    let pin = match fingerprint {
        Some(fp) => {
            if let Err(e) = remember(&address, fp) {
                eprintln!("rushesctl: cannot remember the fingerprint: {e}");
            }
            Some(fp.to_string())
        }
        None => pinned(&address),
    };
    Client::https(address, token, pin)
}

/// On first contact with a box, show what it presents and ask whether to trust it
/// (at a terminal); the client to retry with, when the answer is yes.
pub fn first_use(error: &ClientError, token: Option<String>) -> Option<Client> {
    let ClientError::Fingerprint {
        address,
        seen,
        pinned: None,
    } = error
    else {
        return None;
    };
    if !std::io::stdin().is_terminal() {
        eprintln!(
            "rushesctl: check the fingerprint on the box's console (or `rushesctl web` there), then run again with --fingerprint {seen}"
        );
        return None;
    }
    eprint!("The box at {address} shows a certificate with SHA-256 fingerprint\n  {seen}\nIs that the fingerprint on the box's console? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).ok()?;
    if !answer.trim().eq_ignore_ascii_case("y") {
        return None;
    }
    if let Err(e) = remember(address, seen) {
        eprintln!("rushesctl: cannot remember the fingerprint: {e}");
    }
    Some(Client::https(address.clone(), token, Some(seen.clone())))
}

pub fn token(as_json: bool, c: &Client, cmd: &TokenCmd) -> Res {
    match cmd {
        TokenCmd::List => {
            let tokens: Vec<api::Token> = c.get("/v1/tokens")?;
            if as_json {
                json(&tokens);
            } else if tokens.is_empty() {
                out("no API tokens: rushesctl token create NAME --role ROLE\n");
            } else {
                let now = now_secs();
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.role.to_string(),
                            if t.expires <= now {
                                "expired".into()
                            } else {
                                format!("in {}", api::units::show_span(t.expires - now))
                            },
                            t.last_used.map_or("never".into(), |u| {
                                format!("{} ago", api::units::show_span(now.saturating_sub(u)))
                            }),
                            t.made_by.clone(),
                        ]
                    })
                    .collect();
                out(&table(
                    &["TOKEN", "ROLE", "EXPIRES", "LAST USED", "MADE BY"],
                    &rows,
                ));
            }
        }
        TokenCmd::Create {
            name,
            role,
            expires,
        } => {
            let made: api::CreatedToken = c.post(
                "/v1/tokens",
                &api::NewToken {
                    name: name.clone(),
                    role: *role,
                    expires: expires.clone(),
                },
            )?;
            if as_json {
                json(&made);
            } else {
                out(&format!(
                    "token {} ({}), shown this once:\n{}\n",
                    made.token.name, made.token.role, made.secret
                ));
            }
        }
        TokenCmd::Revoke { name } => {
            c.send::<()>("DELETE", &format!("/v1/tokens/{name}"), None)?;
            out(&format!("token {name} revoked\n"));
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn show_certificate(cert: &api::CertificateInfo) -> String {
    format!(
        "fingerprint  {}\nsubject      {}\nissuer       {}{}\n",
        cert.fingerprint,
        cert.subject,
        cert.issuer,
        if cert.self_signed {
            " (made by the box)"
        } else {
            ""
        }
    )
}

pub fn web(as_json: bool, c: &Client, cmd: &WebCmd) -> Res {
    match cmd {
        WebCmd::Show => {
            let w: api::WebInfo = c.get("/v1/web")?;
            if as_json {
                json(&w);
            } else {
                out(&format!(
                    "HTTPS        {}\n",
                    w.listen.as_deref().unwrap_or("not served")
                ));
                if let Some(cert) = &w.certificate {
                    out(&show_certificate(cert));
                }
            }
        }
        WebCmd::Certificate { cert, key } => {
            let read = |p: &PathBuf| {
                std::fs::read_to_string(p).map_err(|e| {
                    ClientError::Io(std::io::Error::new(
                        e.kind(),
                        format!("cannot read {}: {e}", p.display()),
                    ))
                })
            };
            let installed: api::CertificateInfo = c.put(
                "/v1/web/certificate",
                &api::InstallCertificate {
                    certificate_pem: read(cert)?,
                    key_pem: read(key)?,
                },
            )?;
            if as_json {
                json(&installed);
            } else {
                out("certificate installed; remote rushesctl must pin the new fingerprint (--fingerprint)\n");
                out(&show_certificate(&installed));
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_gets_port_443_unless_it_has_one() {
        assert_eq!(address("nas"), "nas:443");
        assert_eq!(address("nas:8443"), "nas:8443");
        assert_eq!(address("10.0.0.5"), "10.0.0.5:443");
        assert_eq!(address("[::1]:8443"), "[::1]:8443");
        assert_eq!(address("::1"), "[::1]:443");
    }
}
