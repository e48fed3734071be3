//! A throwaway `redis-server` for tests and benchmarks: started on a free
//! local port with no persistence, ready when it answers `PING`, killed
//! when dropped.
//!
//! ```no_run
//! use cdp_store::online::redis::server::RedisServer;
//!
//! let server = RedisServer::start().unwrap().expect("redis-server is installed");
//! assert!(server.url().starts_with("redis://127.0.0.1:")); // a free port, database 0
//! ```

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A running `redis-server`, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
}

/// Whether the `redis-server` binary can be run.
pub fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`;
    /// `Ok(None)` when `redis-server` is not installed.
    pub fn start() -> std::io::Result<Option<RedisServer>> {
        if !installed() {
            return Ok(None);
        }
        let mut last = None;
        // A port found free can be taken before the server binds it: try a few.
        for _ in 0..3 {
            match Self::start_once() {
                Ok(server) => return Ok(Some(server)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("redis-server did not start")))
    }

    fn start_once() -> std::io::Result<RedisServer> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        // Killed on drop, also when it never becomes ready.
        let mut server = RedisServer { child, port };
        server.wait_ready()?;
        Ok(server)
    }

    /// Waits for the "Ready to accept connections" log line, then for a
    /// `PONG`, both within [`READY_WITHIN`].
    fn wait_ready(&mut self) -> std::io::Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        if let Some(stdout) = self.child.stdout.take() {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("Ready to accept connections") {
                        let _ = tx.send(());
                    }
                }
            });
            let left = deadline.saturating_duration_since(Instant::now());
            if rx.recv_timeout(left).is_err() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("redis-server on port {} did not become ready", self.port),
                ));
            }
        }
        let client = redis::Client::open(self.url()).map_err(std::io::Error::other)?;
        loop {
            let pong: Result<String, _> = client
                .get_connection_with_timeout(Duration::from_millis(500))
                .and_then(|mut c| redis::cmd("PING").query(&mut c));
            match pong {
                Ok(p) if p == "PONG" => return Ok(()),
                _ if Instant::now() >= deadline => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("redis-server on port {} does not answer PING", self.port),
                    ));
                }
                _ => std::thread::yield_now(),
            }
        }
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        self.url_db(0)
    }

    /// `redis://127.0.0.1:<port>/<db>`.
    pub fn url_db(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
