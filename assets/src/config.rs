//! The asset side's configuration sections, beside the components they build: `[worker]`
//! ([`WorkerConfig`]: concurrency, preset, lease, source limits) and `[import]`
//! ([`ImportConfig`]: which hosts URL imports may reach, timeouts). Every field documents its
//! default; unknown keys are an error. The server's configuration file embeds them and calls
//! their `validate`.

use std::time::Duration;

use serde::Deserialize;
use sluice_transcoder::{Preset, ProbeLimits};

/// Asset jobs one worker process runs at once.
pub const DEFAULT_WORKER_CONCURRENCY: usize = 1;
/// x264 preset of on-demand renditions: a file is not bound to real time, so it can afford a
/// slower preset than live.
pub const DEFAULT_WORKER_PRESET: Preset = Preset::Veryfast;
/// How long a worker's claim on a job lasts without a heartbeat; a worker that dies leaves
/// its job to another this long after its last heartbeat.
pub const DEFAULT_WORKER_LEASE_SECONDS: f64 = 30.0;
/// Longest a URL import may take, download included.
pub const DEFAULT_IMPORT_TIMEOUT_SECONDS: f64 = 3600.0;
/// Longest one connection attempt of a URL import may take.
pub const DEFAULT_IMPORT_CONNECT_TIMEOUT_SECONDS: f64 = 10.0;
/// Settings of the asset worker (`[worker]`), in `sluice serve` and `sluice worker`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Whether `sluice serve` with role `all` runs a worker in its own process (role
    /// `worker` and `sluice worker` always do, roles `api` and `ingest` never). Default: true.
    pub enabled: bool,
    /// Asset jobs processed at once. Default: [`DEFAULT_WORKER_CONCURRENCY`].
    pub concurrency: usize,
    /// x264 preset of the renditions. Default: [`DEFAULT_WORKER_PRESET`].
    pub preset: Preset,
    /// Lease of a claimed job, renewed by heartbeats. Default:
    /// [`DEFAULT_WORKER_LEASE_SECONDS`].
    pub lease_seconds: f64,
    /// Largest source file accepted, in bytes (uploads, imports and the probe). Default:
    /// [`ProbeLimits::DEFAULT_MAX_FILE_SIZE`].
    pub max_file_size: u64,
    /// Longest source accepted, in seconds. Default: [`ProbeLimits::DEFAULT_MAX_DURATION`].
    pub max_duration_seconds: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            enabled: true,
            concurrency: DEFAULT_WORKER_CONCURRENCY,
            preset: DEFAULT_WORKER_PRESET,
            lease_seconds: DEFAULT_WORKER_LEASE_SECONDS,
            max_file_size: ProbeLimits::DEFAULT_MAX_FILE_SIZE,
            max_duration_seconds: ProbeLimits::DEFAULT_MAX_DURATION.as_secs(),
        }
    }
}

impl WorkerConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs_f64(self.lease_seconds)
    }

    /// What the probe accepts of a source.
    pub fn probe_limits(&self) -> ProbeLimits {
        ProbeLimits {
            max_file_size: self.max_file_size,
            max_duration: Duration::from_secs(self.max_duration_seconds),
            ..ProbeLimits::default()
        }
    }

    /// Checks the bounds of every field; the message names the field as `worker.…`.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=64).contains(&self.concurrency),
            "worker.concurrency must be between 1 and 64"
        );
        anyhow::ensure!(
            self.lease_seconds.is_finite() && (1.0..=3600.0).contains(&self.lease_seconds),
            "worker.lease_seconds must be between 1 and 3600"
        );
        anyhow::ensure!(
            self.max_file_size > 0 && self.max_duration_seconds > 0,
            "worker.max_file_size and worker.max_duration_seconds must be more than 0"
        );
        Ok(())
    }
}

/// Settings of URL imports (`[import]`). See [`crate::import`] for what is refused.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImportConfig {
    /// Hosts that may be fetched although they are not public: host names as written in
    /// URLs (`"media.internal"`, `"localhost:8080"` for one port), addresses
    /// (`"127.0.0.1"`, `"[::1]:8080"`) or networks (`"10.20.0.0/16"`). Default: none.
    pub allow_hosts: Vec<String>,
    /// Longest an import may take. Default: [`DEFAULT_IMPORT_TIMEOUT_SECONDS`].
    pub timeout_seconds: f64,
    /// Longest one connection attempt may take. Default:
    /// [`DEFAULT_IMPORT_CONNECT_TIMEOUT_SECONDS`].
    pub connect_timeout_seconds: f64,
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            allow_hosts: Vec::new(),
            timeout_seconds: DEFAULT_IMPORT_TIMEOUT_SECONDS,
            connect_timeout_seconds: DEFAULT_IMPORT_CONNECT_TIMEOUT_SECONDS,
        }
    }
}

impl ImportConfig {
    /// The importer these settings describe, refusing files over `max_size` bytes.
    pub fn importer(&self, max_size: u64) -> anyhow::Result<crate::import::Importer> {
        crate::import::Importer::new(
            &self.allow_hosts,
            max_size,
            Duration::from_secs_f64(self.timeout_seconds),
            Duration::from_secs_f64(self.connect_timeout_seconds),
        )
        .map_err(|message| anyhow::anyhow!("import.allow_hosts: {message}"))
    }

    /// Checks the bounds of every field; the message names the field as `import.…`.
    pub fn validate(&self) -> anyhow::Result<()> {
        let in_range = |value: f64| value.is_finite() && value > 0.0 && value <= 86_400.0;
        anyhow::ensure!(
            in_range(self.timeout_seconds) && in_range(self.connect_timeout_seconds),
            "import.timeout_seconds and import.connect_timeout_seconds must be more than 0 and \
             at most 86400"
        );
        self.importer(1).map(drop)
    }
}
