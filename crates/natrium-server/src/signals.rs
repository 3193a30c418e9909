//! Process life cycle: running the server until a signal, and `--signal` to signal a
//! running one.
//!
//! Signals, as nats-server handles them:
//! - SIGINT, SIGTERM: graceful shutdown, exit 0;
//! - SIGHUP: reload the config file (logging, limits); a failed reload keeps the old config;
//! - SIGUSR1: reopen the log file (rotation);
//! - SIGUSR2: lame-duck mode, then exit.

use crate::flags::Flags;
use crate::logging::Logger;
use crate::monitor;
use crate::options::Options;
use crate::server::{Server, StartError};
use crate::{config_file, error, info};
use std::path::Path;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};

/// Errors from `--signal`.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// Unknown command word.
    #[error("unknown signal {0:?}")]
    UnknownCommand(String),
    /// The PID (or PID file) is not usable.
    #[error("invalid pid or pid file {0:?}")]
    BadPid(String),
    /// No running server was found.
    #[error("no natrium-server process running")]
    NoProcess,
    /// More than one candidate and no PID given.
    #[error("multiple natrium-server processes running:\n{0}")]
    Ambiguous(String),
    /// `kill` failed.
    #[error("failed to signal pid {pid}: {source}")]
    Kill {
        /// Target.
        pid: i32,
        /// Why.
        source: std::io::Error,
    },
}

/// Map a `--signal` command word to a signal number.
fn signal_for(cmd: &str) -> Option<i32> {
    Some(match cmd {
        "stop" => libc::SIGKILL,
        "quit" => libc::SIGINT,
        "term" => libc::SIGTERM,
        "reopen" => libc::SIGUSR1,
        "reload" => libc::SIGHUP,
        "ldm" => libc::SIGUSR2,
        _ => return None,
    })
}

/// Resolve a PID given as a number or as a PID file path.
fn resolve_pid(s: &str) -> Result<i32, SignalError> {
    if let Ok(pid) = s.trim().parse::<i32>() {
        return Ok(pid);
    }
    let text = std::fs::read_to_string(s).map_err(|_| SignalError::BadPid(s.to_string()))?;
    text.trim()
        .parse::<i32>()
        .map_err(|_| SignalError::BadPid(s.to_string()))
}

/// Find running natrium-server processes (other than this one) through /proc.
fn find_servers() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm"))
            && comm.trim() == "natrium-server"
        {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// Carry out `--signal <cmd>[=<pid|pidfile>]`.
pub fn send_signal_command(arg: &str) -> Result<(), SignalError> {
    let (cmd, target) = match arg.split_once('=') {
        Some((c, t)) => (c, Some(t)),
        None => (arg, None),
    };
    let sig = signal_for(cmd).ok_or_else(|| SignalError::UnknownCommand(cmd.to_string()))?;
    let pid = match target {
        Some(t) => resolve_pid(t)?,
        None => {
            let pids = find_servers();
            match pids.as_slice() {
                [] => return Err(SignalError::NoProcess),
                [one] => *one,
                many => {
                    let list: Vec<String> = many.iter().map(|p| format!("  {p}")).collect();
                    return Err(SignalError::Ambiguous(list.join("\n")));
                }
            }
        }
    };
    // SAFETY: kill(2) with a plain pid and signal number has no memory-safety concerns.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        return Err(SignalError::Kill {
            pid,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Write the PID file, if asked for: before the server starts, as nats-server does, so
/// whoever waits for "Server is ready" finds it written.
fn write_pid_file(opts: &Options, log: &Logger) {
    if let Some(p) = &opts.pid_file
        && let Err(e) = std::fs::write(p, std::process::id().to_string())
    {
        error!(log, "Could not write pidfile: {}", e);
    }
}

/// Write the ports file, if asked for (the ports are known once the server listens).
fn write_process_files(opts: &Options, server: &Server, http: Option<std::net::SocketAddr>) {
    let pid = std::process::id();
    if let Some(dir) = &opts.ports_file_dir {
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "natrium-server".to_string());
        let mut ports = serde_json::json!({
            "nats": [format!("nats://{}:{}", opts.host, server.client_addr().port())],
        });
        if let Some(h) = http {
            let scheme = if opts.http_port == 0 { "https" } else { "http" };
            ports["monitoring"] =
                serde_json::json!([format!("{scheme}://{}:{}", h.ip(), h.port())]);
        }
        let path = dir.join(format!("{exe}_{pid}.ports"));
        if let Err(e) = std::fs::write(&path, ports.to_string()) {
            error!(
                server.shared().log,
                "Error writing ports file ({}): {}",
                path.display(),
                e
            );
        }
    }
}

/// Settings a reload cannot change (listeners stay where they are).
fn reload_blockers(old: &Options, new: &Options) -> Option<String> {
    if old.host != new.host {
        return Some(format!(
            "config reload not supported for Host: old={}, new={}",
            old.host, new.host
        ));
    }
    if old.port != new.port {
        return Some(format!(
            "config reload not supported for Port: old={}, new={}",
            old.port, new.port
        ));
    }
    if old.http_port != new.http_port {
        return Some(format!(
            "config reload not supported for HTTPPort: old={}, new={}",
            old.http_port, new.http_port
        ));
    }
    if old.https_port != new.https_port {
        return Some(format!(
            "config reload not supported for HTTPSPort: old={}, new={}",
            old.https_port, new.https_port
        ));
    }
    // WebSocket settings other than its certificates need a restart (as nats-server).
    let ws_without_tls = |o: &Options| {
        o.websocket.clone().map(|mut w| {
            w.tls = None;
            w
        })
    };
    if ws_without_tls(old) != ws_without_tls(new) {
        return Some("config reload not supported for Websocket".to_string());
    }
    if old.server_name != new.server_name {
        return Some("config reload not supported for ServerName".to_string());
    }
    None
}

/// Held while the options change (a reload, an account JWT push), so that one change
/// never starts from options another is replacing.
pub static RELOAD_LOCK: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// Re-read the config file and apply it, keeping the old options on any error.
pub fn reload(server: &Server, flags: &Flags) -> Result<(), String> {
    let _one_at_a_time = RELOAD_LOCK.lock();
    let shared = server.shared();
    let old = shared.opts();
    let Some(path) = old.config_file.clone() else {
        return Err("can not reload without a configuration file".to_string());
    };
    let mut new = config_file::load(&path).map_err(|e| e.to_string())?;
    flags.apply(&mut new);
    new.validate()?;
    // The effective port is the one bound; compare what was asked for.
    if let Some(b) = reload_blockers(&old, &new) {
        return Err(b);
    }
    apply(shared, &old, new, true)
}

/// Put new options into force on a running server: a reload, or account JWTs pushed in
/// operator mode. Checked before anything changes; on an error the old options stay.
/// `refuse_unauthenticated`: a changed authorization also closes clients that have not
/// logged in yet (a reload does; an account push does not).
pub fn apply(
    shared: &Arc<crate::server::ServerShared>,
    old: &Options,
    new: Options,
    refuse_unauthenticated: bool,
) -> Result<(), String> {
    if let Some(js) = shared.js.get() {
        // Check the new limits before anything changes (nats-server refuses the reload).
        js.check_reload(shared, &new).map(|_| ())?;
    }
    let added = shared.reload_accounts(&new)?;
    for name in &added {
        if let Some(acc) = shared.account(name) {
            crate::system::account_services(shared, &acc);
            if let Some(js) = shared.js.get()
                && let Some(h) = js.api_handler.lock().clone()
            {
                crate::jetstream::api_server::subscribe_account(&acc, &h, &js.domain);
            }
        }
    }
    if let Some(js) = shared.js.get() {
        js.reload(shared, &new)?;
    }
    let auth_changed =
        refuse_unauthenticated && (old.auth != new.auth || old.accounts != new.accounts);
    shared.set_auth(crate::auth::AuthRegistry::from_options(&new), auth_changed);
    shared.set_opts(new);
    Ok(())
}

/// Start the server and serve until SIGINT/SIGTERM (or lame duck) ends it.
pub async fn run_until_stopped(
    opts: Options,
    logger: Arc<Logger>,
    flags: Flags,
) -> Result<(), StartError> {
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| StartError::Options(e.to_string()))?;
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| StartError::Options(e.to_string()))?;
    let mut sighup =
        signal(SignalKind::hangup()).map_err(|e| StartError::Options(e.to_string()))?;
    let mut sigusr1 =
        signal(SignalKind::user_defined1()).map_err(|e| StartError::Options(e.to_string()))?;
    let mut sigusr2 =
        signal(SignalKind::user_defined2()).map_err(|e| StartError::Options(e.to_string()))?;

    write_pid_file(&opts, &logger);
    let mut server = Server::start(opts.clone(), logger.clone()).await?;
    let http = monitor::start(server.shared().clone()).await?;
    write_process_files(&opts, &server, http.as_ref().map(|h| h.addr));
    let log = logger;
    loop {
        tokio::select! {
            _ = sigint.recv() => {
                info!(log, "Trapped \"interrupt\" signal");
                server.shutdown().await;
                break;
            }
            _ = sigterm.recv() => {
                info!(log, "Trapped \"terminated\" signal");
                server.shutdown().await;
                break;
            }
            _ = sighup.recv() => {
                info!(log, "Trapped \"hangup\" signal");
                match reload(&server, &flags) {
                    Ok(()) => info!(log, "Reloaded server configuration"),
                    Err(e) => error!(log, "Failed to reload server configuration: {}", e),
                }
            }
            _ = sigusr1.recv() => {
                info!(log, "Trapped \"user defined signal 1\" signal");
                if let Err(e) = log.reopen() {
                    error!(log, "Error reopening log file: {}", e);
                }
                info!(log, "File log re-opened");
            }
            _ = sigusr2.recv() => {
                info!(log, "Trapped \"user defined signal 2\" signal");
                server.lame_duck().await;
                break;
            }
        }
    }
    if let Some(h) = http {
        h.stop();
    }
    if let Some(p) = &opts.pid_file {
        let _ = std::fs::remove_file(Path::new(p));
    }
    Ok(())
}
