//! Headless Chromium driven over WebDriver (chromedriver + fantoccini), for tests that
//! must see pages the way users do. Each [`Browser`] has its own chromedriver on a free
//! port and a fresh profile; the driver's process group is killed on drop.
//!
//! ```no_run
//! # async fn demo() {
//! use kiln_tests::chromium::{Browser, BrowserOptions};
//! let b = Browser::start(BrowserOptions::default()).await.unwrap();
//! b.goto("http://127.0.0.1:8787/").await.unwrap();
//! let h1 = b.text("h1").await.unwrap();
//! b.screenshot("edge/ready").await.unwrap(); // artifacts/edge/ready.png
//! # }
//! ```

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::tools::{artifacts_dir, find_tool, free_port, kill_group, tool_path};

#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("{0} not found: run scripts/setup.sh (apt chromium chromium-driver)")]
    Missing(&'static str),
    #[error("could not start chromedriver: {0}")]
    Io(#[from] std::io::Error),
    #[error("chromedriver did not come up within {0} s")]
    NotReady(u64),
    #[error("WebDriver session: {0}")]
    Session(#[from] fantoccini::error::NewSessionError),
    #[error("WebDriver command: {0}")]
    Cmd(#[from] fantoccini::error::CmdError),
}

#[derive(Debug, Clone)]
pub struct BrowserOptions {
    pub width: u32,
    pub height: u32,
    /// Emulate a dark OS theme (`prefers-color-scheme: dark`).
    pub dark: bool,
    /// JavaScript off: pages must work without it.
    pub javascript: bool,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        BrowserOptions {
            width: 1440,
            height: 900,
            dark: false,
            javascript: true,
        }
    }
}

/// Whether Chromium and chromedriver are installed (for the skip rule).
pub fn chromium_available() -> bool {
    find_tool("chromedriver").is_some() && chromium_binary().is_some()
}

fn chromium_binary() -> Option<PathBuf> {
    find_tool("chromium").or_else(|| find_tool("chromium-browser"))
}

pub struct Browser {
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start(opts: BrowserOptions) -> Result<Browser, BrowserError> {
        let driver_bin = find_tool("chromedriver").ok_or(BrowserError::Missing("chromedriver"))?;
        let chromium = chromium_binary().ok_or(BrowserError::Missing("chromium"))?;
        let profile = tempfile::tempdir()?;
        let port = free_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .env("PATH", tool_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let mut browser = Browser {
            client: None,
            driver,
            _profile: profile,
        };
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let start = Instant::now();
        while http.get(format!("{url}/status")).send().await.is_err() {
            if start.elapsed() > Duration::from_secs(30) {
                return Err(BrowserError::NotReady(30));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--user-data-dir={}", browser._profile.path().display()),
            format!("--window-size={},{}", opts.width, opts.height),
        ];
        // One --blink-settings flag: Chromium keeps only the last.
        let mut blink = vec![];
        if opts.dark {
            args.push("--force-dark-mode".to_owned());
            blink.push("preferredColorScheme=0"); // 0 = dark
        }
        if !opts.javascript {
            blink.push("scriptEnabled=false");
        }
        if !blink.is_empty() {
            args.push(format!("--blink-settings={}", blink.join(",")));
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        // ring and aws-lc-rs are both in the dependency tree, so rustls cannot choose a
        // provider itself; the driver is plain HTTP on loopback anyway.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = ClientBuilder::rustls()?
            .capabilities(caps)
            .connect(&url)
            .await?;
        browser.client = Some(client);
        Ok(browser)
    }

    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("session is open")
    }

    pub async fn goto(&self, url: &str) -> Result<(), BrowserError> {
        Ok(self.client().goto(url).await?)
    }

    /// Visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> Result<String, BrowserError> {
        Ok(self.client().find(Locator::Css(css)).await?.text().await?)
    }

    /// Texts of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Result<Vec<String>, BrowserError> {
        let mut out = vec![];
        for e in self.client().find_all(Locator::Css(css)).await? {
            out.push(e.text().await?);
        }
        Ok(out)
    }

    pub async fn attr(&self, css: &str, name: &str) -> Result<Option<String>, BrowserError> {
        Ok(self
            .client()
            .find(Locator::Css(css))
            .await?
            .attr(name)
            .await?)
    }

    pub async fn count(&self, css: &str) -> Result<usize, BrowserError> {
        Ok(self.client().find_all(Locator::Css(css)).await?.len())
    }

    /// Runs `script` (a function body; `return` a value) in the page.
    pub async fn eval(&self, script: &str) -> Result<serde_json::Value, BrowserError> {
        Ok(self.client().execute(script, vec![]).await?)
    }

    /// Writes a PNG of the viewport to `artifacts/<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf, BrowserError> {
        let png = self.client().screenshot().await?;
        let path = artifacts_dir("").join(format!("{name}.png"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Ends the WebDriver session (closing Chromium) before the driver is killed.
    pub async fn close(mut self) -> Result<(), BrowserError> {
        if let Some(c) = self.client.take() {
            c.close().await?;
        }
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Chromium is in chromedriver's process group: one kill takes both down.
        kill_group(self.driver.id(), "KILL");
        let _ = self.driver.wait();
    }
}
