//! `natrium-server`: the binary. Parses flags and the config file, then runs the server
//! until a signal stops it.
//!
//! Exit codes follow nats-server: 0 on a clean stop, 1 for a bad config or a failed start,
//! 2 for bad command-line flags.

use natrium_server::flags::{Flags, USAGE};
use natrium_server::logging::{Logger, local_offset};
use natrium_server::options::{NATRIUM_VERSION, NATS_COMPAT_VERSION, Options};
use natrium_server::{config_file, signals};
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    // Read the local UTC offset before any thread starts (later reads are unsound).
    let offset = local_offset();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flags = match Flags::parse(args) {
        Ok(f) => f,
        // Flags that parse but do not fit together: nats-server reports these as a
        // configuration error (exit 1, no usage text).
        Err(e @ natrium_server::flags::FlagError::Conflict(_)) => {
            eprintln!("natrium-server: {e}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("{e}");
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    // What follows the flags is a command, as nats-server takes it: `version` and
    // `help`, anything else is refused (not ignored, which would start a server the
    // caller did not ask for).
    match flags.rest.first().map(String::as_str) {
        None => {}
        Some("version") => {
            println!("nats-server: v{NATS_COMPAT_VERSION} (natrium-server {NATRIUM_VERSION})");
            return ExitCode::SUCCESS;
        }
        Some("help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("natrium-server: unrecognized command: {other:?}");
            return ExitCode::from(1);
        }
    }
    if flags.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if flags.version {
        println!("nats-server: v{NATS_COMPAT_VERSION} (natrium-server {NATRIUM_VERSION})");
        return ExitCode::SUCCESS;
    }
    if let Some(cmd) = &flags.signal {
        return match signals::send_signal_command(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("natrium-server: {e}");
                ExitCode::from(1)
            }
        };
    }
    let mut opts = Options::default();
    if let Some(path) = &flags.config {
        match config_file::load(path) {
            Ok(loaded) => {
                // `-sd` and the file's `store_dir` both: nats-server refuses the pair
                // (the flag is read first, the file's then repeats it), rather than
                // letting one silently win.
                if flags.store_dir.is_some() && loaded.jetstream.store_dir.is_some() {
                    eprintln!(
                        "natrium-server: {}: Duplicate 'store_dir' configuration",
                        path.display()
                    );
                    return ExitCode::from(1);
                }
                // Checking a config (`-t`), a warning fails it, as in nats-server.
                if flags.test_config && !loaded.warnings.is_empty() {
                    for w in &loaded.warnings {
                        eprintln!("natrium-server: {w}");
                    }
                    return ExitCode::from(1);
                }
                for w in &loaded.warnings {
                    eprintln!("{w}");
                }
                opts = loaded;
            }
            Err(e) => {
                eprintln!("natrium-server: {e}");
                return ExitCode::from(1);
            }
        }
    } else if flags.test_config {
        eprintln!(
            "natrium-server: must specify [-c, --config] option to check configuration file syntax"
        );
        return ExitCode::from(1);
    }
    flags.apply(&mut opts);
    if let Err(e) = opts.validate() {
        eprintln!("natrium-server: {e}");
        return ExitCode::from(1);
    }
    if flags.test_config {
        if let Some(path) = &flags.config {
            eprintln!(
                "natrium-server: configuration file {} is valid ({})",
                path.display(),
                opts.config_digest.as_deref().unwrap_or("")
            );
        }
        return ExitCode::SUCCESS;
    }

    let logger = Arc::new(Logger::stderr(offset));
    if let Some(file) = &opts.log.log_file
        && let Err(e) = logger.set_file(file)
    {
        eprintln!(
            "natrium-server: error opening log file {}: {e}",
            file.display()
        );
        return ExitCode::from(1);
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("natrium")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("natrium-server: cannot start runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let flags_for_reload = flags.clone();
    runtime.block_on(async move {
        match signals::run_until_stopped(opts, logger, flags_for_reload).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("natrium-server: {e}");
                ExitCode::from(1)
            }
        }
    })
}
