//! Starts chromedriver and a headless Chromium, opens pages and runs axe-core on them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

use crate::common::free_port;

const AXE_TAGS: [&str; 5] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];

pub struct Browser {
    pub client: Client,
    driver: Child,
    axe_source: String,
    _profile: tempfile::TempDir,
}

fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Whether a missing browser must fail the run rather than skip it.
fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("PAYDESK_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

impl Browser {
    /// A running browser, or None (after saying why) when the tools are not installed and
    /// this is not CI.
    pub async fn start() -> Option<Browser> {
        let chromedriver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
        let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
        let axe_path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/tools/node_modules/axe-core/axe.min.js");
        let missing: Vec<&str> = [
            (
                chromedriver.is_none(),
                "chromedriver (Debian package chromium-driver)",
            ),
            (chromium.is_none(), "chromium (Debian package chromium)"),
            (!axe_path.exists(), "axe-core (npm ci --prefix tests/tools)"),
        ]
        .into_iter()
        .filter_map(|(gone, what)| gone.then_some(what))
        .collect();
        if !missing.is_empty() {
            let message = format!(
                "browser tests need {}; .ci/run installs them",
                missing.join(", ")
            );
            if required() {
                panic!("{message}");
            }
            eprintln!("SKIPPED browser test: {message}");
            return None;
        }
        let (chromedriver, chromium) = (chromedriver?, chromium?);
        let axe_source = std::fs::read_to_string(&axe_path).expect("read axe-core");

        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("a browser profile folder");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-quic", "--no-first-run", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("connect to chromedriver");
        Some(Browser {
            client,
            driver,
            axe_source,
            _profile: profile,
        })
    }

    pub async fn screenshot(&self, name: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
            let _ = std::fs::create_dir_all(&folder);
            let _ = std::fs::write(folder.join(format!("{name}.png")), png);
        }
    }

    /// Run axe-core with the WCAG 2.2 A/AA tags on the current page.
    pub async fn axe_violations(&self) -> Vec<Value> {
        self.client
            .execute(&format!("{};\nreturn typeof axe;", self.axe_source), vec![])
            .await
            .expect("inject axe-core");
        let script = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, { runOnly: { type: 'tag', values: arguments[0] }, resultTypes: ['violations'] })
              .then(r => done(JSON.stringify(r.violations.map(v => ({
                  id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.map(n => n.target.join(' ') + ' :: ' + (n.failureSummary || ''))
              })))))
              .catch(e => done(JSON.stringify([{ id: 'axe-error', help: String(e) }])));
        "#;
        let result = self
            .client
            .execute_async(script, vec![json!(AXE_TAGS)])
            .await
            .expect("run axe-core");
        serde_json::from_str(result.as_str().unwrap_or("[]")).unwrap_or_default()
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// Fail with a readable list of what axe found.
pub fn assert_no_violations(page: &str, violations: &[Value]) {
    if violations.is_empty() {
        return;
    }
    let mut report = format!(
        "axe found {} WCAG 2.2 A/AA violation(s) on {page}:\n",
        violations.len()
    );
    for v in violations {
        report.push_str(&format!("- {} ({}): {}\n", v["id"], v["impact"], v["help"]));
        for n in v["nodes"].as_array().into_iter().flatten() {
            report.push_str(&format!("    {}\n", n.as_str().unwrap_or_default()));
        }
    }
    panic!("{report}");
}
