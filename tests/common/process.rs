//! The real `paydesk` binary as a process (a command, or `paydesk serve` killed when
//! dropped), free ports, and waiting for something to become true.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A port nobody is listening on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn paydesk_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_paydesk"))
}

/// `paydesk` with a clean environment pointing at `database_url`.
pub fn paydesk_command(database_url: &str) -> Command {
    let mut cmd = Command::new(paydesk_bin());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PAYDESK_DATABASE_URL", database_url)
        .env(
            "PAYDESK_SECRET_KEY",
            "3f1c9a7e5b2d4f6081a3c5e7092b4d6f8a1c3e5072b4d6f8091a2b3c4d5e6f70",
        )
        .env("RUST_LOG", "warn")
        // Tests' sandboxes and listeners are on this machine (loopback is never allowed in
        // the release profile).
        .env(
            "PAYDESK_PLATFORM_HOSTS",
            "publicapi.payments.service.gov.uk,publicapi.example,127.0.0.1,localhost",
        )
        .env(
            "PAYDESK_AUDIT_CHECKPOINT_DIR",
            std::env::temp_dir().join("paydesk-test-checkpoints"),
        )
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// A `paydesk serve` process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(database_url: &str, extra_env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut cmd = paydesk_command(database_url);
        cmd.arg("serve")
            .env("PAYDESK_PORT", port.to_string())
            .env("PAYDESK_ADDRESS", "127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start paydesk serve");
        let server = Server { child, port };
        server.wait_healthy(Duration::from_secs(30));
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    fn wait_healthy(&self, limit: Duration) {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                use std::io::{Read, Write};
                let _ = stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n");
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "paydesk did not become healthy on port {} within {:?}",
            self.port, limit
        );
    }

    /// `kill -9`: no shutdown hooks, no chance to tidy up.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                panic!("paydesk did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `check` until it returns Some or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether something listens on `port` on this machine within `limit`.
pub fn wait_for_port(port: u16, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// `paydesk` with `args` on `database_url`, as an operator would run it; it must succeed
/// (a failure shows its error output). Its output, for what it printed.
pub fn paydesk_ok(database_url: &str, args: &[&str]) -> Output {
    let out = paydesk_command(database_url)
        .args(args)
        .output()
        .expect("run paydesk");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
