//! Server options: every setting the server runs with, whatever its source.
//!
//! Options come from three places, applied in order: built-in defaults (nats-server's
//! `const.go` values), the config file (`-c`), then command-line flags, which always win.
//! Keeping one plain struct for the result means the rest of the server never asks where
//! a value came from, and a reload is "build a new `Options`, diff, apply".

use std::path::PathBuf;
use std::time::Duration;

/// Default client port.
pub const DEFAULT_PORT: i32 = 4222;
/// Default monitoring port when enabled with `-m` without a value.
pub const DEFAULT_HTTP_PORT: i32 = 8222;
/// Default `max_payload`: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD: i64 = 1024 * 1024;
/// Default `max_pending`: 64 MiB.
pub const DEFAULT_MAX_PENDING: i64 = 64 * 1024 * 1024;
/// Default `max_control_line`.
pub const DEFAULT_MAX_CONTROL_LINE: i64 = 4096;
/// Default `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: i64 = 64 * 1024;
/// Default `max_closed_clients`.
pub const DEFAULT_MAX_CLOSED_CLIENTS: i64 = 10_000;

/// The version string we report in INFO and `/varz`. Clients gate features on the server
/// version, so we report the nats-server release whose protocol we implement (see
/// `docs/compat.md`); our own version is in [`NATRIUM_VERSION`].
pub const NATS_COMPAT_VERSION: &str = "2.15.1";
/// Natrium's own version.
pub const NATRIUM_VERSION: &str = env!("CARGO_PKG_VERSION");
/// JetStream API level we report (`api_lvl`), as nats-server 2.15.1.
pub const API_LEVEL: i64 = 5;

/// All server settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Config file the options were read from, for reload and `/varz`.
    pub config_file: Option<PathBuf>,
    /// `sha256:<hex>` of the config file, as `/varz config_digest` shows.
    pub config_digest: Option<String>,
    /// Client listen host.
    pub host: String,
    /// Client port; `-1` picks a random free port, `0` as well for tests.
    pub port: i32,
    /// Server name; defaults to the server id.
    pub server_name: Option<String>,
    /// `server_tags`: labels reported in `/varz` and system events (operators filter
    /// servers by them).
    pub server_tags: Vec<String>,
    /// Monitoring listen host; defaults to `host`.
    pub http_host: Option<String>,
    /// Monitoring port; `0` disables, `-1` random.
    pub http_port: i32,
    /// Monitoring over HTTPS on this port instead (`https_port`, `https`, `-ms`), with the
    /// client TLS certificate; `0` disables, `-1` random.
    pub https_port: i32,
    /// Prefix for monitoring paths.
    pub http_base_path: String,
    /// Largest message (headers included) a client may publish.
    pub max_payload: i64,
    /// Largest control line.
    pub max_control_line: i64,
    /// Per-connection outbound buffer limit (slow consumer threshold).
    pub max_pending: i64,
    /// Maximum client connections; negative means unlimited.
    pub max_connections: i64,
    /// Maximum subscriptions per connection; `0` unlimited.
    pub max_subscriptions: i64,
    /// Maximum tokens in a subscription subject; `0` unlimited.
    pub max_sub_tokens: i64,
    /// Interval between server PINGs.
    pub ping_interval: Duration,
    /// Unanswered PINGs allowed before the connection is stale.
    pub ping_max: i64,
    /// How long a flush may block before the client is a slow consumer.
    pub write_deadline: Duration,
    /// Time allowed between connect and a valid CONNECT when auth is required.
    pub auth_timeout: Duration,
    /// Refuse HPUB/HMSG and report `headers: false`.
    pub no_header_support: bool,
    /// How many closed connections `/connz?state=closed` remembers.
    pub max_closed_clients: i64,
    /// Lame-duck: spread client closes over this long.
    pub lame_duck_duration: Duration,
    /// Lame-duck: wait this long before starting to close clients.
    pub lame_duck_grace_period: Duration,
    /// Disable the shared subject-match cache.
    pub disable_sublist_cache: bool,
    /// Logging settings.
    pub log: LogOptions,
    /// Write the PID to this file.
    pub pid_file: Option<PathBuf>,
    /// Write a `<exe>_<pid>.ports` file with the listen URLs here.
    pub ports_file_dir: Option<PathBuf>,
    /// Simple single-user or token authentication.
    pub auth: SimpleAuth,
    /// Users lists, accounts, permissions, imports and exports.
    pub accounts: AccountsConfig,
    /// `authorization { auth_callout {} }`: logins decided by an external service.
    pub auth_callout: Option<crate::auth::callout::CalloutConfig>,
    /// JetStream settings.
    pub jetstream: JetStreamOptions,
    /// TLS for client connections (`tls {}`, `--tls*`); `None`: plain TCP only.
    pub tls: Option<crate::tls::TlsOptions>,
    /// Top-level `mappings {}`: subject mappings of the global account.
    pub mappings: Vec<crate::subject_mapping::MappingConfig>,
    /// `operator`, `trusted_keys`, `resolver` and `resolver_preload` as read, until
    /// [`crate::config_operator::finish`] checks them.
    pub operator_options: Option<crate::config_operator::OperatorOptions>,
    /// Operator (JWT) mode, checked: who may sign accounts and users. `None`: off.
    pub operator: Option<std::sync::Arc<crate::config_operator::OperatorAuth>>,
    /// The `websocket {}` listener, when configured with a port.
    pub websocket: Option<WebsocketOptions>,
    /// `allow_non_tls`: with TLS configured, also admit clients that stay in the clear
    /// (INFO says `tls_available`; the first byte a client sends tells which it wants).
    pub allow_non_tls: bool,
    /// Warnings produced while building the options (printed at start, never fatal).
    pub warnings: Vec<String>,
}

/// Default time a WebSocket client has for its upgrade request (natrium bounds it even
/// when the config does not).
pub const DEFAULT_WS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// The `websocket {}` block: a second listener for clients that speak NATS over
/// WebSocket (browsers with nats.ws, clients behind HTTP proxies).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebsocketOptions {
    /// Listen host; the client listener's when unset.
    pub host: Option<String>,
    /// Port; `-1` picks a random one.
    pub port: i32,
    /// Serve plain `ws://` (nats-server insists on saying so explicitly).
    pub no_tls: bool,
    /// `wss://` certificate settings.
    pub tls: Option<crate::tls::TlsOptions>,
    /// Which browser origins may connect.
    pub origins: crate::client::websocket::OriginPolicy,
    /// `allowed_origins` as configured (for `/varz`).
    pub allowed_origins: Vec<String>,
    /// `compression`: accepted, but permessage-deflate is never negotiated.
    pub compression: bool,
    /// `handshake_timeout` as configured (`None`: [`DEFAULT_WS_HANDSHAKE_TIMEOUT`]).
    pub handshake_timeout: Option<Duration>,
    /// `headers {}`: extra headers for the `101` answer, in config order.
    pub headers: Vec<(String, String)>,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogOptions {
    /// `[DBG]` lines.
    pub debug: bool,
    /// `[TRC]` lines (protocol trace).
    pub trace: bool,
    /// Trace the system account too.
    pub trace_verbose: bool,
    /// Timestamps on each line; nats-server's default is on.
    pub logtime: bool,
    /// Timestamps in UTC rather than local time.
    pub logtime_utc: bool,
    /// Log to this file instead of stderr.
    pub log_file: Option<PathBuf>,
    /// Rotate the log file past this size (0: never).
    pub log_size_limit: i64,
    /// Truncate traced message bodies to this many bytes (0: no limit).
    pub max_traced_msg_len: i64,
}

/// The `authorization` block's single-user and token forms, and `--user/--pass/--auth`.
/// The full users list, nkeys and accounts come with the accounts issue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimpleAuth {
    /// Required user name.
    pub user: Option<String>,
    /// Required password (plain or bcrypt).
    pub password: Option<String>,
    /// Required token.
    pub token: Option<String>,
    /// Auth timeout from the `authorization` block, if set there.
    pub timeout: Option<Duration>,
}

impl SimpleAuth {
    /// Whether clients must authenticate with the single user or token.
    pub fn required(&self) -> bool {
        self.user.is_some() || self.token.is_some()
    }
}

/// Default `allow_responses` message count.
pub const DEFAULT_ALLOW_RESPONSE_MAX_MSGS: i64 = 1;
/// Default `allow_responses` expiry.
pub const DEFAULT_ALLOW_RESPONSE_EXPIRATION: Duration = Duration::from_secs(120);

/// Allow and deny lists for publish or subscribe. Subscribe entries may be
/// `"subject queue"` to restrict queue groups.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubjectPermission {
    /// Allowed subjects; `None` means "no allow list" (everything allowed unless denied);
    /// `Some(empty)` allows nothing.
    pub allow: Option<Vec<String>>,
    /// Denied subjects.
    pub deny: Vec<String>,
}

/// `allow_responses`: temporary publish rights to reply subjects of received requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResponsePermission {
    /// Responses allowed per request; negative means unlimited.
    pub max_msgs: i64,
    /// How long the right lasts; `None` means forever.
    pub expires: Option<Duration>,
}

/// A user's or account's permissions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Permissions {
    /// Publish rights.
    pub publish: Option<SubjectPermission>,
    /// Subscribe rights.
    pub subscribe: Option<SubjectPermission>,
    /// Response rights.
    pub response: Option<ResponsePermission>,
}

/// One configured user.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserConfig {
    /// User name (password users) or public key (nkey users, starting with `U`).
    pub name: String,
    /// Password, plain or bcrypt (`$2a$…`); `None` for nkey users.
    pub password: Option<String>,
    /// Whether `name` is an nkey.
    pub nkey: bool,
    /// Account the user belongs to (`$G` for the `authorization` block).
    pub account: String,
    /// Permissions (the account's or block's defaults when the user has none).
    pub permissions: Option<Permissions>,
    /// `allowed_connection_types`; empty means all.
    pub allowed_connection_types: Vec<String>,
}

/// How a service export answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseType {
    /// One response per request.
    #[default]
    Singleton,
    /// Many responses per request.
    Stream,
    /// Many responses, chunked.
    Chunked,
}

/// One export of an account.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    /// Exported subject (wildcards allowed).
    pub subject: String,
    /// Service (request/reply) rather than stream.
    pub service: bool,
    /// Accounts allowed to import; `None` means public.
    pub accounts: Option<Vec<String>>,
    /// Service response type.
    pub response_type: ResponseType,
    /// How long a service response route stays open.
    pub response_threshold: Duration,
}

/// One import into an account.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportConfig {
    /// Exporting account.
    pub account: String,
    /// Subject in the exporting account.
    pub subject: String,
    /// Service (request/reply) rather than stream.
    pub service: bool,
    /// Local subject (`to`) for services and streams.
    pub to: Option<String>,
    /// Prefix for stream imports.
    pub prefix: Option<String>,
    /// Share the requestor's identity with the service (recorded only).
    pub share: bool,
}

/// JetStream limits for one account, from its `jetstream` block (`-1` = unlimited).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccountJsLimits {
    /// Memory storage limit.
    pub max_memory: i64,
    /// File storage limit.
    pub max_store: i64,
    /// Streams.
    pub max_streams: i64,
    /// Consumers per stream.
    pub max_consumers: i64,
    /// Streams must set `max_bytes`.
    pub max_bytes_required: bool,
    /// Cap on a memory stream's `max_bytes`.
    pub memory_max_stream_bytes: i64,
    /// Cap on a file stream's `max_bytes`.
    pub store_max_stream_bytes: i64,
    /// Cap on a consumer's `max_ack_pending` (and its default).
    pub max_ack_pending: i64,
}

impl Default for AccountJsLimits {
    fn default() -> Self {
        AccountJsLimits {
            max_memory: -1,
            max_store: -1,
            max_streams: -1,
            max_consumers: -1,
            max_bytes_required: false,
            memory_max_stream_bytes: -1,
            store_max_stream_bytes: -1,
            max_ack_pending: -1,
        }
    }
}

/// Per-account connection limits (`limits {}`); `-1` = unlimited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccountLimits {
    /// Client connections.
    pub max_connections: i64,
    /// Subscriptions per connection.
    pub max_subscriptions: i64,
    /// Largest message.
    pub max_payload: i64,
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits {
            max_connections: -1,
            max_subscriptions: -1,
            max_payload: -1,
        }
    }
}

/// One configured account.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccountConfig {
    /// Account name.
    pub name: String,
    /// Exports.
    pub exports: Vec<ExportConfig>,
    /// Imports.
    pub imports: Vec<ImportConfig>,
    /// JetStream limits, when JetStream is enabled for the account.
    pub jetstream: Option<AccountJsLimits>,
    /// Connection limits.
    pub limits: AccountLimits,
    /// Subject mappings applied to what the account's clients publish.
    pub mappings: Vec<crate::subject_mapping::MappingConfig>,
    /// `default_permissions`: for the account's users without their own, and for users
    /// an auth callout places in the account without permissions.
    pub default_permissions: Option<Permissions>,
}

/// Everything about users and accounts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccountsConfig {
    /// Users from the `authorization` block and from every account, unique by name/nkey.
    pub users: Vec<UserConfig>,
    /// Configured accounts (not including `$G`).
    pub accounts: Vec<AccountConfig>,
    /// `no_auth_user`.
    pub no_auth_user: Option<String>,
    /// `system_account` (default `$SYS`).
    pub system_account: Option<String>,
    /// `no_system_account`.
    pub no_system_account: bool,
    /// Whether an `accounts` block was present (then `$G` gets no JetStream by default).
    pub accounts_block: bool,
    /// `authorization { default_permissions }`, for users without their own.
    pub default_permissions: Option<Permissions>,
}

impl AccountsConfig {
    /// The system account's name.
    pub fn system_account_name(&self) -> &str {
        self.system_account.as_deref().unwrap_or("$SYS")
    }
}

/// JetStream settings from `-js`, `-sd` and the `jetstream` block.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JetStreamOptions {
    /// JetStream on.
    pub enabled: bool,
    /// Store directory as configured; the server appends `/jetstream`.
    pub store_dir: Option<PathBuf>,
    /// Memory storage limit in bytes; `None` means computed at start.
    pub max_memory: Option<i64>,
    /// File storage limit in bytes; `None` means computed at start.
    pub max_store: Option<i64>,
    /// JetStream domain.
    pub domain: Option<String>,
    /// `sync_interval`: `None` = default, `Some(None)` = `always`, `Some(Some(d))` = interval.
    pub sync_interval: Option<Option<Duration>>,
    /// Strict API request validation.
    pub strict: bool,
    /// `backup_share` (natrium): percent of the time a snapshot transfer may work while
    /// live traffic goes on (publishes, consumer deliveries and acks); `None` = the default (see `jetstream::background`).
    pub backup_share: Option<u8>,
    /// `restore_share` (natrium): the same for a restore's import; `None` = 100 (a
    /// restore runs at full speed unless told otherwise).
    pub restore_share: Option<u8>,
    /// `limits { batch { … } }`: atomic batch publish limits.
    pub batch_limits: crate::jetstream::atomic_batch::BatchLimits,
    /// `limits { max_ack_pending, max_request_batch, duplicate_window,
    /// default_max_consumers }`: what consumer and stream configs may ask for.
    pub api_limits: crate::jetstream::api::ServerLimits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config_file: None,
            config_digest: None,
            host: "0.0.0.0".to_string(),
            port: DEFAULT_PORT,
            server_name: None,
            server_tags: Vec::new(),
            http_host: None,
            http_port: 0,
            https_port: 0,
            http_base_path: String::new(),
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_control_line: DEFAULT_MAX_CONTROL_LINE,
            max_pending: DEFAULT_MAX_PENDING,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_subscriptions: 0,
            max_sub_tokens: 0,
            ping_interval: Duration::from_secs(120),
            ping_max: 2,
            write_deadline: Duration::from_secs(10),
            auth_timeout: Duration::from_secs(2),
            no_header_support: false,
            max_closed_clients: DEFAULT_MAX_CLOSED_CLIENTS,
            lame_duck_duration: Duration::from_secs(120),
            lame_duck_grace_period: Duration::from_secs(10),
            disable_sublist_cache: false,
            log: LogOptions {
                logtime: true,
                ..LogOptions::default()
            },
            pid_file: None,
            ports_file_dir: None,
            auth: SimpleAuth::default(),
            accounts: AccountsConfig::default(),
            auth_callout: None,
            jetstream: JetStreamOptions {
                strict: true,
                api_limits: crate::jetstream::api::ServerLimits {
                    default_max_consumers: crate::jetstream::api::DEFAULT_MAX_CONSUMERS,
                    ..Default::default()
                },
                ..JetStreamOptions::default()
            },
            tls: None,
            mappings: Vec::new(),
            operator_options: None,
            operator: None,
            websocket: None,
            allow_non_tls: false,
            warnings: Vec::new(),
        }
    }
}

impl Options {
    /// Options for tests: loopback, a random port, quiet logging.
    pub fn for_test() -> Self {
        Options {
            host: "127.0.0.1".to_string(),
            port: 0,
            ..Options::default()
        }
    }

    /// The auth timeout in effect: the `authorization` block's value if set, else, with
    /// TLS, the TLS timeout plus one second (nats-server's `getDefaultAuthTimeout`), else
    /// the default.
    pub fn effective_auth_timeout(&self) -> Duration {
        match (&self.auth.timeout, &self.tls) {
            (Some(t), _) => *t,
            (None, Some(tls)) => tls.timeout + Duration::from_secs(1),
            (None, None) => self.auth_timeout,
        }
    }

    /// Check cross-field rules nats-server enforces at start.
    pub fn validate(&self) -> Result<(), String> {
        crate::config_auth_callout::finish(self)?;
        if self.max_payload > i32::MAX as i64 {
            return Err(format!(
                "max_payload ({}) cannot be higher than the maximum allowed value of {}",
                self.max_payload,
                i32::MAX
            ));
        }
        if self.max_pending > 0 && self.max_payload > self.max_pending {
            return Err(format!(
                "max_payload ({}) cannot be higher than max_pending ({})",
                self.max_payload, self.max_pending
            ));
        }
        if let Some(name) = &self.server_name
            && name.contains(' ')
        {
            return Err("server name cannot contain spaces".to_string());
        }
        if let Some(tls) = &self.tls {
            crate::tls::ServerTls::build(tls).map_err(|e| e.to_string())?;
        }
        if self.http_port != 0 && self.https_port != 0 {
            return Err(format!(
                "can't specify both HTTP ({}) and HTTPs ({}) ports",
                self.http_port, self.https_port
            ));
        }
        if let Some(ws) = &self.websocket {
            if ws.tls.is_none() && !ws.no_tls {
                return Err("websocket requires TLS configuration".to_string());
            }
            if let Some(tls) = &ws.tls {
                crate::tls::ServerTls::build(tls).map_err(|e| format!("websocket: {e}"))?;
            }
            for (key, _) in &ws.headers {
                let k = key.to_ascii_lowercase();
                if matches!(
                    k.as_str(),
                    "host" | "content-length" | "connection" | "upgrade" | "nats-no-masking"
                ) {
                    return Err(format!("websocket: invalid header {key:?} not allowed"));
                }
                if k.starts_with("sec-websocket-") {
                    return Err(format!(
                        "websocket: invalid header {key:?}, \"Sec-WebSocket-\" prefix not allowed"
                    ));
                }
            }
        }
        if self.https_port != 0 && self.tls.is_none() {
            return Err("TLS cert and key required for HTTPS".to_string());
        }
        Ok(())
    }
}
