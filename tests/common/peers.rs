//! Real peer processes: an SMTP server and an OpenID provider, skipped (or, under CI,
//! failed) when their tools are not installed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::{free_port, wait_for_port};

/// Whether a missing test tool must fail the run (CI) rather than skip the test.
pub fn tools_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("PAYDESK_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

fn skip_or_fail(what: &str) -> Option<std::convert::Infallible> {
    if tools_required() {
        panic!("{what} is required under CI=true but is not available");
    }
    eprintln!("skipping: {what} is not available (set CI=true to make this a failure)");
    None
}

/// A real SMTP server (Python's aiosmtpd) that stores what it receives in a maildir.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// None (the test skips) when no Python with aiosmtpd is installed, outside CI.
    pub fn start() -> Option<SmtpServer> {
        let candidates = [
            std::env::var("PAYDESK_TEST_PYTHON").unwrap_or_default(),
            "/usr/bin/python3".to_string(),
            "python3".to_string(),
        ];
        let python = candidates.into_iter().filter(|p| !p.is_empty()).find(|p| {
            Command::new(p)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        let Some(python) = python else {
            skip_or_fail("python3 with aiosmtpd (Debian package python3-aiosmtpd)")?;
            return None;
        };
        let dir = tempfile::tempdir().expect("maildir");
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("maildir folders");
        }
        let port = free_port();
        let child = Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let server = SmtpServer { child, port, dir };
        assert!(
            wait_for_port(port, Duration::from_secs(20)),
            "aiosmtpd did not start"
        );
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, as raw RFC 5322 text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.dir.path().join(sub)) {
                for e in entries.flatten() {
                    if let Ok(text) = std::fs::read_to_string(e.path()) {
                        out.push(text);
                    }
                }
            }
        }
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Undo quoted-printable soft line breaks and `=3D`, enough to find links in a message.
pub fn unfold_quoted_printable(text: &str) -> String {
    text.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// A real OpenID Connect provider (tests/tools/oidc-provider.mjs on oauth2-mock-server),
/// with a control port to choose what its next ID tokens say.
pub struct OidcProvider {
    child: Child,
    pub port: u16,
    pub control_port: u16,
}

impl OidcProvider {
    pub fn start() -> Option<OidcProvider> {
        use std::io::BufRead;
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let script = root.join("tests/tools/oidc-provider.mjs");
        let installed = root
            .join("tests/tools/node_modules/oauth2-mock-server")
            .exists();
        let node_ok = Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed || !node_ok {
            skip_or_fail("node with tests/tools installed (npm ci --prefix tests/tools)")?;
            return None;
        }
        let mut child = Command::new("node")
            .arg(script)
            .args(["--port", "0", "--control-port", "0", "--exit-with-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the OpenID provider");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("READY line");
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(parts.first(), Some(&"READY"), "provider said {line:?}");
        let port = parts[1].parse().expect("port");
        let control_port = parts[2].parse().expect("control port");
        Some(OidcProvider {
            child,
            port,
            control_port,
        })
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Set what the next ID tokens say (see the script's header for the fields).
    pub async fn scenario(&self, scenario: serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/scenario", self.control_port))
            .json(&scenario)
            .send()
            .await
            .expect("control API");
        assert!(
            r.status().is_success(),
            "scenario refused: {:?}",
            r.text().await
        );
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
