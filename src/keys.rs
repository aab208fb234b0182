//! `sluice keys create|list|revoke`: manages API keys directly in the database of a data
//! directory (the same configuration, database and master key as `sluice serve`), so a first
//! key can be made, or a leaked one revoked, without calling the API. A running server sees the
//! change at once.

use std::path::PathBuf;

use clap::Subcommand;
use sluice_storage::{ApiKey, Permission};

use crate::config::{Config, ServeArgs};
use crate::serve::open_database;

/// Flags of `sluice keys`.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    /// TOML configuration file, as for `sluice serve`.
    #[arg(long, env = "SLUICE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data directory of the server [default: ./data].
    #[arg(long, env = "SLUICE_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Metadata database, as for `sluice serve`: `postgres://USER:PASSWORD@HOST/DB` or
    /// `sqlite:PATH` [default: SQLite at DATA_DIR/sluice.db].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Creates an API key and prints its secret, shown this once.
    Create {
        /// What the key is for.
        #[arg(long)]
        name: String,
        /// Comma-separated permissions [default: admin]: admin, live:read, live:write,
        /// assets:read, assets:write, rooms:read, rooms:write, events:read.
        #[arg(long, value_delimiter = ',')]
        permissions: Option<Vec<String>>,
    },
    /// Lists every API key (never a secret).
    List,
    /// Revokes an API key: requests with it fail from now on.
    Revoke {
        /// The key's id (`ak_…`).
        key_id: String,
    },
}

fn permission_names(permissions: &[Permission]) -> String {
    permissions
        .iter()
        .map(|permission| permission.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn describe(key: &ApiKey) -> String {
    let status = match key.revoked_at {
        Some(at) => format!("revoked {}", at.to_rfc3339()),
        None => "active".to_owned(),
    };
    format!(
        "{}\t{}\t{}\t{}\t{}",
        key.id,
        key.name,
        permission_names(&key.permissions),
        key.created_at.to_rfc3339(),
        status
    )
}

/// Runs one `sluice keys` command, printing its result.
pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let config = Config::load(&ServeArgs {
        config: args.config,
        data_dir: args.data_dir,
        database_url: args.database_url,
        ..ServeArgs::default()
    })?;
    let db = open_database(&config).await?;
    match args.command {
        KeysCommand::Create { name, permissions } => {
            anyhow::ensure!(!name.trim().is_empty(), "--name must not be empty");
            let permissions = match permissions {
                Some(names) => Permission::parse_list(&names)
                    .map_err(|message| anyhow::anyhow!("--permissions: {message}"))?,
                None => vec![Permission::Admin],
            };
            let (key, secret) = db.create_api_key(&name, &permissions).await?;
            println!(
                "Created API key {name:?}. Its secret is shown only now: store it.\n\
                 key:         {}\n\
                 secret:      {secret}\n\
                 permissions: {}",
                key.id,
                permission_names(&key.permissions)
            );
        }
        KeysCommand::List => {
            println!("ID\tNAME\tPERMISSIONS\tCREATED\tSTATUS");
            let mut cursor = None;
            loop {
                let page = db
                    .list_api_keys(sluice_storage::MAX_PAGE_SIZE, cursor.as_deref())
                    .await?;
                for key in &page.items {
                    println!("{}", describe(key));
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        KeysCommand::Revoke { key_id } => {
            db.revoke_api_key(&key_id).await.map_err(|error| {
                if error.is_not_found() {
                    anyhow::anyhow!("there is no API key {key_id}")
                } else {
                    anyhow::Error::new(error).context("revoking the key")
                }
            })?;
            println!("Revoked API key {key_id}: it no longer authenticates.");
        }
    }
    Ok(())
}
