//! `sluice`: the single binary that wires ingest, transcoder, packager, storage and API together.
//!
//! Subcommands: `sluice serve` runs every role of the platform in one process on the embedded
//! defaults (SQLite and local files under `./data`, HTTP on :8080, RTMP on :1935).

mod config;
mod live;
mod serve;
mod webhooks;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

/// Self-hostable live streaming and video on demand.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server: REST API, HLS delivery and RTMP ingest.
    Serve(config::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(
                |_| // Postgres notices ("relation … already exists, skipping") are noise.
                tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn"),
            ),
        )
        // Colours only for a terminal: log files and journals get plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = config::Config::load(&args)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(serve::run(config))
        }
    }
}
