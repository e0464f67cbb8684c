//! The admin plane on the network: HTTPS (443, or host mode's `--web`) with the box's
//! certificate, web logins for the admin and for accounts that have a role, API tokens,
//! and the audit line of every admin action. The root-only Unix socket stays what it
//! was: the console's and local rushesctl's, audited as `console`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use rushes_api as api;
use rushes_web::{AdminAction, Gate, LoginError, Principal, Tls};

use crate::core::Core;
use crate::error::{ApiErr, ApiResult};

/// Where the admin plane listens.
#[derive(Debug, Clone, Copy)]
pub struct WebListen {
    pub https: SocketAddr,
    /// Plain HTTP that only redirects to `https`.
    pub redirect: Option<SocketAddr>,
}

pub struct AdminPlane {
    core: Arc<Core>,
    pub gate: Arc<Gate>,
    /// The certificate in use, once the listener has started.
    tls: OnceLock<Arc<Tls>>,
    listening: Mutex<Option<SocketAddr>>,
    /// Where admin actions are written (the audit log, once the daemon is built).
    audit: OnceLock<Arc<crate::activity::Activity>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AdminPlane {
    pub fn new(core: Arc<Core>) -> Arc<Self> {
        let tokens = core.paths.state_dir.join("api-tokens.json");
        Arc::new(Self {
            gate: Arc::new(Gate::open(Some(&tokens))),
            core,
            tls: OnceLock::new(),
            listening: Mutex::new(None),
            audit: OnceLock::new(),
        })
    }

    /// The box's certificate, for another listener that serves HTTPS with it (the S3
    /// endpoint): the one the web console uses, opened (or made) now if it has not
    /// started yet, so an installed certificate serves both.
    pub fn tls(&self) -> Result<Arc<Tls>, String> {
        if let Some(t) = self.tls.get() {
            return Ok(Arc::clone(t));
        }
        let names = certificate_names(SocketAddr::from(([0, 0, 0, 0], 0)));
        let t = Arc::new(
            Tls::open(&self.web_dir(), &names)
                .map_err(|e| format!("the box's certificate: {e}"))?,
        );
        Ok(Arc::clone(self.tls.get_or_init(|| t)))
    }

    pub fn set_audit(&self, activity: Arc<crate::activity::Activity>) {
        let _ = self.audit.set(activity);
    }

    /// Write an admin action to the audit log (and the daemon's log).
    pub fn record(&self, protocol: &str, action: &AdminAction) {
        tracing::info!(target: "admin", protocol, client = %action.client, user = %action.user,
            method = %action.method, path = %action.path, status = action.status, "admin action");
        if let Some(activity) = self.audit.get() {
            activity.audit().admin(protocol, action);
        }
    }

    fn web_dir(&self) -> PathBuf {
        self.core.paths.state_dir.join("web")
    }

    /// Start HTTPS (and the redirect) on the current runtime with `api` behind the gate.
    pub async fn serve(self: &Arc<Self>, at: WebListen, api: axum::Router) -> anyhow::Result<()> {
        use anyhow::Context;
        let names = certificate_names(at.https);
        let tls = match self.tls.get() {
            Some(t) => Arc::clone(t),
            None => {
                let t =
                    Arc::new(Tls::open(&self.web_dir(), &names).context("the web certificate")?);
                Arc::clone(self.tls.get_or_init(|| t))
            }
        };
        let listener = tokio::net::TcpListener::bind(at.https)
            .await
            .with_context(|| format!("cannot listen for HTTPS on {}", at.https))?;
        let bound = listener.local_addr()?;
        *lock(&self.listening) = Some(bound);
        let me = Arc::clone(self);
        let sink: rushes_web::AuditSink = Arc::new(move |a: AdminAction| me.record("https", &a));
        let app = rushes_web::console(api, Arc::clone(&self.gate), sink);
        tracing::info!(https = %bound, fingerprint = %tls.info().fingerprint, "admin plane listening (HTTPS)");
        if let Some(redirect) = at.redirect {
            match tokio::net::TcpListener::bind(redirect).await {
                Ok(l) => {
                    tracing::info!(http = %redirect, "plain HTTP answers with a redirect to HTTPS");
                    tokio::spawn(rushes_web::serve_redirect(l, bound.port()));
                }
                Err(e) => {
                    tracing::warn!(%redirect, error = %e, "cannot listen for the HTTP redirect")
                }
            }
        }
        rushes_web::serve_https(listener, tls, app).await;
        Ok(())
    }

    pub fn info(&self) -> api::WebInfo {
        api::WebInfo {
            listen: lock(&self.listening).map(|a| a.to_string()),
            certificate: self.tls.get().map(|t| t.info()),
        }
    }

    pub fn install_certificate(
        &self,
        req: api::InstallCertificate,
    ) -> ApiResult<api::CertificateInfo> {
        let tls = self.tls.get().ok_or_else(|| {
            ApiErr::new(409, "no-https", "this rushesd serves no HTTPS")
                .hint("start `rushesd host` with --web ADDR:PORT (the appliance always serves 443)")
        })?;
        tls.install(req.certificate_pem.as_bytes(), req.key_pem.as_bytes())
            .map_err(|e| {
                ApiErr::new(422, "bad-certificate", format!("the certificate is refused: {e}"))
                    .hint("give the chain (leaf first) and its unencrypted private key as PEM; the old certificate stays in use")
            })
    }

    /// A web login: `admin` with the admin password, or an account with a role and its
    /// password. Wrong answers are delayed, and repeated ones make the address or the
    /// account wait; the console's lock (on the socket) is never held up by them.
    pub async fn login(
        &self,
        from: SocketAddr,
        req: api::NewSession,
        system: Arc<crate::settings::System>,
    ) -> ApiResult<(api::SessionInfo, String)> {
        let core = Arc::clone(&self.core);
        // The audit names the account tried only when there is one: a password typed
        // into the name field by mistake must not land in a log viewers can read.
        let named = req.user == "admin"
            || self
                .core
                .with_config(|c| c.users.iter().any(|u| u.name == req.user));
        let user = if named {
            req.user.clone()
        } else {
            "(no such account)".into()
        };
        let result = self
            .gate
            .login(from.ip(), &req.user, req.password, move |user, password| {
                login_role(&core, &system, user, password)
            })
            .await;
        self.record(
            "https",
            &AdminAction::now(
                from.ip().to_canonical().to_string(),
                user,
                "LOGIN".into(),
                "/v1/session".into(),
                match &result {
                    Ok(_) => 200,
                    Err(LoginError::Wrong) => 403,
                    Err(LoginError::BadName) => 400,
                    Err(_) => 429,
                },
            ),
        );
        result.map_err(|e| match e {
            LoginError::Wrong => ApiErr::new(403, "wrong-password", e.to_string()),
            LoginError::BadName => ApiErr::bad_request(e.to_string()),
            LoginError::AddressWaits(_) | LoginError::AccountWaits(_) => {
                ApiErr::new(429, "too-many-logins", e.to_string())
                    .hint("the admin can still unlock the console on the box itself")
            }
        })
    }

    pub fn create_token(&self, req: api::NewToken, by: &Principal) -> ApiResult<api::CreatedToken> {
        self.gate
            .create_token(&req.name, req.role, req.expires.as_deref(), by)
            .map_err(token_err)
    }

    pub fn revoke_token(&self, name: &str) -> ApiResult<()> {
        self.gate.revoke_token(name).map_err(token_err)
    }
}

fn token_err(e: rushes_web::TokenError) -> ApiErr {
    use rushes_web::TokenError as T;
    match e {
        T::NoSuch(_) => ApiErr::not_found(e.to_string()).hint("`rushesctl token list` shows them"),
        T::Exists(_) => ApiErr::new(409, "exists", e.to_string()),
        T::BadName | T::BadExpiry(_) | T::TooMany => ApiErr::bad_request(e.to_string()),
        T::Save { .. } | T::Random(_) => ApiErr::failed(e.to_string()),
    }
}

/// The role `user` logs in with, when `password` is theirs. Every refusal costs one
/// argon2 check, so timing does not tell which names exist or have a web login.
fn login_role(
    core: &Core,
    system: &crate::settings::System,
    user: &str,
    password: &str,
) -> Option<api::Role> {
    if user == "admin" {
        return system
            .is_admin_password(password)
            .then_some(api::Role::Admin);
    }
    let entry = core.with_config(|c| c.users.iter().find(|u| u.name == user).cloned());
    match entry.and_then(|u| Some((u.role?, u.web_password?))) {
        Some((role, hash)) => crate::settings::matches_hash(&hash, password).then_some(role),
        None => {
            static DUMMY: OnceLock<String> = OnceLock::new();
            let dummy = DUMMY.get_or_init(|| {
                crate::settings::hash_password("no account has this password").unwrap_or_default()
            });
            let _ = crate::settings::matches_hash(dummy, password);
            None
        }
    }
}

/// The names the box's own certificate is made for: its host name, `rushes.local`, and
/// the address it listens on when that is a particular one.
fn certificate_names(at: SocketAddr) -> Vec<String> {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let mut names = vec![host.clone(), format!("{host}.local"), "localhost".into()];
    if !at.ip().is_unspecified() {
        names.push(at.ip().to_string());
    }
    names.push("127.0.0.1".into());
    names.dedup();
    names
}
