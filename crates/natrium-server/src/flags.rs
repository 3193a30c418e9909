//! Command-line flags, parsed the way Go's `flag` package parses nats-server's.
//!
//! Test harnesses, embedded-server helpers and CI scripts start `nats-server` with Go flag
//! syntax, so we accept exactly that syntax rather than a getopt-style parser:
//! - `-x` and `--x` are the same flag, and multi-letter names take one dash (`-js`, `-sd`);
//! - values go as `-p 4222` or `-p=4222`; the next argument is always the value, even if
//!   it starts with a dash (`-p -1` is a random port);
//! - boolean flags take no separate value (`-D`), but accept `-T=false`;
//! - parsing stops at `--` or at the first argument that is not a flag.
//!
//! The result records only what was given, so flags can override the config file without
//! clobbering values the file set.

use std::path::PathBuf;

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `-flag` or `-flag=true|false`.
    Bool,
    /// `-flag value` or `-flag=value`.
    Value,
}

/// Everything the command line can say. `None` means "not given".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flags {
    /// `-c/--config`.
    pub config: Option<PathBuf>,
    /// `-t`: check the config and exit.
    pub test_config: bool,
    /// `-sl/--signal <cmd>[=<pid|pidfile>]`.
    pub signal: Option<String>,
    /// `-h/--help`.
    pub help: bool,
    /// `-v/--version`.
    pub version: bool,
    /// `-a/--addr/--net`.
    pub host: Option<String>,
    /// `-p/--port`.
    pub port: Option<i32>,
    /// `-n/--name/--server_name`.
    pub server_name: Option<String>,
    /// `-P/--pid`.
    pub pid_file: Option<PathBuf>,
    /// `-m/--http_port`.
    pub http_port: Option<i32>,
    /// `-ms/--https_port`.
    pub https_port: Option<i32>,
    /// `--ports_file_dir`.
    pub ports_file_dir: Option<PathBuf>,
    /// `--client_advertise`.
    pub client_advertise: Option<String>,
    /// `-l/--log`.
    pub log_file: Option<PathBuf>,
    /// `-T/--logtime`.
    pub logtime: Option<bool>,
    /// `--logtime_utc`.
    pub logtime_utc: Option<bool>,
    /// `-D/--debug` (also set by `-DV`, `-DVV`).
    pub debug: Option<bool>,
    /// `-V/--trace` (also set by `-VV`, `-DV`, `-DVV`).
    pub trace: Option<bool>,
    /// `-VV`, `-DVV`.
    pub trace_verbose: Option<bool>,
    /// `--log_size_limit`.
    pub log_size_limit: Option<i64>,
    /// `--max_traced_msg_len`.
    pub max_traced_msg_len: Option<i64>,
    /// `-js/--jetstream`.
    pub jetstream: Option<bool>,
    /// `-sd/--store_dir`.
    pub store_dir: Option<PathBuf>,
    /// `--user`.
    pub user: Option<String>,
    /// `--pass`.
    pub pass: Option<String>,
    /// `--auth`.
    pub auth_token: Option<String>,
    /// `--tls` as given: `Some(false)` (`--tls=false`) turns TLS off, config file too.
    pub tls: Option<bool>,
    /// `--tlscert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tlskey`.
    pub tls_key: Option<PathBuf>,
    /// `--tlscacert`.
    pub tls_ca: Option<PathBuf>,
    /// `--tlsverify`.
    pub tls_verify: Option<bool>,
    /// Flags nats-server knows that we accept but do not act on (cluster, syslog…),
    /// reported as warnings.
    pub unsupported: Vec<String>,
    /// Arguments left after the flags.
    pub rest: Vec<String>,
}

/// A bad command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// A flag that nats-server does not have.
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    /// A value flag at the end of the arguments.
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    /// Flags that do not fit together (nats-server's wording).
    #[error("{0}")]
    Conflict(String),
    /// A value that does not parse.
    #[error("invalid value {value:?} for flag -{flag}: {reason}")]
    BadValue {
        /// The flag.
        flag: String,
        /// What was given.
        value: String,
        /// Why it is bad.
        reason: String,
    },
}

/// Flag names (without dashes), their kind, and the canonical name we act on.
const FLAGS: &[(&str, Kind, &str)] = &[
    ("c", Kind::Value, "config"),
    ("config", Kind::Value, "config"),
    ("t", Kind::Bool, "t"),
    ("sl", Kind::Value, "signal"),
    ("signal", Kind::Value, "signal"),
    ("h", Kind::Bool, "help"),
    ("help", Kind::Bool, "help"),
    ("help_tls", Kind::Bool, "help"),
    ("v", Kind::Bool, "version"),
    ("version", Kind::Bool, "version"),
    ("a", Kind::Value, "addr"),
    ("addr", Kind::Value, "addr"),
    ("net", Kind::Value, "addr"),
    ("p", Kind::Value, "port"),
    ("port", Kind::Value, "port"),
    ("n", Kind::Value, "name"),
    ("name", Kind::Value, "name"),
    ("server_name", Kind::Value, "name"),
    ("P", Kind::Value, "pid"),
    ("pid", Kind::Value, "pid"),
    ("m", Kind::Value, "http_port"),
    ("http_port", Kind::Value, "http_port"),
    ("ms", Kind::Value, "https_port"),
    ("https_port", Kind::Value, "https_port"),
    ("ports_file_dir", Kind::Value, "ports_file_dir"),
    ("client_advertise", Kind::Value, "client_advertise"),
    ("l", Kind::Value, "log"),
    ("log", Kind::Value, "log"),
    ("T", Kind::Bool, "logtime"),
    ("logtime", Kind::Bool, "logtime"),
    ("logtime_utc", Kind::Bool, "logtime_utc"),
    ("s", Kind::Bool, "syslog"),
    ("syslog", Kind::Bool, "syslog"),
    ("r", Kind::Value, "remote_syslog"),
    ("remote_syslog", Kind::Value, "remote_syslog"),
    ("D", Kind::Bool, "debug"),
    ("debug", Kind::Bool, "debug"),
    ("V", Kind::Bool, "trace"),
    ("trace", Kind::Bool, "trace"),
    ("VV", Kind::Bool, "VV"),
    ("DV", Kind::Bool, "DV"),
    ("DVV", Kind::Bool, "DVV"),
    ("log_size_limit", Kind::Value, "log_size_limit"),
    ("max_traced_msg_len", Kind::Value, "max_traced_msg_len"),
    ("js", Kind::Bool, "jetstream"),
    ("jetstream", Kind::Bool, "jetstream"),
    ("sd", Kind::Value, "store_dir"),
    ("store_dir", Kind::Value, "store_dir"),
    ("user", Kind::Value, "user"),
    ("pass", Kind::Value, "pass"),
    ("auth", Kind::Value, "auth"),
    ("tls", Kind::Bool, "tls"),
    ("tlscert", Kind::Value, "tlscert"),
    ("tlskey", Kind::Value, "tlskey"),
    ("tlsverify", Kind::Bool, "tlsverify"),
    ("tlscacert", Kind::Value, "tlscacert"),
    ("routes", Kind::Value, "unsupported"),
    ("cluster", Kind::Value, "unsupported"),
    ("cluster_listen", Kind::Value, "unsupported"),
    ("cluster_name", Kind::Value, "unsupported"),
    ("no_advertise", Kind::Bool, "unsupported"),
    ("cluster_advertise", Kind::Value, "unsupported"),
    ("connect_retries", Kind::Value, "unsupported"),
    ("profile", Kind::Value, "unsupported"),
];

/// Parse Go's boolean spellings.
fn parse_bool(flag: &str, v: &str) -> Result<bool, FlagError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(FlagError::BadValue {
            flag: flag.to_string(),
            value: v.to_string(),
            reason: "parse error".to_string(),
        }),
    }
}

fn parse_int<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, FlagError> {
    v.trim().parse::<T>().map_err(|_| FlagError::BadValue {
        flag: flag.to_string(),
        value: v.to_string(),
        reason: "parse error".to_string(),
    })
}

impl Flags {
    /// Parse arguments (without the program name).
    pub fn parse<I, S>(args: I) -> Result<Flags, FlagError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        let mut f = Flags::default();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            if arg == "--" {
                f.rest.extend(args[i + 1..].iter().cloned());
                break;
            }
            if !arg.starts_with('-') || arg == "-" {
                f.rest.extend(args[i..].iter().cloned());
                break;
            }
            let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let Some(&(_, kind, canon)) = FLAGS.iter().find(|(n, _, _)| *n == name) else {
                return Err(FlagError::Unknown(name.to_string()));
            };
            let value = match kind {
                Kind::Bool => inline.unwrap_or_else(|| "true".to_string()),
                Kind::Value => match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        args.get(i)
                            .cloned()
                            .ok_or_else(|| FlagError::MissingValue(name.to_string()))?
                    }
                },
            };
            f.set(name, canon, &value)?;
            i += 1;
        }
        if f.tls_override() {
            if f.tls_cert.is_none() {
                return Err(FlagError::Conflict(
                    "TLS Server certificate must be present and valid".into(),
                ));
            }
            if f.tls_key.is_none() {
                return Err(FlagError::Conflict(
                    "TLS Server private key must be present and valid".into(),
                ));
            }
        }
        Ok(f)
    }

    /// Whether the `--tls*` flags replace the config file's TLS: as nats-server, any of
    /// them does, unless `--tls=false` turns TLS off altogether.
    fn tls_override(&self) -> bool {
        self.tls != Some(false)
            && (self.tls == Some(true)
                || self.tls_cert.is_some()
                || self.tls_key.is_some()
                || self.tls_ca.is_some()
                || self.tls_verify.is_some())
    }

    fn set(&mut self, name: &str, canon: &str, v: &str) -> Result<(), FlagError> {
        match canon {
            "config" => self.config = Some(PathBuf::from(v)),
            "t" => self.test_config = parse_bool(name, v)?,
            "signal" => self.signal = Some(v.to_string()),
            "help" => self.help = parse_bool(name, v)?,
            "version" => self.version = parse_bool(name, v)?,
            "addr" => self.host = Some(v.to_string()),
            "port" => self.port = Some(parse_int(name, v)?),
            "name" => self.server_name = Some(v.to_string()),
            "pid" => self.pid_file = Some(PathBuf::from(v)),
            "http_port" => self.http_port = Some(parse_int(name, v)?),
            "https_port" => self.https_port = Some(parse_int(name, v)?),
            "ports_file_dir" => self.ports_file_dir = Some(PathBuf::from(v)),
            "client_advertise" => self.client_advertise = Some(v.to_string()),
            "log" => self.log_file = Some(PathBuf::from(v)),
            "logtime" => self.logtime = Some(parse_bool(name, v)?),
            "logtime_utc" => self.logtime_utc = Some(parse_bool(name, v)?),
            "debug" => self.debug = Some(parse_bool(name, v)?),
            "trace" => self.trace = Some(parse_bool(name, v)?),
            "VV" => {
                let b = parse_bool(name, v)?;
                self.trace = Some(b);
                self.trace_verbose = Some(b);
            }
            "DV" => {
                let b = parse_bool(name, v)?;
                self.debug = Some(b);
                self.trace = Some(b);
            }
            "DVV" => {
                let b = parse_bool(name, v)?;
                self.debug = Some(b);
                self.trace = Some(b);
                self.trace_verbose = Some(b);
            }
            "log_size_limit" => self.log_size_limit = Some(parse_int(name, v)?),
            "max_traced_msg_len" => self.max_traced_msg_len = Some(parse_int(name, v)?),
            "jetstream" => self.jetstream = Some(parse_bool(name, v)?),
            "store_dir" => self.store_dir = Some(PathBuf::from(v)),
            "user" => self.user = Some(v.to_string()),
            "pass" => self.pass = Some(v.to_string()),
            "auth" => self.auth_token = Some(v.to_string()),
            "tls" => self.tls = Some(parse_bool(name, v)?),
            "tlscert" => self.tls_cert = Some(PathBuf::from(v)),
            "tlskey" => self.tls_key = Some(PathBuf::from(v)),
            "tlscacert" => self.tls_ca = Some(PathBuf::from(v)),
            "tlsverify" => self.tls_verify = Some(parse_bool(name, v)?),
            _ => self.unsupported.push(format!("-{name}")),
        }
        Ok(())
    }

    /// Apply the given flags over options from defaults and the config file (start and
    /// reload both merge here).
    pub fn apply(&self, o: &mut crate::options::Options) {
        if let Some(h) = &self.host {
            o.host = h.clone();
        }
        // An empty host, from `-a ""` or the file's `host: ""`, is the default host, as
        // nats-server's baseline options make it (its INFO then says `0.0.0.0`).
        if o.host.is_empty() {
            o.host = "0.0.0.0".into();
        }
        if let Some(p) = self.port {
            o.port = p;
        }
        // Port 0 (`-p 0`, `port: 0`, `listen: h:0`) is the default port, as nats-server's
        // baseline options make it; `-1` asks for a random one.
        if o.port == 0 {
            o.port = crate::options::DEFAULT_PORT;
        }
        if let Some(n) = &self.server_name {
            o.server_name = Some(n.clone());
        }
        // An empty name is no name: the server's id stands in, as in nats-server.
        if o.server_name.as_deref() == Some("") {
            o.server_name = None;
        }
        if let Some(p) = &self.pid_file {
            o.pid_file = Some(p.clone());
        }
        if let Some(p) = self.http_port {
            o.http_port = p;
        }
        if let Some(p) = self.https_port {
            o.https_port = p;
        }
        if let Some(d) = &self.ports_file_dir {
            o.ports_file_dir = Some(d.clone());
        }
        if let Some(l) = &self.log_file {
            o.log.log_file = Some(l.clone());
        }
        if let Some(b) = self.logtime {
            o.log.logtime = b;
        }
        if let Some(b) = self.logtime_utc {
            o.log.logtime_utc = b;
        }
        if let Some(b) = self.debug {
            o.log.debug = b;
        }
        if let Some(b) = self.trace {
            o.log.trace = b;
        }
        if let Some(b) = self.trace_verbose {
            o.log.trace_verbose = b;
        }
        if let Some(n) = self.log_size_limit {
            o.log.log_size_limit = n;
        }
        if let Some(n) = self.max_traced_msg_len {
            o.log.max_traced_msg_len = n;
        }
        if let Some(b) = self.jetstream {
            o.jetstream.enabled = b;
        }
        if let Some(d) = &self.store_dir {
            o.jetstream.store_dir = Some(d.clone());
        }
        if let Some(u) = &self.user {
            o.auth.user = Some(u.clone());
            o.auth.token = None;
        }
        if let Some(p) = &self.pass {
            o.auth.password = Some(p.clone());
        }
        if let Some(t) = &self.auth_token {
            o.auth.token = Some(t.clone());
        }
        if self.tls == Some(false) {
            o.tls = None;
        } else if self.tls_override() {
            // The certificate, key, CA and verify come from the flags; the file's other
            // TLS settings (timeout, handshake_first, min_version) stay.
            let mut t = o.tls.take().unwrap_or_default();
            t.cert_file = self.tls_cert.clone();
            t.key_file = self.tls_key.clone();
            t.ca_file = self.tls_ca.clone();
            t.verify = self.tls_verify.unwrap_or(false);
            o.tls = Some(t);
        }
        for u in &self.unsupported {
            o.warnings.push(format!(
                "flag {u} is not supported by natrium-server and is ignored"
            ));
        }
    }
}

/// The `--help` text, in nats-server's layout.
pub const USAGE: &str = "\
Usage: natrium-server [options]

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Use port for clients (default: 4222; -1 for random)
    -n, --name
        --server_name <server_name>  Server name (default: auto)
    -P, --pid <file>                 File to store PID
    -m, --http_port <port>           Use port for http monitoring
    -ms,--https_port <port>          Use port for https monitoring
    -c, --config <file>              Configuration file
    -t                               Test configuration and exit
    -sl,--signal <signal>[=<pid>]    Send signal to natrium-server process (ldm, stop, quit, term, reopen, reload)
                                     <pid> can be either a PID (e.g. 1) or the path to a PID file (e.g. /var/run/natrium-server.pid)
        --client_advertise <string>  Client URL to advertise to other servers
        --ports_file_dir <dir>       Creates a ports file in the specified directory (<executable_name>_<pid>.ports).

Logging Options:
    -l, --log <file>                 File to redirect log output
    -T, --logtime                    Timestamp log entries (default: true)
        --logtime_utc                Timestamps in UTC instead of local timezone (default: false)
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -VV                              Verbose trace (traces system account as well)
    -DV                              Debug and trace
    -DVV                             Debug and verbose trace (traces system account as well)
        --log_size_limit <limit>     Logfile size limit (default: auto)
        --max_traced_msg_len <len>   Maximum printable length for traced messages (default: unlimited)

JetStream Options:
    -js, --jetstream                 Enable JetStream functionality
    -sd, --store_dir <dir>           Set the storage directory

Authorization Options:
        --user <user>                User required for connections
        --pass <password>            Password required for connections
        --auth <token>               Authorization token required for connections

TLS Options:
        --tls                        Enable TLS, do not verify clients (default: false)
        --tlscert <file>             Server certificate file
        --tlskey <file>              Private key for server certificate
        --tlsverify                  Enable TLS, verify client certificates
        --tlscacert <file>           Client certificate CA for verification

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_flag_syntax() {
        let f = Flags::parse([
            "-p",
            "-1",
            "-sd=/tmp/x",
            "--js",
            "-DV",
            "-T=false",
            "-m",
            "8222",
        ])
        .unwrap();
        assert_eq!(f.port, Some(-1));
        assert_eq!(f.store_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(f.jetstream, Some(true));
        assert_eq!((f.debug, f.trace), (Some(true), Some(true)));
        assert_eq!(f.logtime, Some(false));
        assert_eq!(f.http_port, Some(8222));
    }

    #[test]
    fn stops_at_first_non_flag_and_double_dash() {
        let f = Flags::parse(["-D", "extra", "-V"]).unwrap();
        assert_eq!(f.debug, Some(true));
        assert_eq!(f.trace, None);
        assert_eq!(f.rest, vec!["extra", "-V"]);
        let f = Flags::parse(["--", "-V"]).unwrap();
        assert_eq!(f.trace, None);
    }

    #[test]
    fn errors() {
        assert_eq!(
            Flags::parse(["-bogus"]),
            Err(FlagError::Unknown("bogus".into()))
        );
        assert_eq!(
            Flags::parse(["-p"]),
            Err(FlagError::MissingValue("p".into()))
        );
        assert!(matches!(
            Flags::parse(["-p", "abc"]),
            Err(FlagError::BadValue { .. })
        ));
        assert!(matches!(
            Flags::parse(["-D=maybe"]),
            Err(FlagError::BadValue { .. })
        ));
    }

    #[test]
    fn flags_override_options() {
        let mut o = crate::options::Options {
            port: 1234,
            ..Default::default()
        };
        o.log.debug = true;
        let f =
            Flags::parse(["-p", "5678", "--user", "u", "--pass", "p", "--routes", "x"]).unwrap();
        f.apply(&mut o);
        assert_eq!(o.port, 5678);
        assert!(o.log.debug, "flags not given must not clobber the file");
        assert_eq!(o.auth.user.as_deref(), Some("u"));
        assert_eq!(o.warnings.len(), 1);
    }

    /// `-a ""` and the file's `host: ""` are nats-server's default host (its INFO says
    /// `0.0.0.0`), not an empty one.
    #[test]
    fn an_empty_host_is_the_default_host() {
        let mut o = crate::options::Options {
            host: "127.0.0.1".into(),
            ..Default::default()
        };
        Flags::parse(["-a", ""]).unwrap().apply(&mut o);
        assert_eq!(o.host, "0.0.0.0");
        Flags::parse(["-a", "::1"]).unwrap().apply(&mut o);
        assert_eq!(o.host, "::1");
        let mut from_file = crate::options::Options {
            host: String::new(),
            ..Default::default()
        };
        Flags::parse(["-p", "1"]).unwrap().apply(&mut from_file);
        assert_eq!(from_file.host, "0.0.0.0");
    }

    /// Port 0 is the default port and an empty server name none, as nats-server's
    /// baseline options make them.
    #[test]
    fn port_zero_is_the_default_port_and_an_empty_name_none() {
        let mut o = crate::options::Options {
            port: 0,
            server_name: Some(String::new()),
            ..Default::default()
        };
        Flags::default().apply(&mut o);
        assert_eq!((o.port, o.server_name.as_deref()), (4222, None));
        Flags::parse(["-p", "-1", "-n", "x"]).unwrap().apply(&mut o);
        assert_eq!((o.port, o.server_name.as_deref()), (-1, Some("x")));
        Flags::parse(["-p", "0"]).unwrap().apply(&mut o);
        assert_eq!(o.port, 4222);
    }

    #[test]
    fn tls_flags_replace_the_files_certificates_and_keep_its_timeout() {
        let mut o = crate::options::Options {
            tls: Some(crate::tls::TlsOptions {
                cert_file: Some("file.pem".into()),
                key_file: Some("file-key.pem".into()),
                verify: true,
                timeout: std::time::Duration::from_secs(5),
                ..Default::default()
            }),
            ..Default::default()
        };
        let f = Flags::parse(["--tlscert", "c.pem", "--tlskey=k.pem"]).unwrap();
        f.apply(&mut o);
        let t = o.tls.clone().unwrap();
        assert_eq!(t.cert_file, Some(PathBuf::from("c.pem")));
        assert_eq!(t.key_file, Some(PathBuf::from("k.pem")));
        assert!(!t.verify, "verify comes from the flags once they override");
        assert_eq!(t.timeout, std::time::Duration::from_secs(5));
        // `--tls=false` turns TLS off, whatever the file says.
        Flags::parse(["--tls=false", "--tlscert", "c.pem"])
            .unwrap()
            .apply(&mut o);
        assert_eq!(o.tls, None);
        // Without the flags the file's TLS stays.
        let mut o2 = crate::options::Options {
            tls: t.clone().into(),
            ..Default::default()
        };
        Flags::parse(["-p", "1"]).unwrap().apply(&mut o2);
        assert_eq!(o2.tls, Some(t));
    }

    #[test]
    fn tls_flags_need_a_certificate_and_a_key() {
        assert_eq!(
            Flags::parse(["--tls"]),
            Err(FlagError::Conflict(
                "TLS Server certificate must be present and valid".into()
            ))
        );
        assert_eq!(
            Flags::parse(["--tlsverify", "--tlscert", "c.pem"]),
            Err(FlagError::Conflict(
                "TLS Server private key must be present and valid".into()
            ))
        );
    }

    #[test]
    fn store_dir_alone_does_not_enable_jetstream() {
        // As nats-server: `-sd` sets the directory; `-js` turns JetStream on.
        let mut o = crate::options::Options::default();
        Flags::parse(["-sd", "/tmp/js"]).unwrap().apply(&mut o);
        assert!(!o.jetstream.enabled);
        assert_eq!(o.jetstream.store_dir, Some(PathBuf::from("/tmp/js")));
    }
}
