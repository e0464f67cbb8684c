//! `s3-target`: an S3 server on loopback for the tests and benches of copies (s3s's
//! file-system sample over a folder, with SigV4 signatures), which can be made hostile
//! the ways real stores are: slow to answer, throttling (503 SlowDown), or lying about
//! what it stored (it answers a write with success, then holds other bytes).

#![allow(clippy::print_stdout)] // a test tool's one line of output, not a daemon

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

#[derive(Parser)]
#[command(
    about = "An S3 server over a folder, for tests and benches; optionally slow, throttling or lying"
)]
struct Args {
    /// The folder holding the buckets: ROOT/BUCKET/KEY.
    #[arg(long)]
    root: PathBuf,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Buckets made at start (folders under ROOT).
    #[arg(long = "bucket")]
    buckets: Vec<String>,
    #[arg(long, default_value = "AK")]
    access_key: String,
    #[arg(long, default_value = "secret")]
    secret: String,
    /// Answer each request this much later.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Refuse every Nth request with 503 SlowDown (1: every request).
    #[arg(long)]
    throttle_every: Option<u64>,
    /// After each object written (a PUT, a completed multipart upload, a server-side
    /// copy) is answered with success, change one byte of what is stored.
    #[arg(long)]
    lie: bool,
}

/// What a write the server lies about names: the object's file under ROOT.
fn written_object(root: &std::path::Path, req: &http::Request<s3s::Body>) -> Option<PathBuf> {
    let query = req.uri().query().unwrap_or("");
    let is_put = req.method() == http::Method::PUT && !query.contains("partNumber");
    let is_complete = req.method() == http::Method::POST && query.contains("uploadId");
    if !is_put && !is_complete {
        return None;
    }
    let path = req.uri().path().trim_start_matches('/');
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned();
    // A bucket (one segment) is not an object.
    if !decoded.contains('/') || decoded.split('/').any(|s| s == "..") {
        return None;
    }
    Some(root.join(decoded))
}

/// Flip one byte in the middle of the stored object, keeping its size.
fn corrupt(path: &std::path::Path) {
    use std::os::unix::fs::FileExt;
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return;
    }
    let at = len / 2;
    let mut b = [0u8];
    if f.read_at(&mut b, at).is_ok() {
        b[0] ^= 0x5a;
        let _ = f.write_at(&b, at);
    }
}

fn slow_down() -> http::Response<s3s::Body> {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
    let mut resp = http::Response::new(s3s::Body::from(body.to_string()));
    *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    resp
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    for bucket in &args.buckets {
        std::fs::create_dir_all(args.root.join(bucket))
            .with_context(|| format!("cannot make bucket {bucket}"))?;
    }
    let fs = s3s_fs::FileSystem::new(&args.root)
        .map_err(|e| anyhow::anyhow!("cannot serve {}: {e:?}", args.root.display()))?;
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(
        args.access_key.as_str(),
        args.secret.as_str(),
    ));
    let service = b.build();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("listening on {}", listener.local_addr()?);
    let args = Arc::new(args);
    let count = Arc::new(AtomicU64::new(0));
    let http = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    loop {
        let (socket, _) = listener.accept().await?;
        // As a real store does: a small answer is not held back waiting for an ACK.
        socket.set_nodelay(true)?;
        let (service, args, count) = (service.clone(), Arc::clone(&args), Arc::clone(&count));
        let serve = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let (service, args, count) = (service.clone(), Arc::clone(&args), Arc::clone(&count));
            async move {
                if args.delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(args.delay_ms)).await;
                }
                let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                if args
                    .throttle_every
                    .is_some_and(|every| n % every.max(1) == 0)
                {
                    return Ok::<_, Infallible>(slow_down());
                }
                let req = req.map(s3s::Body::from);
                let lied_about = if args.lie {
                    written_object(&args.root, &req)
                } else {
                    None
                };
                let resp = match service.call(req).await {
                    Ok(resp) => resp,
                    Err(e) => {
                        let mut resp = http::Response::new(s3s::Body::from(format!("{e:?}")));
                        *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                        resp
                    }
                };
                if resp.status().is_success() {
                    if let Some(path) = lied_about {
                        corrupt(&path);
                    }
                }
                Ok(resp)
            }
        });
        let conn = http
            .serve_connection(hyper_util::rt::TokioIo::new(socket), serve)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
