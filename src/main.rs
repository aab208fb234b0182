//! `sluice`: the single binary that wires ingest, transcoder, packager, storage and API together.
//!
//! Subcommands: `sluice serve` runs every role of the platform in one process on the embedded
//! defaults (SQLite and local files under `./data`, HTTP on :8080, RTMP on :1935), or one role
//! of a multi-process deployment with `--role api|ingest|worker`; `sluice worker` is `serve
//! --role worker` without an HTTP port, beside a `serve` on the same database and objects;
//! `sluice keys create|list|revoke` manages API keys in a data directory; `sluice transcode
//! INPUT -o OUTDIR` writes a file's HLS tree locally, without a server.

mod config;
mod event_views;
mod http_server;
mod images;
mod keys;
mod low_latency;
mod memory;
mod serve;
mod transcode;
mod webhooks;

use std::io::IsTerminal;

/// The runtime a server role runs on. Its blocking pool keeps tokio's bound of 512 threads:
/// asset jobs hold a pool thread for their whole length and store through `tokio::fs` from
/// it, so a bound near the worker's concurrency could leave every job waiting for a thread.
fn server_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

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
    /// Creates, lists and revokes API keys in the database of a data directory.
    Keys(keys::KeysArgs),
    /// Runs only the asset worker, on the database and objects `serve` uses (same flags and
    /// configuration file): `serve --role worker` without an HTTP port.
    Worker(config::ServeArgs),
    /// Transcodes a local media file into a VOD HLS tree (no server needed).
    Transcode(transcode::TranscodeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Before any thread starts (setting the environment is safe only then): the speech engine's
    // ONNX Runtime runs each model on one thread unless the operator says otherwise. On a
    // machine that also encodes video that costs 0.6 times the CPU of its default pools and
    // holds up when the other cores are busy (docs/BENCHMARKS.md, "Transcription: VOD").
    if std::env::var_os(sluice_transcribe::SINGLE_THREAD_ENV).is_none() {
        std::env::set_var(sluice_transcribe::SINGLE_THREAD_ENV, "1");
    }
    // A server logs its work; a `keys` command prints its result and logs only problems.
    let default_log = match cli.command {
        // Postgres notices ("relation … already exists, skipping") are noise.
        Command::Serve(_) | Command::Worker(_) => "info,sqlx::postgres::notice=warn",
        Command::Keys(_) | Command::Transcode(_) => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        // Colours only for a terminal: log files and journals get plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    match cli.command {
        Command::Serve(args) => {
            let config = config::Config::load(&args)?;
            server_runtime()?.block_on(serve::run(config, serve::OperationsHttp::Serve))
        }
        Command::Worker(args) => {
            anyhow::ensure!(
                args.role.is_none_or(|role| role == config::Role::Worker),
                "`sluice worker` runs the worker role only; use `sluice serve --role` for others"
            );
            let config = config::Config {
                role: config::Role::Worker,
                ..config::Config::load(&args)?
            };
            server_runtime()?.block_on(serve::run(config, serve::OperationsHttp::Off))
        }
        Command::Keys(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(keys::run(args)),
        Command::Transcode(args) => transcode::run(args),
    }
}
