//! Reader for the NATS server configuration format (`nats-server -c file.conf`).
//!
//! Natrium has to accept the config files people already run nats-server with, and give
//! them the same meaning, so this is a from-scratch parser for that relaxed JSON/HCL-like
//! format that follows nats-server 2.15's behaviour, including its traps: unquoted `2m` is
//! the integer 2,000,000 (size suffix), `$2a$…` bcrypt hashes are not variables, variables
//! are not interpolated inside strings, environment values are themselves parsed as config
//! values, and includes are relative to the including file.
//!
//! The result is a tree of [`Map`]/[`Value`] where every value and key remembers its
//! position, so that the options mapper can report `file:line:col: message` the way
//! nats-server does. The parser is pure: it reads included files but does no networking
//! and needs no async runtime. It never panics on any input and bounds every kind of
//! nesting (maps, arrays, includes, variable expansions).
//!
//! Where nats-server's own lexer fails in an obviously unintended way, this parser accepts
//! the evident meaning instead (e.g. `[1,2]`, absolute include paths, a `)` that ends a
//! block string at end of file); where nats-server silently loses data it reports an error
//! (an unknown size suffix such as `1mbi`, an integer overflowing with its suffix, `key: }`).
//!
//! Entry points: [`parse_file`], [`parse_str`] and their `_with_env` variants (which take an
//! environment lookup so tests need not touch the process environment). Typed accessors for
//! the mapper are in [`convert`] and re-exported here.

pub mod convert;
mod error;
mod lexer;
mod parser;
mod value;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

pub use convert::{
    ConfResult, as_bool, as_f64, as_i64, as_size, as_string, duration, duration_nanos,
    duration_strict, parse_go_duration, storage_size, storage_size_str,
};
pub use error::{ConfError, ConfErrorKind, ConfWarning};
pub use parser::{EnvLookup, MAX_DEPTH, MAX_INCLUDE_DEPTH};
pub use value::{Entry, Map, Pos, Spanned, Value, keys_equal_ignore_case};

use parser::{Parser, Shared};

/// Reads an environment variable of this process. Names that the OS cannot hold (empty,
/// containing `=` or NUL) are simply unset.
pub fn process_env(name: &str) -> Option<String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return None;
    }
    std::env::var(name).ok()
}

/// Largest config file (or included file) read. Config files are kilobytes; the bound
/// keeps a mistyped path (`include "/dev/zero"`, a log file) from eating memory.
pub const MAX_CONFIG_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a config file: a regular file of at most [`MAX_CONFIG_FILE_BYTES`] (a device,
/// FIFO or directory is refused rather than read forever or blocked on).
pub(crate) fn read_config_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > MAX_CONFIG_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_CONFIG_FILE_BYTES} bytes"),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(MAX_CONFIG_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_CONFIG_FILE_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

/// Parses the config file at `path`, resolving `$VARIABLES` from the process environment
/// and includes relative to the file's directory.
///
/// # Errors
/// The file or an included one cannot be read, the text is not valid config, or a
/// variable cannot be resolved; the error says where.
pub fn parse_file(path: &Path) -> Result<Map, ConfError> {
    parse_file_with_env(path, &process_env)
}

/// Like [`parse_file`], with environment lookups going to `env`.
///
/// # Errors
/// As [`parse_file`].
pub fn parse_file_with_env(path: &Path, env: EnvLookup<'_>) -> Result<Map, ConfError> {
    let bytes = read_config_file(path).map_err(|e| ConfError {
        file: Some(path.to_path_buf()),
        line: 0,
        column: 0,
        message: format!("open {}: {}", path.display(), error::io_reason(&e)),
        kind: ConfErrorKind::Io,
    })?;
    // nats-server treats the file as bytes; invalid UTF-8 (say, a Latin-1 comment) is
    // replaced rather than refused.
    let text = String::from_utf8_lossy(&bytes);
    let mut shared = Shared::new(env);
    shared.enter_file(path);
    let base_dir = path.parent().map(Path::to_path_buf);
    Parser::new(
        &text,
        Some(Arc::new(path.to_path_buf())),
        base_dir,
        &mut shared,
    )
    .parse_document()
}

/// Parses config text, resolving `$VARIABLES` from the process environment and includes
/// relative to the current working directory.
///
/// # Errors
/// As [`parse_file`].
pub fn parse_str(text: &str) -> Result<Map, ConfError> {
    parse_str_with_env(text, &process_env)
}

/// Like [`parse_str`], with environment lookups going to `env`.
///
/// # Errors
/// As [`parse_file`].
pub fn parse_str_with_env(text: &str, env: EnvLookup<'_>) -> Result<Map, ConfError> {
    let mut shared = Shared::new(env);
    Parser::new(text, None, None, &mut shared).parse_document()
}

/// Like [`parse_str_with_env`], with includes resolved relative to `base_dir`.
///
/// # Errors
/// As [`parse_file`].
pub fn parse_str_in_dir(text: &str, base_dir: &Path, env: EnvLookup<'_>) -> Result<Map, ConfError> {
    let mut shared = Shared::new(env);
    Parser::new(text, None, Some(base_dir.to_path_buf()), &mut shared).parse_document()
}
