//! One module per command group. Each has an `Args` struct (clap) and a
//! `run` function; shared flags live here.

pub mod account;
pub mod consumer;
pub mod context;
pub mod core;
pub mod kv;
pub mod object;
pub mod server;
pub mod stream;

use clap::Args;

/// `--json`, available on every subcommand of a group.
#[derive(Args, Debug, Clone, Copy)]
pub struct JsonFlag {
    /// Print JSON (the server's JetStream API answers where there is one)
    /// instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// `-f/--force`: skip the confirmation prompt.
#[derive(Args, Debug, Clone, Copy)]
pub struct Force {
    /// Do not ask for confirmation.
    #[arg(short = 'f', long)]
    pub force: bool,
}

impl Force {
    /// Asks `question` unless `--force`; an answer of no is an error.
    pub fn confirm(self, question: &str) -> crate::error::Result<()> {
        if self.force || crate::output::confirm(question, "add -f to proceed")? {
            Ok(())
        } else {
            Err(crate::error::Error::Declined(question.to_string()))
        }
    }
}
