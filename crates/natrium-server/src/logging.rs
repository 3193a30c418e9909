//! Logging in nats-server's exact line format.
//!
//! Tools that start `nats-server` as a child process read its log to learn the port and
//! when it is ready (`Listening for client connections on HOST:PORT`, `Server is ready`).
//! To be swappable under them we print the same shape:
//! `[PID] 2006/01/02 15:04:05.000000 [INF] message`, or `[PID] [INF] message` without
//! `logtime`. Levels can change at runtime (config reload), and the file can be reopened
//! (SIGUSR1) for log rotation, so the sink sits behind a mutex and the level flags are atomics.

use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use time::{OffsetDateTime, UtcOffset};

/// Log levels with nats-server's three-letter tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fatal: logged, then the process exits.
    Fatal,
    /// Errors.
    Error,
    /// Warnings.
    Warn,
    /// Normal operation.
    Info,
    /// Debug, only with `-D`/`debug`.
    Debug,
    /// Protocol trace, only with `-V`/`trace`.
    Trace,
}

impl Level {
    fn tag(self) -> &'static str {
        match self {
            Level::Fatal => "[FTL]",
            Level::Error => "[ERR]",
            Level::Warn => "[WRN]",
            Level::Info => "[INF]",
            Level::Debug => "[DBG]",
            Level::Trace => "[TRC]",
        }
    }
}

/// Where lines go.
enum Sink {
    /// Standard error, the default.
    Stderr,
    /// A file, appended to.
    File {
        /// Open handle.
        file: File,
        /// Path, to reopen after rotation.
        path: PathBuf,
    },
    /// Discard everything (tests that want silence).
    Null,
}

/// A server's logger.
pub struct Logger {
    /// The destination.
    sink: Mutex<Sink>,
    /// `[DBG]` enabled.
    debug: AtomicBool,
    /// `[TRC]` enabled.
    trace: AtomicBool,
    /// Timestamps on.
    logtime: AtomicBool,
    /// UTC timestamps instead of local.
    utc: AtomicBool,
    /// Local UTC offset, read once at start (reading it later is unsound in threaded code).
    offset: UtcOffset,
    /// `[PID] ` prefix.
    pid_prefix: String,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger").finish_non_exhaustive()
    }
}

/// The local UTC offset, if it can be read safely (call before starting threads).
pub fn local_offset() -> UtcOffset {
    UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC)
}

impl Logger {
    /// A logger writing to stderr.
    pub fn stderr(offset: UtcOffset) -> Self {
        Self::with_sink(Sink::Stderr, offset)
    }

    /// A logger that drops everything.
    pub fn null() -> Self {
        Self::with_sink(Sink::Null, UtcOffset::UTC)
    }

    fn with_sink(sink: Sink, offset: UtcOffset) -> Self {
        Logger {
            sink: Mutex::new(sink),
            debug: AtomicBool::new(false),
            trace: AtomicBool::new(false),
            logtime: AtomicBool::new(true),
            utc: AtomicBool::new(false),
            offset,
            pid_prefix: format!("[{}] ", std::process::id()),
        }
    }

    /// Send output to a file (appending), as `-l FILE` does.
    pub fn set_file(&self, path: &Path) -> std::io::Result<()> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        *self.sink.lock() = Sink::File {
            file,
            path: path.to_path_buf(),
        };
        Ok(())
    }

    /// Reopen the log file (SIGUSR1), so an external rotation takes effect.
    pub fn reopen(&self) -> std::io::Result<()> {
        let mut sink = self.sink.lock();
        if let Sink::File { path, .. } = &*sink {
            let path = path.clone();
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            *sink = Sink::File { file, path };
        }
        Ok(())
    }

    /// Apply level and timestamp settings (at start and on reload).
    pub fn configure(&self, debug: bool, trace: bool, logtime: bool, utc: bool) {
        self.debug.store(debug, Ordering::Relaxed);
        self.trace.store(trace, Ordering::Relaxed);
        self.logtime.store(logtime, Ordering::Relaxed);
        self.utc.store(utc, Ordering::Relaxed);
    }

    /// Whether debug lines are wanted (check before formatting costly messages).
    pub fn debug_enabled(&self) -> bool {
        self.debug.load(Ordering::Relaxed)
    }

    /// Whether trace lines are wanted.
    pub fn trace_enabled(&self) -> bool {
        self.trace.load(Ordering::Relaxed)
    }

    /// Write one line at `level`.
    pub fn log(&self, level: Level, args: std::fmt::Arguments<'_>) {
        match level {
            Level::Debug if !self.debug_enabled() => return,
            Level::Trace if !self.trace_enabled() => return,
            _ => {}
        }
        let mut line = String::with_capacity(128);
        line.push_str(&self.pid_prefix);
        if self.logtime.load(Ordering::Relaxed) {
            let now = OffsetDateTime::now_utc();
            let now = if self.utc.load(Ordering::Relaxed) {
                now
            } else {
                now.to_offset(self.offset)
            };
            line.push_str(&format!(
                "{:04}/{:02}/{:02} {:02}:{:02}:{:02}.{:06} ",
                now.year(),
                now.month() as u8,
                now.day(),
                now.hour(),
                now.minute(),
                now.second(),
                now.microsecond()
            ));
        }
        line.push_str(level.tag());
        line.push(' ');
        use std::fmt::Write as _;
        let _ = write!(line, "{args}");
        line.push('\n');
        let mut sink = self.sink.lock();
        // A log write that fails has nowhere to be reported; dropping it is the only option.
        let _ = match &mut *sink {
            Sink::Stderr => std::io::stderr().write_all(line.as_bytes()),
            Sink::File { file, .. } => file.write_all(line.as_bytes()),
            Sink::Null => Ok(()),
        };
    }
}

/// `info!(logger, "fmt", args…)` and friends.
#[macro_export]
macro_rules! log_at {
    ($logger:expr, $level:expr, $($arg:tt)+) => {
        $logger.log($level, format_args!($($arg)+))
    };
}

/// Log at INF.
#[macro_export]
macro_rules! info {
    ($logger:expr, $($arg:tt)+) => { $crate::log_at!($logger, $crate::logging::Level::Info, $($arg)+) };
}
/// Log at WRN.
#[macro_export]
macro_rules! warn {
    ($logger:expr, $($arg:tt)+) => { $crate::log_at!($logger, $crate::logging::Level::Warn, $($arg)+) };
}
/// Log at ERR.
#[macro_export]
macro_rules! error {
    ($logger:expr, $($arg:tt)+) => { $crate::log_at!($logger, $crate::logging::Level::Error, $($arg)+) };
}
/// Log at DBG (formatting is skipped when debug is off).
#[macro_export]
macro_rules! debug {
    ($logger:expr, $($arg:tt)+) => {
        if $logger.debug_enabled() { $crate::log_at!($logger, $crate::logging::Level::Debug, $($arg)+) }
    };
}
/// Log at TRC (formatting is skipped when trace is off).
#[macro_export]
macro_rules! trace {
    ($logger:expr, $($arg:tt)+) => {
        if $logger.trace_enabled() { $crate::log_at!($logger, $crate::logging::Level::Trace, $($arg)+) }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format_matches_nats_server() {
        let dir = std::env::temp_dir().join(format!("natrium-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.log");
        let _ = std::fs::remove_file(&path);
        let l = Logger::stderr(UtcOffset::UTC);
        l.set_file(&path).unwrap();
        l.log(Level::Info, format_args!("Server is ready"));
        l.log(Level::Debug, format_args!("hidden"));
        l.configure(true, false, false, false);
        l.log(Level::Debug, format_args!("shown"));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let pid = format!("[{}] ", std::process::id());
        assert!(lines[0].starts_with(&pid));
        // "[PID] 2006/01/02 15:04:05.000000 [INF] Server is ready"
        let rest = &lines[0][pid.len()..];
        assert_eq!(
            rest.len(),
            "2006/01/02 15:04:05.000000 [INF] Server is ready".len()
        );
        assert_eq!(&rest[4..5], "/");
        assert_eq!(&rest[26..], " [INF] Server is ready");
        assert_eq!(lines[1], format!("{pid}[DBG] shown"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
