//! Global connection options and how they become an async-nats connection.
//!
//! Every subcommand talks to a server, and users expect the same flags and
//! environment variables as the `nats` CLI (`-s`, `--user`, `--creds`,
//! `NATS_URL`, ...) to work in front of or after any subcommand. Keeping
//! them in one flattened, global clap struct, and the translation to
//! [`async_nats::ConnectOptions`] in one place, means a new subcommand gets
//! authentication, timeouts and multi-server URLs for free, and a fix to
//! one of them applies everywhere.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, ServerAddr};
use clap::Args;

use crate::error::{Error, Result};
use crate::units::parse_duration;

/// Flags that say which server to reach and how to authenticate.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Connection options")]
pub struct ConnectArgs {
    /// NATS server URL(s), comma separated (e.g. nats://127.0.0.1:4222).
    #[arg(
        short = 's',
        long = "server",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true,
        value_name = "URL"
    )]
    pub server: String,

    /// Username for user/password authentication.
    #[arg(long, env = "NATS_USER", global = true)]
    pub user: Option<String>,

    /// Password for user/password authentication (needs --user).
    #[arg(
        long,
        env = "NATS_PASSWORD",
        hide_env_values = true,
        global = true,
        requires = "user"
    )]
    pub password: Option<String>,

    /// Authentication token.
    #[arg(
        long,
        env = "NATS_TOKEN",
        hide_env_values = true,
        global = true,
        conflicts_with = "user"
    )]
    pub token: Option<String>,

    /// User credentials file (JWT + nkey seed), as made by nsc.
    #[arg(long, env = "NATS_CREDS", global = true, value_name = "FILE")]
    pub creds: Option<PathBuf>,

    /// File holding a user nkey seed (SU...).
    #[arg(
        long,
        env = "NATS_NKEY",
        global = true,
        value_name = "FILE",
        conflicts_with = "creds"
    )]
    pub nkey: Option<PathBuf>,

    /// Time to wait for the connection handshake and for each response
    /// (e.g. 5s, 500ms).
    #[arg(
        long,
        env = "NATS_TIMEOUT",
        default_value = "5s",
        value_parser = parse_duration,
        global = true,
        value_name = "DURATION"
    )]
    pub timeout: Duration,
}

impl ConnectArgs {
    /// Parses `--server` into a list of server addresses.
    ///
    /// Done up front so that a typo is reported as such, not as a failed
    /// connection.
    pub fn servers(&self) -> Result<Vec<ServerAddr>> {
        let servers: Vec<ServerAddr> = self
            .server
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ServerAddr>().map_err(|e| Error::InvalidServer {
                    url: s.to_string(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_>>()?;
        if servers.is_empty() {
            return Err(Error::InvalidServer {
                url: self.server.clone(),
                reason: "no server given".into(),
            });
        }
        Ok(servers)
    }

    /// Builds connect options carrying authentication and timeouts.
    ///
    /// Callers add their own tuning (name, buffer sizes, event callbacks)
    /// on top of the result before connecting.
    pub async fn options(&self) -> Result<ConnectOptions> {
        let mut opts = match &self.creds {
            Some(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|source| Error::ReadFile {
                    what: "credentials",
                    path: path.clone(),
                    source,
                })?,
            None => ConnectOptions::new(),
        };
        if let Some(path) = &self.nkey {
            let seed = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
                what: "nkey seed",
                path: path.clone(),
                source,
            })?;
            opts = opts.nkey(seed.trim().to_string());
        }
        if let Some(token) = &self.token {
            opts = opts.token(token.clone());
        }
        if let Some(user) = &self.user {
            opts = opts.user_and_password(user.clone(), self.password.clone().unwrap_or_default());
        }
        Ok(opts
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout)))
    }

    /// Connects with `opts` (normally from [`ConnectArgs::options`]) to the
    /// configured servers.
    ///
    /// Connection failures are returned at once rather than retried: a
    /// command-line tool should say "cannot connect" promptly, not hang.
    pub async fn connect_with(&self, opts: ConnectOptions) -> Result<Client> {
        let servers = self.servers()?;
        opts.connect(servers)
            .await
            .map_err(|source| Error::Connect {
                server: self.server.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(server: &str) -> ConnectArgs {
        ConnectArgs {
            server: server.into(),
            user: None,
            password: None,
            token: None,
            creds: None,
            nkey: None,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn server_lists() {
        assert_eq!(args("nats://127.0.0.1:4222").servers().unwrap().len(), 1);
        assert_eq!(
            args("nats://127.0.0.1:4222, 127.0.0.1:4223")
                .servers()
                .unwrap()
                .len(),
            2
        );
        assert!(args(" , ").servers().is_err());
        assert!(args("nats://[bad").servers().is_err());
    }

    #[tokio::test]
    async fn missing_creds_file_is_a_clear_error() {
        let mut a = args("nats://127.0.0.1:4222");
        a.creds = Some("/nonexistent/natrium-test.creds".into());
        let err = a.options().await.expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("credentials"), "{msg}");
        assert!(msg.contains("/nonexistent/natrium-test.creds"), "{msg}");
    }
}
