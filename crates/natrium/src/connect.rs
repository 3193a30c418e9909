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

/// Where `natrium` connects when nothing says otherwise.
pub const DEFAULT_SERVER: &str = "nats://127.0.0.1:4222";

/// Flags that say which server to reach and how to authenticate.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Connection options")]
pub struct ConnectArgs {
    /// NATS server URL(s), comma separated (e.g. nats://127.0.0.1:4222).
    /// Without it (and without NATS_URL), the selected context's server,
    /// else nats://127.0.0.1:4222.
    #[arg(
        short = 's',
        long = "server",
        env = "NATS_URL",
        global = true,
        value_name = "URL"
    )]
    pub server: Option<String>,

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

    /// TLS client certificate file (PEM), with --tlskey.
    #[arg(
        long,
        env = "NATS_CERT",
        global = true,
        value_name = "FILE",
        requires = "tlskey"
    )]
    pub tlscert: Option<PathBuf>,

    /// TLS client private key file (PEM), with --tlscert.
    #[arg(
        long,
        env = "NATS_KEY",
        global = true,
        value_name = "FILE",
        requires = "tlscert"
    )]
    pub tlskey: Option<PathBuf>,

    /// CA certificate file (PEM) to verify the server with.
    #[arg(long, env = "NATS_CA", global = true, value_name = "FILE")]
    pub tlsca: Option<PathBuf>,

    /// Start TLS before the server's greeting, for servers configured with
    /// `handshake_first`.
    #[arg(long, global = true)]
    pub tlsfirst: bool,

    /// Named context to take connection settings from (see `natrium
    /// context`); the selected one is used when not given.
    #[arg(long, env = "NATS_CONTEXT", global = true, value_name = "NAME")]
    pub context: Option<String>,

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
            .server_url()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ServerAddr>().map_err(|e| Error::InvalidServer {
                    url: redact_passwords(s),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_>>()?;
        if servers.is_empty() {
            return Err(Error::InvalidServer {
                url: redact_passwords(self.server_url()),
                reason: "no server given".into(),
            });
        }
        Ok(servers)
    }

    /// The server URL list in effect: `--server`/`NATS_URL`, else the
    /// context's (after [`ConnectArgs::apply_context`]), else the default.
    pub fn server_url(&self) -> &str {
        self.server.as_deref().unwrap_or(DEFAULT_SERVER)
    }

    /// Fills every connection setting not given by a flag or environment
    /// variable from the named context (`--context`), or from the selected
    /// one. An explicitly named context that does not exist is an error; no
    /// selected context is not.
    pub fn apply_context(&mut self) -> Result<()> {
        let ctx = match &self.context {
            Some(name) => Some(crate::cmd::context::load(name)?),
            None => crate::cmd::context::load_selected()?,
        };
        let Some(ctx) = ctx else { return Ok(()) };
        fn fill<T: Clone>(slot: &mut Option<T>, from: &Option<T>) {
            if slot.is_none() {
                slot.clone_from(from);
            }
        }
        fill(&mut self.server, &ctx.url);
        if self.token.is_none() && self.creds.is_none() && self.nkey.is_none() {
            fill(&mut self.user, &ctx.user);
        }
        if self.user == ctx.user {
            fill(&mut self.password, &ctx.password);
        }
        if self.user.is_none() {
            fill(&mut self.token, &ctx.token);
        }
        fill(&mut self.creds, &ctx.creds);
        if self.creds.is_none() {
            fill(&mut self.nkey, &ctx.nkey);
        }
        fill(&mut self.tlscert, &ctx.tlscert);
        fill(&mut self.tlskey, &ctx.tlskey);
        fill(&mut self.tlsca, &ctx.tlsca);
        Ok(())
    }

    /// Builds options and connects: the one-liner most commands use.
    pub async fn connect(&self) -> Result<Client> {
        let opts = self.options().await?.name("natrium");
        self.connect_with(opts).await
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
        } else if self.token.is_none() && self.creds.is_none() && self.nkey.is_none() {
            // Credentials in the URL (`nats://user:pass@host`, `nats://token@host`), as
            // the nats CLI takes them; async-nats itself does not read them.
            if let Some(addr) = self.servers()?.iter().find(|a| a.has_user_pass()) {
                let user = url_decode(addr.username().unwrap_or_default());
                opts = match addr.password() {
                    Some(pass) => opts.user_and_password(user, url_decode(pass)),
                    None => opts.token(user),
                };
            }
        }
        for (what, path) in [
            ("TLS certificate", &self.tlscert),
            ("TLS key", &self.tlskey),
            ("TLS CA", &self.tlsca),
        ] {
            if let Some(path) = path
                && let Err(source) = std::fs::metadata(path)
            {
                return Err(Error::ReadFile {
                    what,
                    path: path.clone(),
                    source,
                });
            }
        }
        if let Some(ca) = &self.tlsca {
            opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.tlscert, &self.tlskey) {
            opts = opts
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        if self.tlsfirst {
            opts = opts.tls_first();
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
                server: redact_passwords(self.server_url()),
                source,
            })
    }
}

/// Percent-decodes a URL's user or password (`p%40ss` is `p@ss`).
fn url_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A server list fit for a message: the credentials of each URL (a password, or a
/// token given as the user) shown as `xxxxx`; a user name with a password stays.
pub fn redact_passwords(urls: &str) -> String {
    urls.split(',')
        .map(|u| {
            let start = u.find("://").map_or(0, |i| i + 3);
            // The credentials end at the last `@` before the host: a password may hold
            // characters that would otherwise start the path.
            let Some(at) = u[start..].rfind('@') else {
                return u.to_string();
            };
            let userinfo = &u[start..start + at];
            let shown = match userinfo.find(':') {
                Some(c) => format!("{}:xxxxx", &userinfo[..c]),
                None => "xxxxx".to_string(),
            };
            format!("{}{shown}{}", &u[..start], &u[start + at..])
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_in_urls_are_redacted_for_messages() {
        use super::redact_passwords;
        assert_eq!(
            redact_passwords("nats://u:secret@127.0.0.1:4222,nats://127.0.0.1:4223"),
            "nats://u:xxxxx@127.0.0.1:4222,nats://127.0.0.1:4223"
        );
        assert_eq!(redact_passwords("tls://token@h:1/x"), "tls://xxxxx@h:1/x");
        assert_eq!(redact_passwords("nats://u:a/b@h"), "nats://u:xxxxx@h");
        assert_eq!(redact_passwords("h:4222"), "h:4222");
        assert_eq!(redact_passwords("nats://u:p@ss@h"), "nats://u:xxxxx@h");
        assert_eq!(super::url_decode("p%40ss%3A"), "p@ss:");
    }

    use super::*;

    fn args(server: &str) -> ConnectArgs {
        ConnectArgs {
            server: Some(server.into()),
            user: None,
            password: None,
            token: None,
            creds: None,
            nkey: None,
            tlscert: None,
            tlskey: None,
            tlsca: None,
            tlsfirst: false,
            context: None,
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
