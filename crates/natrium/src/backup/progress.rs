//! Progress of a transfer: a bar (bytes, rate, ETA) on a terminal, plain lines
//! otherwise, nothing with `--json` or `--quiet`.
//!
//! Why both: a person watching a 20 GiB backup wants a bar; a cron job's log wants a
//! line every few seconds it can grep, not carriage returns.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Plain-line interval.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A bar on stderr.
    Bar,
    /// A line on stderr every few seconds.
    Lines,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// A bar on a terminal, lines otherwise; quiet when asked.
    pub fn detect(quiet: bool) -> Mode {
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

/// One transfer's progress.
pub struct Progress {
    mode: Mode,
    bar: Option<ProgressBar>,
    name: String,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    /// Nothing shown yet.
    pub fn new(mode: Mode) -> Progress {
        Progress {
            mode,
            bar: None,
            name: String::new(),
            total: 0,
            done: 0,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    /// A transfer of about `total` bytes (`messages` for the label) begins.
    pub fn start(&mut self, name: &str, total: u64, messages: u64) {
        self.name = name.to_string();
        self.total = total;
        self.done = 0;
        self.started = Instant::now();
        self.last_line = Instant::now();
        match self.mode {
            Mode::Bar => {
                let bar = ProgressBar::new(total.max(1));
                let style = ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                bar.set_style(style);
                bar.set_message(if messages > 0 {
                    format!("{name} ({messages} msgs)")
                } else {
                    name.to_string()
                });
                self.bar = Some(bar);
            }
            Mode::Lines => eprintln!("{name}: starting, about {total} bytes, {messages} messages"),
            Mode::Quiet => {}
        }
    }

    /// `n` more bytes moved.
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        match self.mode {
            Mode::Bar => {
                if let Some(b) = &self.bar {
                    if self.done > b.length().unwrap_or(0) {
                        b.set_length(self.done);
                    }
                    b.set_position(self.done);
                }
            }
            Mode::Lines if self.last_line.elapsed() >= LINE_EVERY => {
                self.last_line = Instant::now();
                let secs = self.started.elapsed().as_secs_f64().max(1e-3);
                eprintln!(
                    "{}: {} bytes, {:.1} MB/s",
                    self.name,
                    self.done,
                    self.done as f64 / secs / 1e6
                );
            }
            _ => {}
        }
    }

    /// The transfer ended; `line` says how.
    pub fn finish(&mut self, line: &str) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if self.mode != Mode::Quiet {
            eprintln!("{line}");
        }
    }
}
