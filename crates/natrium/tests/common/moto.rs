//! A real S3-compatible server for the object-storage tests: moto in server mode
//! (`moto_server`, pinned in tests/python/requirements.txt), spawned per test on a free
//! loopback port and killed when dropped. `MOTO_SERVER_BIN` names the binary;
//! scripts/test.sh (CI) always sets it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The moto server binary, or `None` (with a notice) in a dev run without it.
pub fn moto_bin() -> Option<PathBuf> {
    match std::env::var_os("MOTO_SERVER_BIN") {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "MOTO_SERVER_BIN={} does not exist (pip install -r tests/python/requirements.txt)",
                p.display()
            );
            Some(p)
        }
        None => {
            eprintln!(
                "MOTO_SERVER_BIN is not set: s3 backup tests not run (scripts/test.sh sets it)"
            );
            None
        }
    }
}

/// A moto S3 server on a free loopback port.
pub struct Moto {
    /// The moto_server process (killed on drop).
    child: Child,
    /// Its loopback port.
    pub port: u16,
}

impl Moto {
    /// Start it; `auth` makes it check credentials (it knows none, so every signed
    /// request is refused: what wrong credentials look like).
    pub fn start(bin: &Path, auth: bool) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if auth {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let m = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        m
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A plain HTTP request (moto without auth takes unsigned ones); status and body.
    /// Retried on connection errors for a few seconds: a moto that has just started
    /// (several at once on a busy machine) may reset its first connections. Only for
    /// requests that may be repeated (all callers: bucket creation and listings).
    pub fn http(&self, method: &str, path: &str) -> (u16, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let resp = loop {
            match self.try_http(method, path) {
                Ok(resp) => break resp,
                Err(e) => {
                    assert!(Instant::now() < deadline, "{method} {path} on moto: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        };
        let status = resp
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = resp
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (status, body)
    }

    /// One attempt of [`Moto::http`]: the raw response.
    fn try_http(&self, method: &str, path: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        Ok(resp)
    }

    pub fn create_bucket(&self, name: &str) {
        let (st, body) = self.http("PUT", &format!("/{name}"));
        assert_eq!(st, 200, "create bucket {name}: {body}");
    }

    /// Multipart uploads in progress (started, neither completed nor aborted).
    pub fn uploads(&self, bucket: &str) -> usize {
        let (st, body) = self.http("GET", &format!("/{bucket}?uploads"));
        assert_eq!(st, 200, "{body}");
        body.matches("<UploadId>").count()
    }

    /// A signed S3 client for `bucket` (moto refuses unsigned reads of objects).
    pub fn store(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .build()
            .unwrap()
    }

    /// Keys below `prefix`.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (st, body) = self.http("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"));
        assert_eq!(st, 200, "{body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// The AWS variables that point the CLI at this server.
    pub fn aws_env(&self) -> [(&'static str, String); 4] {
        [
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }
}
