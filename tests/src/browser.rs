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
        let mut started = Self::connect(port, width, height).await;
        if started.is_err() {
            // chromedriver may not listen yet.
            wait_for_port(SocketAddr::from(([127, 0, 0, 1], port)))?;
            started = Self::connect(port, width, height).await;
        }
        match started {
            Ok(client) => Ok(Self {
                driver: Some(driver),
                client,
            }),
            Err(e) => {
                stop(driver);
                Err(e)
            }
        }
    }

    async fn connect(port: u16, width: u32, height: u32) -> Result<fantoccini::Client> {
        let mut caps = serde_json::Map::new();
        caps.insert("acceptInsecureCerts".into(), json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},{height}")],
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

    /// End the browser's session, then chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
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
