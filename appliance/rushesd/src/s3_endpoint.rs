//! This box as an S3 endpoint for other boxes' copies: a pool's `s3/` folder served over
//! S3 (s3s, with its file-system backend, s3s-fs), every request signed (SigV4) with a
//! key made here. A key reaches one bucket, named after it, so sites keep apart; its
//! secret is sealed with the targets' and shown once. Set in rushes.toml
//! (`[s3_endpoint]`, `[[s3_key]]`) and over the API; host mode serves a folder given on
//! the command line instead of a pool. It speaks HTTPS only, with the box's own
//! certificate (the web console's), which the other boxes pin by its fingerprint.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ring::rand::{SecureRandom, SystemRandom};
use rushes_api::{self as api, AddS3Key, NewS3Key, S3EndpointEntry, S3KeyEntry};
use s3s::auth::{S3Auth, SecretKey};
use s3s::S3Result;

use crate::core::Core;
use crate::error::{ApiErr, ApiResult};
use crate::targets::Targets;

/// Where the endpoint serves from and where it listens, as it runs now.
struct Running {
    listen: SocketAddr,
    root: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

pub struct S3Endpoint {
    core: Arc<Core>,
    targets: Arc<Targets>,
    /// Where the box's certificate comes from.
    admin: Arc<crate::admin_plane::AdminPlane>,
    /// Host mode: this address and folder, whatever the config says.
    fixed: Option<(SocketAddr, PathBuf)>,
    running: Mutex<Option<Running>>,
    /// Why it does not serve what is set, in words.
    problem: Mutex<Option<String>>,
    /// Its own: requests to it never wait behind NFS's.
    runtime: Option<tokio::runtime::Runtime>,
    /// The keys by access key, with their names and secrets: read from the config and
    /// the vault once, not at every signed request; forgotten when a key changes.
    keys: Mutex<Option<BTreeMap<String, (String, String)>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The vault's name for key `name`'s secret.
fn sealed_as(name: &str) -> String {
    format!("s3-key:{name}")
}

/// `len` characters from `alphabet`, drawn from the system's random source.
fn random_text(len: usize, alphabet: &[u8]) -> Result<String, String> {
    let mut bytes = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "no randomness to make a key from".to_string())?;
    Ok(bytes
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect())
}

/// A key's name is its bucket's: S3's rules for bucket names, kept simple.
fn check_key_name(name: &str) -> ApiResult<()> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(
            ApiErr::bad_request(format!("{name:?} cannot name a key and its bucket"))
                .hint("use 3 to 63 lower-case letters, digits and -: site-b, london-dr"),
        )
    }
}

impl S3Endpoint {
    pub fn new(
        core: Arc<Core>,
        targets: Arc<Targets>,
        admin: Arc<crate::admin_plane::AdminPlane>,
        fixed: Option<(SocketAddr, PathBuf)>,
    ) -> Arc<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-endpoint")
            .enable_all()
            .build()
            .map_err(|e| tracing::error!(error = %e, "the S3 endpoint has no runtime"))
            .ok();
        Arc::new(Self {
            core,
            targets,
            admin,
            fixed,
            running: Mutex::new(None),
            problem: Mutex::new(None),
            runtime,
            keys: Mutex::new(None),
        })
    }

    /// Where it should serve from now: host mode's folder, or the set pool's `s3/`.
    fn wanted(&self) -> Result<Option<(SocketAddr, PathBuf)>, String> {
        if let Some(fixed) = &self.fixed {
            return Ok(Some(fixed.clone()));
        }
        let Some(entry) = self.core.with_config(|c| c.s3_endpoint.clone()) else {
            return Ok(None);
        };
        let listen: SocketAddr = entry
            .listen
            .parse()
            .map_err(|_| format!("{:?} is not an address to listen on", entry.listen))?;
        let mount = self.core.paths.mountpoint(&entry.pool);
        if !rushes_storage::xfs::is_mounted(&mount) {
            return Err(format!("pool {} is not mounted", entry.pool));
        }
        Ok(Some((listen, mount.join("s3"))))
    }

    /// Serve what is set: started, moved or stopped to match it, with a bucket folder
    /// for every key. Called at start and after every change.
    pub fn apply(self: &Arc<Self>) {
        let wanted = self.wanted();
        let mut running = lock(&self.running);
        let now = running.as_ref().map(|r| (r.listen, r.root.clone()));
        match wanted {
            Ok(w) if w == now => {
                *lock(&self.problem) = None;
            }
            Ok(w) => {
                if let Some(old) = running.take() {
                    old.task.abort();
                    tracing::info!(listen = %old.listen, "S3 endpoint stopped");
                }
                *lock(&self.problem) = None;
                if let Some((listen, root)) = w {
                    match self.start(listen, &root) {
                        Ok(task) => {
                            tracing::info!(%listen, root = %root.display(), "S3 endpoint serving");
                            for key in self.core.with_config(|c| c.s3_keys.clone()) {
                                make_bucket(&root, &key.name);
                            }
                            *running = Some(Running { listen, root, task });
                        }
                        Err(e) => {
                            tracing::warn!(%listen, error = %e, "S3 endpoint cannot serve");
                            *lock(&self.problem) = Some(e);
                        }
                    }
                }
            }
            Err(e) => {
                if let Some(old) = running.take() {
                    old.task.abort();
                }
                *lock(&self.problem) = Some(e);
            }
        }
    }

    fn start(
        self: &Arc<Self>,
        listen: SocketAddr,
        root: &std::path::Path,
    ) -> Result<tokio::task::JoinHandle<()>, String> {
        std::fs::create_dir_all(root)
            .map_err(|e| format!("cannot make {}: {e}", root.display()))?;
        let fs = s3s_fs::FileSystem::new(root)
            .map_err(|e| format!("cannot serve {}: {e:?}", root.display()))?;
        let mut b = s3s::service::S3ServiceBuilder::new(fs);
        let keys = Keys(Arc::clone(self));
        b.set_auth(keys.clone());
        b.set_access(keys);
        let service = b.build();
        let tls = self.admin.tls()?;
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let runtime = self
            .runtime
            .as_ref()
            .ok_or("the S3 endpoint has no runtime (see the log)")?;
        let _entered = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
        Ok(runtime.spawn(async move {
            let http =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            loop {
                let Ok((socket, peer)) = listener.accept().await else {
                    continue;
                };
                let _ = socket.set_nodelay(true);
                // The certificate as it is now: one installed since serves new connections.
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
                let http = http.clone();
                let service = service.clone();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        acceptor.accept(socket),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "S3 endpoint: TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let _ = http
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        }))
    }

    pub fn show(&self) -> api::S3Service {
        let running = lock(&self.running);
        api::S3Service {
            endpoint: self.core.with_config(|c| c.s3_endpoint.clone()),
            serving: running
                .as_ref()
                .map(|r| format!("{} from {}", r.listen, r.root.display())),
            problem: lock(&self.problem).clone(),
            fingerprint: running
                .as_ref()
                .and_then(|_| self.admin.tls().ok())
                .map(|t| t.info().fingerprint),
            keys: self.core.with_config(|c| c.s3_keys.clone()),
        }
    }

    /// Serve pool `entry.pool` at `entry.listen` (kept in rushes.toml).
    pub fn set(self: &Arc<Self>, entry: S3EndpointEntry) -> ApiResult<api::S3Service> {
        if entry.listen.parse::<SocketAddr>().is_err() {
            return Err(ApiErr::bad_request(format!(
                "{:?} is not an address to listen on",
                entry.listen
            ))
            .hint("give it as ADDR:PORT: 0.0.0.0:9000"));
        }
        if self.core.with_config(|c| c.pool(&entry.pool).is_none()) {
            return Err(
                ApiErr::not_found(format!("there is no pool {:?}", entry.pool))
                    .hint("rushesctl pools lists them"),
            );
        }
        self.core
            .save_config(|c| c.s3_endpoint = Some(entry))
            .map_err(ApiErr::failed)?;
        self.apply();
        Ok(self.show())
    }

    /// A new key, its secret sealed and returned this once, and its bucket made.
    pub fn add_key(self: &Arc<Self>, req: AddS3Key) -> ApiResult<NewS3Key> {
        check_key_name(&req.name)?;
        if self
            .core
            .with_config(|c| c.s3_keys.iter().any(|k| k.name == req.name))
        {
            return Err(ApiErr::new(
                409,
                "exists",
                format!("there is a key {:?} already", req.name),
            )
            .hint("delete it first to make a new one (its secret is never shown again)"));
        }
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        const MIXED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let access_key = format!("RUSH{}", random_text(16, UPPER).map_err(ApiErr::failed)?);
        let secret = random_text(40, MIXED).map_err(ApiErr::failed)?;
        self.targets
            .seal(&sealed_as(&req.name), &secret)
            .map_err(ApiErr::failed)?;
        let entry = S3KeyEntry {
            name: req.name.clone(),
            access_key: access_key.clone(),
        };
        self.core
            .save_config(|c| c.s3_keys.push(entry))
            .map_err(ApiErr::failed)?;
        tracing::info!(key = %req.name, "S3 endpoint key made");
        *lock(&self.keys) = None;
        if let Some(r) = lock(&self.running).as_ref() {
            make_bucket(&r.root, &req.name);
        }
        Ok(NewS3Key {
            bucket: req.name.clone(),
            name: req.name,
            access_key,
            secret,
        })
    }

    /// Remove key `name`: requests it signs are refused from now on. Its bucket and
    /// what is in it stay.
    pub fn delete_key(&self, name: &str) -> ApiResult<()> {
        if !self
            .core
            .with_config(|c| c.s3_keys.iter().any(|k| k.name == name))
        {
            return Err(ApiErr::not_found(format!("there is no key {name:?}"))
                .hint("rushesctl s3 lists them"));
        }
        self.core
            .save_config(|c| c.s3_keys.retain(|k| k.name != name))
            .map_err(ApiErr::failed)?;
        *lock(&self.keys) = None;
        self.targets
            .forget(&sealed_as(name))
            .map_err(ApiErr::failed)?;
        tracing::info!(key = %name, "S3 endpoint key removed");
        Ok(())
    }

    /// The key that `access_key` names, with its secret.
    fn key(&self, access_key: &str) -> Option<(String, String)> {
        let mut keys = lock(&self.keys);
        let keys = keys.get_or_insert_with(|| {
            self.core
                .with_config(|c| c.s3_keys.clone())
                .into_iter()
                .filter_map(|k| {
                    let secret = self.targets.unseal(&sealed_as(&k.name)).ok()??;
                    Some((k.access_key, (k.name, secret)))
                })
                .collect()
        });
        keys.get(access_key).cloned()
    }
}

/// Key `name`'s bucket: a folder under the endpoint's root.
fn make_bucket(root: &std::path::Path, name: &str) {
    if let Err(e) = std::fs::create_dir_all(root.join(name)) {
        tracing::warn!(bucket = %name, error = %e, "cannot make an S3 bucket");
    }
}

/// Signatures checked against the keys made here, and each key held to its bucket.
#[derive(Clone)]
struct Keys(Arc<S3Endpoint>);

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.0.key(access_key) {
            Some((_, secret)) => Ok(SecretKey::from(secret)),
            None => Err(s3s::s3_error!(InvalidAccessKeyId)),
        }
    }
}

#[async_trait::async_trait]
impl s3s::access::S3Access for Keys {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> S3Result<()> {
        let denied = || Err(s3s::s3_error!(AccessDenied));
        let Some(creds) = cx.credentials() else {
            return denied();
        };
        let Some((name, _)) = self.0.key(&creds.access_key) else {
            return denied();
        };
        let bucket = match cx.s3_path() {
            s3s::path::S3Path::Bucket { bucket } | s3s::path::S3Path::Object { bucket, .. } => {
                bucket
            }
            s3s::path::S3Path::Root => return denied(),
        };
        if **bucket == *name {
            Ok(())
        } else {
            denied()
        }
    }
}
