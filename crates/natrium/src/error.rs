//! The one error type every command returns.
//!
//! A command-line tool is judged by its failure messages: the user should
//! see a single line on stderr that names what failed and why, and get a
//! non-zero exit status, never a panic or a backtrace. Every fallible step
//! therefore maps its error into a variant here carrying enough context
//! (which server, which file, which operation) to be understood on its own.

use std::path::PathBuf;

/// Everything that can make a `natrium` command fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `--server` entry could not be parsed as a NATS URL.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidServer {
        /// The entry as typed.
        url: String,
        /// Why the parser rejected it.
        reason: String,
    },

    /// The initial connection (TCP, handshake or authentication) failed.
    #[error("cannot connect to {server}: {source}")]
    Connect {
        /// The server list that was tried.
        server: String,
        /// The client library's error.
        source: async_nats::ConnectError,
    },

    /// A credentials or key file named on the command line was unreadable.
    #[error("cannot read {what} file {}: {source}", path.display())]
    ReadFile {
        /// What kind of file it was (`credentials`, `nkey seed`).
        what: &'static str,
        /// The path as given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// A NATS operation on an established connection failed.
    #[error("{op}: {source}")]
    Nats {
        /// What was being done, e.g. `publish on "bench"`.
        op: String,
        /// The client library's error.
        source: async_nats::Error,
    },

    /// A benchmark ended before it moved every message it was asked to
    /// (time bound reached, or messages lost to a slow consumer).
    #[error("{0}")]
    Incomplete(String),

    /// Arguments that parse but make no sense together.
    #[error("{0}")]
    Usage(String),

    /// The JetStream API answered with an error: its description and codes,
    /// exactly as the server sent them.
    #[error("{op}: {description} (code {code}, err_code {err_code})")]
    Api {
        /// What was being done, e.g. `stream info ORDERS`.
        op: String,
        /// The server's `error.description`.
        description: String,
        /// The server's HTTP-like `error.code`.
        code: u64,
        /// The server's `error.err_code` (JSApiError code).
        err_code: u64,
    },

    /// Nobody answered a request: no subscriber on the subject, or no
    /// JetStream in the account.
    #[error("{0}")]
    NoResponders(String),

    /// A request got no answer within `--timeout`.
    #[error("{0}: no response within the timeout (raise --timeout?)")]
    Timeout(String),

    /// A file given to a command (configuration, payload, context) could
    /// not be used.
    #[error("{0}")]
    BadInput(String),

    /// The command needs an answer from the user, and cannot ask.
    #[error("{0}")]
    NeedInput(String),

    /// The user declined a confirmation prompt.
    #[error("{0}: not confirmed, nothing done")]
    Declined(String),

    /// A health check finished: its line is printed, only the status is
    /// left to give (Nagios: 1 warning, 2 critical, 3 unknown).
    #[error("check status {0}")]
    Check(u8),

    /// Writing the results to stdout failed (for example a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),

    /// A backup or restore failed.
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),

    /// A worker task panicked or was cancelled; a bug rather than a user error.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Wraps a client-library error with a description of the operation.
    pub fn nats(op: impl Into<String>, source: impl Into<async_nats::Error>) -> Self {
        Error::Nats {
            op: op.into(),
            source: source.into(),
        }
    }

    /// The process exit status for this error: 2 for usage mistakes (as clap
    /// uses), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::InvalidServer { .. } | Error::NeedInput(_) => 2,
            Error::Check(code) => *code,
            _ => 1,
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("JSON encoding: {e}"))
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
