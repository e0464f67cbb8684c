//! Debian's chromium, headless, driven through chromedriver (WebDriver): what the web
//! console's tests and bench open pages with.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Wait until something answers on `addr`.
pub fn wait_for_port(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            bail!("nothing answers on {addr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// chromedriver, and a chromium session on it; chromedriver stops with this.
pub struct Browser {
    driver: Option<Child>,
    pub client: fantoccini::Client,
    /// Where the browser saves files (a backup, a support bundle), without asking.
    pub downloads: tempfile::TempDir,
}

impl Browser {
    /// A headless chromium with a window of `width` x `height` that accepts the box's
    /// self-made certificate (as a person does after comparing its fingerprint).
    pub async fn start(width: u32, height: u32) -> Result<Self> {
        let port = crate::free_tcp_port();
        let driver = Command::new(CHROMEDRIVER)
            // A group of its own, so chromium and its helpers end with it.
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("chromedriver (make deps installs chromium-driver)")?;
        let downloads = tempfile::tempdir()?;
        let mut started = Self::connect(port, width, height, downloads.path()).await;
        if started.is_err() {
            // chromedriver may not listen yet.
            wait_for_port(SocketAddr::from(([127, 0, 0, 1], port)))?;
            started = Self::connect(port, width, height, downloads.path()).await;
        }
        match started {
            Ok(client) => Ok(Self {
                driver: Some(driver),
                client,
                downloads,
            }),
            Err(e) => {
                stop(driver);
                Err(e)
            }
        }
    }

    async fn connect(
        port: u16,
        width: u32,
        height: u32,
        downloads: &std::path::Path,
    ) -> Result<fantoccini::Client> {
        let mut caps = serde_json::Map::new();
        caps.insert("acceptInsecureCerts".into(), json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},{height}")],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            }),
        );
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("a chromium session (make deps installs chromium)")
    }
}

impl Browser {
    /// Log in at `base`'s login page as admin with `password`, as a person does, and
    /// wait up to `within` for the dashboard.
    pub async fn log_in(&self, base: &str, password: &str, within: Duration) -> Result<()> {
        use fantoccini::Locator;
        let c = &self.client;
        c.goto(&format!("{base}/login")).await?;
        c.find(Locator::Css("input[name=password]"))
            .await?
            .send_keys(password)
            .await?;
        c.find(Locator::Css("#login button")).await?.click().await?;
        let deadline = Instant::now() + within;
        while c.current_url().await?.path() != "/ui" {
            if Instant::now() > deadline {
                bail!("the login did not reach the dashboard within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// The file the browser saved whose name starts with `prefix`, once it is whole
    /// (chromium writes `NAME.crdownload` first), waiting up to `within`.
    pub async fn downloaded(&self, prefix: &str, within: Duration) -> Result<std::path::PathBuf> {
        let deadline = Instant::now() + within;
        loop {
            let found = std::fs::read_dir(self.downloads.path())?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    name.starts_with(prefix) && !name.ends_with(".crdownload")
                });
            if let Some(path) = found {
                return Ok(path);
            }
            if Instant::now() > deadline {
                bail!("the browser saved no {prefix}… within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// End the browser's session, then chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// In `scope` (a form, say), type `text` into the field at `css`, emptied first.
pub async fn retype(scope: &fantoccini::elements::Element, css: &str, text: &str) -> Result<()> {
    let field = scope.find(fantoccini::Locator::Css(css)).await?;
    field.clear().await?;
    field.send_keys(text).await?;
    Ok(())
}

/// In `scope`, click what `css` finds.
pub async fn press(scope: &fantoccini::elements::Element, css: &str) -> Result<()> {
    scope
        .find(fantoccini::Locator::Css(css))
        .await?
        .click()
        .await?;
    Ok(())
}

/// chromedriver and everything it started (chromium's processes share its group).
fn stop(mut driver: Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(driver.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = driver.kill();
    let _ = driver.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            stop(driver);
        }
    }
}
