//! Fuzz the NATS config-file parser and the step that turns its map into server options:
//! any text must give a map or an error (never a panic, never unbounded work), and a map
//! must give options or an error. Relative includes resolve in a folder that does not
//! exist and environment variables are never set; an absolute include is read as it is,
//! but only a regular file of bounded size (`conf::read_config_file`), so `/dev/zero` or
//! `/dev/stdin` is an error, not a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natrium_server::conf::parse_str_in_dir;
use natrium_server::config_file::apply;
use natrium_server::options::Options;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let no_env = |_: &str| None;
    let Ok(map) = parse_str_in_dir(text, Path::new("/nonexistent-natrium-fuzz"), &no_env) else {
        return;
    };
    let mut opts = Options::default();
    let _ = apply(&mut opts, &map);
});
