//! Who a request comes from: web sessions (a cookie, with a CSRF token for changes) and
//! API tokens (a bearer header), each with a role.
//!
//! Sessions live in memory and end after [`IDLE`] without a request (or a restart).
//! Tokens are kept in a JSON file as their blake3 hash: the secret is shown once, when it
//! is made, and cannot be read back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rushes_api::{CreatedToken, Role, SessionInfo, Token};

use crate::limiter::{Limiter, Refusal};

/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// … and after this long in any case.
pub const LONGEST: Duration = Duration::from_secs(12 * 3600);
/// How long a wrong password's answer is held back.
pub const WRONG_PASSWORD_DELAY: Duration = Duration::from_secs(1);
/// Sessions open at once, at most (the oldest idle ones go first).
const MAX_SESSIONS: usize = 1_000;
/// Tokens, at most.
const MAX_TOKENS: usize = 1_000;
/// The cookie's name: `__Host-` makes the browser take it only from this host over
/// HTTPS, with `Path=/` and no `Domain`, so no sibling site can plant one.
pub const COOKIE: &str = "__Host-rushes_session";
/// Password checks (argon2, slow on purpose) running at once, at most.
const CHECKS_AT_ONCE: usize = 4;
/// A token's prefix, so a leaked one is recognisable in logs and by scanners.
const TOKEN_PREFIX: &str = "rushes_";

/// Who is asking, and how they proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `admin`, `token:backup-script` or `root (console)`, as the audit log names it.
    pub user: String,
    pub role: Role,
    pub via: Via,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser's session: changes need its CSRF token.
    Session { id: String, csrf: String },
    /// An API token, by its name.
    Token { name: String },
    /// The Unix socket: root on the box (the console, local rushesctl).
    Socket,
}

impl Principal {
    /// The console and local rushesctl, on the root-only socket.
    pub fn socket() -> Self {
        Self {
            user: "root (console)".into(),
            role: Role::Admin,
            via: Via::Socket,
        }
    }
}

#[derive(Debug)]
struct Session {
    user: String,
    role: Role,
    csrf: String,
    started: Instant,
    last_seen: Instant,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct StoredToken {
    #[serde(flatten)]
    token: Token,
    /// blake3 of the secret, hex.
    hash: String,
}

/// Why a login was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("wrong user name or password")]
    Wrong,
    #[error("a user name is 1 to 64 letters, digits, '-', '_' or '.'")]
    BadName,
    #[error("too many failed logins from this address; try again in {} s", .0.as_secs().max(1))]
    AddressWaits(Duration),
    #[error("too many failed logins for this account; try again in {} s (the console is not locked)", .0.as_secs().max(1))]
    AccountWaits(Duration),
}

impl LoginError {
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LoginError::Wrong | LoginError::BadName => None,
            LoginError::AddressWaits(d) | LoginError::AccountWaits(d) => Some(*d),
        }
    }
}

/// Why a token could not be made, listed or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token's name is 1 to 64 letters, digits, '-', '_' or '.'")]
    BadName,
    #[error("there is a token called {0} already")]
    Exists(String),
    #[error("there is no token called {0}")]
    NoSuch(String),
    #[error("{0}")]
    BadExpiry(String),
    #[error("there are {MAX_TOKENS} tokens already; revoke some first")]
    TooMany,
    #[error("cannot keep the tokens in {path}: {source}")]
    Save {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no randomness for a secret: {0}")]
    Random(String),
}

/// The admin plane's doorkeeper.
#[derive(Debug)]
pub struct Gate {
    sessions: Mutex<HashMap<String, Session>>,
    tokens: Mutex<Vec<StoredToken>>,
    tokens_file: Option<PathBuf>,
    /// Why the tokens file could not be read, when it could not: nothing is saved over it.
    unreadable: Option<String>,
    limiter: Mutex<Limiter>,
    checks: tokio::sync::Semaphore,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_secs() -> u64 {
    crate::since_epoch().as_secs()
}

/// 32 random bytes as hex.
fn random_hex() -> Result<String, String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system's random source failed".to_string())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal strings, compared in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn hash_token(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

impl Gate {
    /// A gate whose tokens are kept in `tokens_file` (in memory only when `None`).
    /// A file that cannot be read is logged and kept aside, never overwritten blindly.
    pub fn open(tokens_file: Option<&Path>) -> Self {
        let mut unreadable = None;
        let tokens = match tokens_file.map(|p| (p, std::fs::read(p))) {
            None => Vec::new(),
            Some((_, Err(e))) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Some((path, Err(e))) => {
                tracing::error!(path = %path.display(), error = %e,
                    "cannot read the API tokens file; tokens are refused and none can be made until it reads");
                unreadable = Some(format!("cannot read {}: {e}", path.display()));
                Vec::new()
            }
            Some((path, Ok(bytes))) => match serde_json::from_slice::<Vec<StoredToken>>(&bytes) {
                Ok(t) => t,
                Err(e) => {
                    let aside = path.with_extension("damaged");
                    tracing::error!(path = %path.display(), error = %e,
                        aside = %aside.display(), "API tokens file is damaged; kept aside, tokens must be made again");
                    let _ = std::fs::rename(path, &aside);
                    Vec::new()
                }
            },
        };
        Self {
            sessions: Mutex::default(),
            tokens: Mutex::new(tokens),
            tokens_file: tokens_file.map(Path::to_path_buf),
            unreadable,
            limiter: Mutex::default(),
            checks: tokio::sync::Semaphore::new(CHECKS_AT_ONCE),
        }
    }

    /// Log in from `from`: `check` says the user's role when the password is right (it
    /// is slow on purpose, argon2, so it runs on a blocking thread). A wrong password is
    /// answered after [`WRONG_PASSWORD_DELAY`]; too many, and the address or the
    /// account waits before the password is even looked at.
    pub async fn login<F>(
        &self,
        from: IpAddr,
        user: &str,
        password: String,
        check: F,
    ) -> Result<(SessionInfo, String), LoginError>
    where
        F: FnOnce(&str, &str) -> Option<Role> + Send + 'static,
    {
        if !good_name(user) {
            return Err(LoginError::BadName);
        }
        match lock(&self.limiter).admit(from, user, Instant::now()) {
            Ok(()) => {}
            Err(Refusal::Address(d)) => return Err(LoginError::AddressWaits(d)),
            Err(Refusal::Account(d)) => return Err(LoginError::AccountWaits(d)),
        }
        let name = user.to_string();
        let role = match self.checks.acquire().await {
            Ok(_permit) => tokio::task::spawn_blocking(move || check(&name, &password))
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        };
        let Some(role) = role else {
            tracing::warn!(%from, user, "web login refused: wrong user name or password");
            tokio::time::sleep(WRONG_PASSWORD_DELAY).await;
            return Err(LoginError::Wrong);
        };
        lock(&self.limiter).succeeded(from, user);
        let (id, csrf) = match (random_hex(), random_hex()) {
            (Ok(id), Ok(csrf)) => (id, csrf),
            _ => return Err(LoginError::Wrong),
        };
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| alive(s, now));
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            id.clone(),
            Session {
                user: user.to_string(),
                role,
                csrf: csrf.clone(),
                started: now,
                last_seen: now,
            },
        );
        tracing::info!(%from, user, %role, "web login");
        let info = SessionInfo {
            user: user.to_string(),
            role,
            csrf,
            idle_timeout_s: IDLE.as_secs(),
        };
        Ok((info, session_cookie(&id)))
    }

    /// The session a cookie names, if it is still alive (and now seen again).
    pub fn session(&self, id: &str) -> Option<Principal> {
        let now = Instant::now();
        let mut sessions = lock(&self.sessions);
        let s = sessions.get_mut(id)?;
        if !alive(s, now) {
            sessions.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(Principal {
            user: s.user.clone(),
            role: s.role,
            via: Via::Session {
                id: id.to_string(),
                csrf: s.csrf.clone(),
            },
        })
    }

    pub fn session_info(&self, id: &str) -> Option<SessionInfo> {
        let p = self.session(id)?;
        let Via::Session { csrf, .. } = p.via else {
            return None;
        };
        Some(SessionInfo {
            user: p.user,
            role: p.role,
            csrf,
            idle_timeout_s: IDLE.as_secs(),
        })
    }

    /// End a session; the cookie that clears it in the browser.
    pub fn logout(&self, id: &str) -> String {
        lock(&self.sessions).remove(id);
        format!("{COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0")
    }

    /// End every session of `user` (their password or role changed, or they are gone).
    pub fn end_sessions_of(&self, user: &str) {
        lock(&self.sessions).retain(|_, s| s.user != user);
    }

    /// The token a bearer header carries, if it is known and not expired.
    pub fn token(&self, secret: &str) -> Option<Principal> {
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 200 {
            return None;
        }
        let hash = hash_token(secret);
        let now = now_secs();
        let mut tokens = lock(&self.tokens);
        let t = tokens.iter_mut().find(|t| same_secret(&t.hash, &hash))?;
        if t.token.expires <= now {
            return None;
        }
        // Noted at most once a minute, and only in memory until the next save.
        if t.token.last_used.is_none_or(|u| now >= u + 60) {
            t.token.last_used = Some(now);
        }
        // A token acts as itself, with its own role, not as whoever made it.
        Some(Principal {
            user: format!("token:{}", t.token.name),
            role: t.token.role,
            via: Via::Token {
                name: t.token.name.clone(),
            },
        })
    }

    pub fn tokens(&self) -> Vec<Token> {
        lock(&self.tokens).iter().map(|t| t.token.clone()).collect()
    }

    /// Make a token for `role` that lasts `expires` (a span such as `30d`; 90 days
    /// unless given). `made_by` may not give more than its own role.
    pub fn create_token(
        &self,
        name: &str,
        role: Role,
        expires: Option<&str>,
        made_by: &Principal,
    ) -> Result<CreatedToken, TokenError> {
        let good_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !good_name {
            return Err(TokenError::BadName);
        }
        let lasts = match expires {
            None => 90 * 86_400,
            Some(text) => rushes_api::calendar::parse_span(text)
                .map_err(|e| TokenError::BadExpiry(format!("expiry {text:?}: {e}")))?,
        };
        if !(60..=5 * 366 * 86_400).contains(&lasts) {
            return Err(TokenError::BadExpiry(
                "a token lasts from a minute to five years".into(),
            ));
        }
        let secret = format!(
            "{TOKEN_PREFIX}{}",
            random_hex().map_err(TokenError::Random)?
        );
        let now = now_secs();
        let token = Token {
            name: name.to_string(),
            role: role.min(made_by.role),
            created: now,
            expires: now + lasts,
            last_used: None,
            made_by: made_by.user.clone(),
        };
        let mut tokens = lock(&self.tokens);
        if tokens.iter().any(|t| t.token.name == name) {
            return Err(TokenError::Exists(name.to_string()));
        }
        tokens.retain(|t| t.token.expires > now);
        if tokens.len() >= MAX_TOKENS {
            return Err(TokenError::TooMany);
        }
        let mut next = tokens.clone();
        next.push(StoredToken {
            token: token.clone(),
            hash: hash_token(&secret),
        });
        self.save(&next)?;
        *tokens = next;
        tracing::info!(name, %role, by = %made_by.user, expires = token.expires, "API token made");
        Ok(CreatedToken { token, secret })
    }

    pub fn revoke_token(&self, name: &str) -> Result<(), TokenError> {
        let mut tokens = lock(&self.tokens);
        if !tokens.iter().any(|t| t.token.name == name) {
            return Err(TokenError::NoSuch(name.to_string()));
        }
        let next: Vec<_> = tokens
            .iter()
            .filter(|t| t.token.name != name)
            .cloned()
            .collect();
        self.save(&next)?;
        *tokens = next;
        tracing::info!(name, "API token revoked");
        Ok(())
    }

    fn save(&self, tokens: &[StoredToken]) -> Result<(), TokenError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let Some(path) = &self.tokens_file else {
            return Ok(());
        };
        if let Some(why) = &self.unreadable {
            return Err(TokenError::Save {
                path: path.clone(),
                source: std::io::Error::other(format!("{why}; fix it and restart rushesd")),
            });
        }
        let err = |source| TokenError::Save {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension("new");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        let body = serde_json::to_vec_pretty(tokens).map_err(|e| err(std::io::Error::other(e)))?;
        f.write_all(&body).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_seen) < IDLE && now.duration_since(s.started) < LONGEST
}

/// The session cookie: HttpOnly (no script reads it), Secure (HTTPS only),
/// SameSite=Strict (no other site's page sends it). It lasts as long as the browser;
/// the box ends the session itself after [`IDLE`] without a request.
fn session_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/; HttpOnly; Secure; SameSite=Strict")
}

/// A name a login may give: what accounts and `admin` are made of, and short.
fn good_name(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 64
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The session id in a `Cookie` header, if there is one.
pub fn cookie_session(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Principal {
        Principal {
            user: "admin".into(),
            role: Role::Admin,
            via: Via::Socket,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_makes_a_session_that_ends_when_idle() {
        let gate = Gate::open(None);
        let from: IpAddr = "10.1.1.1".parse().unwrap();
        let (info, cookie) = gate
            .login(from, "admin", "right".into(), |_, p| {
                (p == "right").then_some(Role::Admin)
            })
            .await
            .unwrap();
        assert!(
            cookie.contains("HttpOnly")
                && cookie.contains("Secure")
                && cookie.contains("SameSite=Strict")
        );
        let id = cookie_session(cookie.split(';').next().unwrap())
            .unwrap()
            .to_string();
        let p = gate.session(&id).unwrap();
        assert_eq!((p.user.as_str(), p.role), ("admin", Role::Admin));
        assert_eq!(gate.session_info(&id).unwrap().csrf, info.csrf);
        assert!(gate.session("not-a-session").is_none());
        // Idle past the limit, the session is gone.
        let now = Instant::now();
        if let Some(long_ago) = now.checked_sub(IDLE + Duration::from_secs(1)) {
            lock(&gate.sessions).get_mut(&id).unwrap().last_seen = long_ago;
            assert!(gate.session(&id).is_none());
            let (_, cookie) = gate
                .login(from, "admin", "right".into(), |_, _| Some(Role::Admin))
                .await
                .unwrap();
            let again = cookie_session(cookie.split(';').next().unwrap())
                .unwrap()
                .to_string();
            assert!(gate.session(&again).is_some());
            gate.logout(&again);
            assert!(gate.session(&again).is_none());
        }
        let wrong = gate
            .login(from, "admin", "wrong".into(), |_, p| {
                (p == "right").then_some(Role::Admin)
            })
            .await;
        assert!(matches!(wrong, Err(LoginError::Wrong)));
    }

    #[test]
    fn tokens_are_kept_hashed_shown_once_and_can_be_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.json");
        let gate = Gate::open(Some(&file));
        let made = gate
            .create_token("grading", Role::Operator, Some("30d"), &admin())
            .unwrap();
        assert!(made.secret.starts_with(TOKEN_PREFIX));
        let kept = std::fs::read_to_string(&file).unwrap();
        assert!(!kept.contains(&made.secret), "the secret itself is on disk");
        // Known after a restart, with its role and its own name.
        let gate = Gate::open(Some(&file));
        let p = gate.token(&made.secret).unwrap();
        assert_eq!((p.role, p.user.as_str()), (Role::Operator, "token:grading"));
        assert!(gate.token("rushes_0000").is_none());
        assert!(matches!(
            gate.create_token("grading", Role::Viewer, None, &admin()),
            Err(TokenError::Exists(_))
        ));
        assert!(matches!(
            gate.create_token("bad name", Role::Viewer, None, &admin()),
            Err(TokenError::BadName)
        ));
        gate.revoke_token("grading").unwrap();
        assert!(gate.token(&made.secret).is_none());
        assert!(Gate::open(Some(&file)).token(&made.secret).is_none());
    }

    #[test]
    fn a_token_never_has_more_than_its_maker() {
        let gate = Gate::open(None);
        let operator = Principal {
            user: "ed".into(),
            role: Role::Operator,
            via: Via::Socket,
        };
        let made = gate
            .create_token("t", Role::Admin, None, &operator)
            .unwrap();
        assert_eq!(made.token.role, Role::Operator);
    }

    #[test]
    fn an_unreadable_tokens_file_is_never_saved_over() {
        let dir = tempfile::tempdir().unwrap();
        // A folder where the file should be: reading it fails, and not as "not found".
        let file = dir.path().join("tokens.json");
        std::fs::create_dir(&file).unwrap();
        let gate = Gate::open(Some(&file));
        assert!(matches!(
            gate.create_token("t", Role::Viewer, None, &admin()),
            Err(TokenError::Save { .. })
        ));
        assert!(file.is_dir());
    }

    #[test]
    fn a_damaged_tokens_file_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens.json");
        std::fs::write(&file, b"{not json").unwrap();
        let gate = Gate::open(Some(&file));
        assert!(gate.tokens().is_empty());
        assert!(dir.path().join("tokens.damaged").exists());
    }

    #[test]
    fn cookies_are_read_among_others() {
        assert_eq!(
            cookie_session("a=1; __Host-rushes_session=abc; b=2"),
            Some("abc")
        );
        assert_eq!(cookie_session("__Host-rushes_session="), None);
        assert_eq!(cookie_session("rushes_session=abc"), None);
        assert_eq!(cookie_session("other=1"), None);
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
