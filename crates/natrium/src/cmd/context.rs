//! `natrium context`: named connection settings, as the `nats` CLI keeps
//! them.
//!
//! Each context is a JSON file `context/NAME.json` under
//! `$XDG_CONFIG_HOME/natrium` (else `~/.config/natrium`); the selected one
//! is named in `context.txt` there. Flags and environment variables always
//! win over the context's values (see `ConnectArgs::apply_context`).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::cmd::{Force, JsonFlag};
use crate::connect::ConnectArgs;
use crate::error::{Error, Result};
use crate::output::{self, out};

/// A saved set of connection settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Context {
    /// Free text shown by `context ls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Server URL list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Credentials file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds: Option<PathBuf>,
    /// Nkey seed file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey: Option<PathBuf>,
    /// TLS client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlscert: Option<PathBuf>,
    /// TLS client key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlskey: Option<PathBuf>,
    /// TLS CA certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlsca: Option<PathBuf>,
}

/// Arguments of `natrium context`.
#[derive(Args, Debug)]
pub struct ContextArgs {
    #[command(flatten)]
    json: JsonFlag,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Save a context from the connection flags given (-s, --user, --creds, ...).
    #[command(alias = "create")]
    Add {
        /// Context name.
        name: String,
        /// A description shown by `context ls`.
        #[arg(long)]
        description: Option<String>,
        /// Also select it.
        #[arg(long)]
        select: bool,
    },
    /// Make a context the one used when --context is not given.
    #[command(alias = "switch")]
    Select {
        /// Context name.
        name: String,
    },
    /// List the saved contexts.
    #[command(alias = "list")]
    Ls,
    /// Show one context (the selected one by default).
    #[command(alias = "show")]
    Info {
        /// Context name.
        name: Option<String>,
    },
    /// Delete a context.
    #[command(alias = "delete")]
    Rm {
        /// Context name.
        name: String,
        #[command(flatten)]
        force: Force,
    },
}

/// The configuration directory.
pub fn config_dir() -> Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("natrium"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".config").join("natrium")),
        None => Err(Error::BadInput(
            "cannot find the configuration directory: set XDG_CONFIG_HOME or HOME".into(),
        )),
    }
}

fn context_path(dir: &Path, name: &str) -> Result<PathBuf> {
    if name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
    {
        return Err(Error::Usage(format!(
            "invalid context name {name:?}: no '/', no leading '.'"
        )));
    }
    Ok(dir.join("context").join(format!("{name}.json")))
}

/// Loads a context by name.
pub fn load(name: &str) -> Result<Context> {
    let dir = config_dir()?;
    let path = context_path(&dir, name)?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::BadInput(format!(
                "unknown context {name:?} (see `natrium context ls`)"
            ))
        } else {
            Error::BadInput(format!("cannot read context {}: {e}", path.display()))
        }
    })?;
    serde_json::from_str(&text)
        .map_err(|e| Error::BadInput(format!("context file {} is not valid: {e}", path.display())))
}

/// The selected context's name, if any.
pub fn selected() -> Result<Option<String>> {
    let path = config_dir()?.join("context.txt");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::BadInput(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Loads the selected context, if one is selected.
pub fn load_selected() -> Result<Option<Context>> {
    match selected()? {
        Some(name) => load(&name).map(Some),
        None => Ok(None),
    }
}

fn names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(dir.join("context")) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(Error::BadInput(format!("cannot list contexts: {e}"))),
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.extension().is_some_and(|x| x == "json")
            && let Some(stem) = p.file_stem()
        {
            names.push(stem.to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::BadInput(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::write(path, data)
        .map_err(|e| Error::BadInput(format!("cannot write {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

/// Runs `natrium context …` with the raw (not context-filled) flags.
pub fn run(conn: &ConnectArgs, args: ContextArgs) -> Result<()> {
    let dir = config_dir()?;
    let json = args.json.json;
    match args.cmd {
        Cmd::Add {
            name,
            description,
            select,
        } => {
            let path = context_path(&dir, &name)?;
            let ctx = Context {
                description,
                url: conn.server.clone(),
                user: conn.user.clone(),
                password: conn.password.clone(),
                token: conn.token.clone(),
                creds: conn.creds.clone(),
                nkey: conn.nkey.clone(),
                tlscert: conn.tlscert.clone(),
                tlskey: conn.tlskey.clone(),
                tlsca: conn.tlsca.clone(),
            };
            write_file(&path, serde_json::to_string_pretty(&ctx)?.as_bytes())?;
            if select {
                write_file(&dir.join("context.txt"), name.as_bytes())?;
            }
            if json {
                output::json(&ctx)
            } else {
                out(format!("Saved context {name:?} in {}", path.display()))
            }
        }
        Cmd::Select { name } => {
            load(&name)?;
            write_file(&dir.join("context.txt"), name.as_bytes())?;
            if !json {
                out(format!("Selected context {name:?}"))?;
            }
            Ok(())
        }
        Cmd::Ls => {
            let sel = selected()?;
            let mut rows = Vec::new();
            for n in names(&dir)? {
                let ctx = load(&n)?;
                rows.push((n, ctx));
            }
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(n, c)| {
                        serde_json::json!({
                            "name": n,
                            "selected": sel.as_deref() == Some(n.as_str()),
                            "description": c.description,
                            "url": c.url,
                        })
                    })
                    .collect();
                return output::json(&v);
            }
            if rows.is_empty() {
                return out("No contexts defined (add one with `natrium context add NAME -s URL`)");
            }
            let mut t = output::table(Some("Known contexts:"), &["Name", "Description", "Server"]);
            for (n, c) in &rows {
                let mark = if sel.as_deref() == Some(n.as_str()) {
                    format!("{n}*")
                } else {
                    n.clone()
                };
                t.row([
                    mark,
                    c.description.clone().unwrap_or_default(),
                    c.url
                        .clone()
                        .unwrap_or_else(|| crate::connect::DEFAULT_SERVER.into()),
                ]);
            }
            t.print()
        }
        Cmd::Info { name } => {
            let name = match name.or(selected()?) {
                Some(n) => n,
                None => return Err(Error::Usage("no context selected; name one".into())),
            };
            let mut ctx = load(&name)?;
            if ctx.password.is_some() {
                ctx.password = Some("*********".into());
            }
            if ctx.token.is_some() {
                ctx.token = Some("*********".into());
            }
            if json {
                return output::json(&ctx);
            }
            output::kv_block(&[
                ("Name", name.clone()),
                ("Description", ctx.description.unwrap_or_default()),
                (
                    "Server URLs",
                    ctx.url
                        .unwrap_or_else(|| crate::connect::DEFAULT_SERVER.into()),
                ),
                ("Username", ctx.user.unwrap_or_default()),
                ("Password", ctx.password.unwrap_or_default()),
                ("Token", ctx.token.unwrap_or_default()),
                (
                    "Credentials",
                    ctx.creds
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                ),
                (
                    "NKey",
                    ctx.nkey
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                ),
            ])
        }
        Cmd::Rm { name, force } => {
            let path = context_path(&dir, &name)?;
            if !path.exists() {
                return Err(Error::BadInput(format!("unknown context {name:?}")));
            }
            force.confirm(&format!("Delete context {name:?}?"))?;
            std::fs::remove_file(&path)
                .map_err(|e| Error::BadInput(format!("cannot delete {}: {e}", path.display())))?;
            if selected()?.as_deref() == Some(name.as_str()) {
                let _ = std::fs::remove_file(dir.join("context.txt"));
            }
            if !json {
                out(format!("Deleted context {name:?}"))?;
            }
            Ok(())
        }
    }
}
