//! Headless Chromium driven over WebDriver (chromedriver + fantoccini), for tests that
//! must see pages the way users do. Each [`Browser`] has its own chromedriver on a free
//! port and a fresh profile; chromedriver runs as a devstack [`ManagedProcess`], so it
//! (and Chromium, in its process group) stops the way every other child does.
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

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use kiln_devstack::emulators::{kiln_root, on_path};
use kiln_devstack::process::free_port;
use kiln_devstack::{ManagedProcess, ProcessError};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
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

/// Installed system-wide (apt), not pinned under tools/.
const SETUP_HINT: &str = "run `make setup` (apt chromium chromium-driver)";

/// chromedriver and the Chromium binary, or [`ProcessError::ToolMissing`] (so tests can
/// use [`kiln_devstack::started_or_skip`]).
pub fn find_chromium() -> Result<(PathBuf, PathBuf), ProcessError> {
    let missing = |tool: &str| ProcessError::ToolMissing {
        tool: tool.into(),
        hint: format!("not on PATH; {SETUP_HINT}"),
    };
    let driver = on_path("chromedriver").ok_or_else(|| missing("chromedriver"))?;
    let chromium = on_path("chromium")
        .or_else(|| on_path("chromium-browser"))
        .ok_or_else(|| missing("chromium"))?;
    Ok((driver, chromium))
}

/// Directory for test artifacts (screenshots): `<repo>/artifacts/<sub>`, created.
pub fn artifacts_dir(sub: &str) -> PathBuf {
    let dir = kiln_root().join("artifacts").join(sub);
    std::fs::create_dir_all(&dir).expect("create artifacts dir");
    dir
}

pub struct Browser {
    // Field order is drop order: the session closes before the driver's group is killed.
    client: Option<Client>,
    _driver: ManagedProcess,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start(opts: BrowserOptions) -> Result<Browser, BrowserError> {
        let (driver_bin, chromium) = find_chromium()?;
        let profile = tempfile::tempdir()?;
        let port = free_port()?;
        let mut cmd = Command::new(driver_bin);
        cmd.arg(format!("--port={port}"));
        let mut driver = ManagedProcess::spawn("chromedriver", cmd)?;
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        driver
            .wait_ready(Duration::from_secs(30), || {
                let probe = http.get(format!("{url}/status")).send();
                async move { probe.await.is_ok() }
            })
            .await?;
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
            format!("--user-data-dir={}", profile.path().display()),
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
        Ok(Browser {
            client: Some(client),
            _driver: driver,
            _profile: profile,
        })
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
