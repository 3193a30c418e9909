//! Server-level JetStream configuration: where data lives and how much of it may be stored.
//!
//! nats-server's rules, which operators and tools rely on:
//! - the store directory is `<store_dir>/jetstream`, or `$TMPDIR/nats/jetstream` with a
//!   warning when none is configured;
//! - an unset `max_mem` is 75% of physical memory (256 MiB if unknown);
//! - an unset `max_file` is 75% of the space available on the store's filesystem at start
//!   (1 TiB if that cannot be read). Unlike nats-server, the bytes the store directory
//!   already holds count as available, so a restart with a fuller disk never computes a
//!   limit below the data already stored (nats-server#3520, #3641);
//! - an explicit value is used as given (`0` too); any negative value (`-1`) means
//!   unlimited (nats-server computes the default for `-1`).

use crate::options::JetStreamOptions;
use std::path::{Path, PathBuf};

/// Fallback memory limit when physical memory cannot be read.
pub const DEFAULT_MAX_MEMORY: i64 = 256 * 1024 * 1024;
/// Fallback storage limit when the filesystem cannot be queried.
pub const DEFAULT_MAX_STORE: i64 = 1024 * 1024 * 1024 * 1024;
/// The subdirectory nats-server always appends to `store_dir`.
pub const STORE_SUBDIR: &str = "jetstream";

/// Where a limit came from, for the startup log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    /// Set in the config.
    Configured,
    /// Computed from the machine at start.
    Computed,
    /// The machine could not be read; a fixed fallback was used.
    Fallback,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct JsConfig {
    /// Store directory, including the `jetstream` suffix.
    pub store_dir: PathBuf,
    /// Whether the directory is the temporary default.
    pub temp_dir: bool,
    /// Memory storage limit in bytes (`-1` unlimited).
    pub max_memory: i64,
    /// How `max_memory` was chosen.
    pub max_memory_source: LimitSource,
    /// File storage limit in bytes (`-1` unlimited).
    pub max_store: i64,
    /// How `max_store` was chosen.
    pub max_store_source: LimitSource,
    /// For a computed `max_store`: free bytes on the filesystem and bytes the store
    /// already used at start.
    pub disk_at_start: Option<(i64, i64)>,
    /// Strict API validation.
    pub strict: bool,
}

/// Physical memory in bytes from /proc/meminfo.
pub fn system_memory() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Space available to unprivileged users on the filesystem holding `dir`.
pub fn disk_available(dir: &Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    Some((st.f_bavail as u128 * st.f_frsize as u128).min(i64::MAX as u128) as i64)
}

/// Resolve the configuration, creating the store directory.
pub fn resolve(js: &JetStreamOptions) -> std::io::Result<JsConfig> {
    let (store_dir, temp_dir) = match &js.store_dir {
        Some(d) => (d.join(STORE_SUBDIR), false),
        None => (std::env::temp_dir().join("nats").join(STORE_SUBDIR), true),
    };
    std::fs::create_dir_all(&store_dir)?;
    // A negative limit in the config asks for the computed default, as in nats-server
    // (`max_mem: -1` is not "unlimited").
    let (max_memory, max_memory_source) = match js.max_memory.filter(|v| *v >= 0) {
        Some(v) => (v, LimitSource::Configured),
        None => match system_memory() {
            Some(m) => (m / 4 * 3, LimitSource::Computed),
            None => (DEFAULT_MAX_MEMORY, LimitSource::Fallback),
        },
    };
    let mut disk_at_start = None;
    let (max_store, max_store_source) = match js.max_store.filter(|v| *v >= 0) {
        Some(v) => (v, LimitSource::Configured),
        None => match disk_available(&store_dir) {
            Some(free) => {
                let own = dir_usage(&store_dir);
                disk_at_start = Some((free, own));
                (free.saturating_add(own) / 4 * 3, LimitSource::Computed)
            }
            None => (DEFAULT_MAX_STORE, LimitSource::Fallback),
        },
    };
    Ok(JsConfig {
        store_dir,
        temp_dir,
        max_memory,
        max_memory_source,
        max_store,
        max_store_source,
        disk_at_start,
        strict: js.strict,
    })
}

/// Bytes allocated on disk by the files under `dir` (what deleting them would free).
pub fn dir_usage(dir: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    let mut total: i64 = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() {
                let bytes = i64::try_from(md.blocks().saturating_mul(512)).unwrap_or(i64::MAX);
                total = total.saturating_add(bytes);
            }
        }
    }
    total
}

/// The server limits after a reload: configured values are taken as given; an unset one
/// keeps the value computed at start (the disk is not measured again, so a reload never
/// shrinks a computed limit).
pub fn reload_limits(js: &JetStreamOptions, started: &JsConfig) -> (i64, i64) {
    let mem = match js.max_memory {
        Some(v) => v,
        None if started.max_memory_source == LimitSource::Configured => match system_memory() {
            Some(m) => m / 4 * 3,
            None => DEFAULT_MAX_MEMORY,
        },
        None => started.max_memory,
    };
    let store = match js.max_store {
        Some(v) => v,
        None if started.max_store_source == LimitSource::Configured => {
            match disk_available(&started.store_dir) {
                Some(free) => free.saturating_add(dir_usage(&started.store_dir)) / 4 * 3,
                None => DEFAULT_MAX_STORE,
            }
        }
        None => started.max_store,
    };
    (mem, store)
}

/// nats-server's `friendlyBytes`: binary multiples printed with decimal-looking units.
pub fn friendly_bytes(bytes: i64) -> String {
    let f = bytes as f64;
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let exp = (f.ln() / 1024f64.ln()).floor() as i32;
    let units = ["K", "M", "G", "T", "P", "E"];
    let idx = ((exp - 1).max(0) as usize).min(units.len() - 1);
    format!("{:.2} {}B", f / 1024f64.powi(idx as i32 + 1), units[idx])
}

/// Log the JetStream section of the startup banner, in nats-server's shape (tools grep for
/// `Store Directory: "…"`), plus a line saying how each default was chosen.
pub fn log_banner(log: &crate::logging::Logger, c: &JsConfig) {
    use crate::{info, warn};
    info!(log, "Starting JetStream");
    if c.temp_dir {
        warn!(
            log,
            "Temporary storage directory used, data could be lost on system reboot"
        );
    }
    info!(log, "---------------- JETSTREAM ----------------");
    info!(log, "  Strict:          {}", c.strict);
    info!(log, "  Max Memory:      {}", limit_text(c.max_memory));
    info!(log, "  Max Storage:     {}", limit_text(c.max_store));
    info!(log, "  Store Directory: \"{}\"", c.store_dir.display());
    info!(log, "  API Level:       {}", crate::options::API_LEVEL);
    info!(log, "-------------------------------------------");
    let store_how = match c.disk_at_start {
        Some((free, own)) => format!(
            "75% of the disk space available at start ({} free + {} already used by the store)",
            friendly_bytes(free),
            friendly_bytes(own)
        ),
        None => "75% of the disk space available at start".to_string(),
    };
    info!(
        log,
        "JetStream limits: max memory {}, max storage {}",
        source_text(c.max_memory_source, "75% of physical memory"),
        source_text(c.max_store_source, &store_how),
    );
}

/// A limit for logs: `unlimited` or nats-server's friendly bytes.
pub fn limit_text(v: i64) -> String {
    if v < 0 {
        "unlimited".to_string()
    } else {
        friendly_bytes(v)
    }
}

fn source_text(s: LimitSource, computed: &str) -> String {
    match s {
        LimitSource::Configured => "as configured".to_string(),
        LimitSource::Computed => format!("computed as {computed}"),
        LimitSource::Fallback => "a fixed fallback (the machine could not be read)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_bytes_matches_nats_server() {
        assert_eq!(friendly_bytes(18957382656), "17.66 GB");
        assert_eq!(friendly_bytes(512), "512 B");
        assert_eq!(friendly_bytes(1536), "1.50 KB");
    }

    #[test]
    fn defaults_are_computed_and_explicit_values_kept() {
        let dir = std::env::temp_dir().join(format!("natrium-jscfg-{}", std::process::id()));
        let js = JetStreamOptions {
            enabled: true,
            store_dir: Some(dir.clone()),
            ..JetStreamOptions::default()
        };
        let c = resolve(&js).unwrap();
        assert_eq!(c.store_dir, dir.join("jetstream"));
        assert!(c.store_dir.is_dir());
        assert_eq!(c.max_memory_source, LimitSource::Computed);
        assert_eq!(c.max_memory, system_memory().unwrap() / 4 * 3);
        assert_eq!(c.max_store_source, LimitSource::Computed);
        assert!(c.max_store > 0);
        let js = JetStreamOptions {
            max_memory: Some(0),
            max_store: Some(-1),
            ..js
        };
        let c = resolve(&js).unwrap();
        assert_eq!(c.max_memory, 0);
        assert_eq!(c.max_memory_source, LimitSource::Configured);
        // -1 is "compute it", as in nats-server.
        assert_eq!(c.max_store_source, LimitSource::Computed);
        assert!(c.max_store > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
