//! Server configuration: defaults, an optional TOML file, then flags and environment variables.
//!
//! Precedence, lowest first: the `DEFAULT_*` constants below, the file named by `--config`
//! [SLUICE_CONFIG], then each flag or its environment variable. Unknown keys in the file are
//! an error, so a typo never silently falls back to a default.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use sluice_live::address_policy::AddressPolicy;
use sluice_storage::{Playback, S3Config, S3Credentials};

/// HTTP API and HLS delivery listen address.
pub const DEFAULT_HTTP: &str = "0.0.0.0:8080";
/// RTMP ingest listen address.
pub const DEFAULT_RTMP: &str = "0.0.0.0:1935";
pub use sluice_storage::DEFAULT_DATA_DIR;

/// The HTTP listener's section (`[http_server]`), documented beside it.
pub use crate::http_server::HttpServerConfig;
/// The asset side's sections (`[worker]`, `[import]`), documented beside it.
pub use sluice_assets::config::{ImportConfig, WorkerConfig};
/// The live core's sections (`[live]`, `[whip]`, `[restream]`), documented beside it.
pub use sluice_live::config::{LiveConfig, RestreamConfig, WhipConfig};

/// Seconds a webhook receiver has to answer one delivery attempt.
pub const DEFAULT_WEBHOOK_TIMEOUT_SECONDS: f64 = 10.0;
/// Upper bound of the first retry delay of a failed webhook delivery; it doubles per attempt.
pub const DEFAULT_WEBHOOK_RETRY_BASE_SECONDS: f64 = 10.0;
/// Longest delay between two attempts of a webhook delivery.
pub const DEFAULT_WEBHOOK_RETRY_MAX_INTERVAL_SECONDS: f64 = 3600.0;
/// How long a webhook delivery is retried before it is marked failed.
pub const DEFAULT_WEBHOOK_GIVE_UP_AFTER_HOURS: f64 = 24.0;

/// Largest direct upload accepted, in bytes: 20 GiB.
pub const DEFAULT_UPLOAD_MAX_SIZE_BYTES: i64 = 20 * 1024 * 1024 * 1024;
/// Seconds between two sweeps timing out expired uploads.
pub const DEFAULT_UPLOAD_SWEEP_INTERVAL_SECONDS: f64 = 60.0;
/// How long a presigned segment URL handed out in `redirect` playback stays valid.
pub const DEFAULT_PRESIGN_SECONDS: u64 = 3600;
/// Longest validity of a presigned URL S3 accepts (SigV4: seven days).
const MAX_PRESIGN_SECONDS: u64 = 7 * 24 * 3600;

/// Flags of `sluice serve`; each has an environment variable equivalent.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys as in `Config`).
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP listen address [default: 0.0.0.0:8080].
    #[arg(long, env = "SLUICE_HTTP")]
    pub http: Option<SocketAddr>,
    /// RTMP listen address [default: 0.0.0.0:1935].
    #[arg(long, env = "SLUICE_RTMP")]
    pub rtmp: Option<SocketAddr>,
    /// Data directory [default: ./data].
    #[arg(long, env = "SLUICE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Base URL viewers and API clients reach this server at [default: http://localhost:PORT].
    #[arg(long, env = "SLUICE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Base URL other Sluice nodes reach this node's HTTP port at, for LL-HLS between api and
    /// ingest nodes [default: http://HTTP_ADDRESS unless it binds every interface].
    #[arg(long, env = "SLUICE_INTERNAL_URL")]
    pub internal_url: Option<String>,
    /// Metadata database: `postgres://USER:PASSWORD@HOST/DB` or `sqlite:PATH`
    /// [default: SQLite at DATA_DIR/sluice.db].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// What this process runs: `all` (everything, on one machine), `api`, `ingest` or
    /// `worker` (see docs/DEPLOYMENT.md) [default: all].
    #[arg(long, env = "SLUICE_ROLE", value_enum)]
    pub role: Option<Role>,
    /// Object storage: `s3://BUCKET/PREFIX`, reached with the standard AWS environment
    /// (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION)
    /// [default: files under DATA_DIR/objects].
    #[arg(long, env = "SLUICE_STORAGE")]
    pub storage: Option<String>,
}

/// The part of the platform a server process runs; several processes with different roles
/// share one database and object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything in one process: the API, RTMP ingest and (unless `[worker] enabled =
    /// false`) the asset worker.
    #[default]
    All,
    /// The REST API, HLS and image delivery, uploads and their sweeper, and webhook delivery.
    Api,
    /// RTMP ingest: live sessions, their ladders and live playlists.
    Ingest,
    /// The asset worker: VOD jobs from the queue.
    Worker,
}

impl Role {
    /// Whether this role serves the REST API, playback and uploads, and delivers webhooks.
    pub fn serves_api(self) -> bool {
        matches!(self, Role::All | Role::Api)
    }

    /// Whether this role takes RTMP publishers.
    pub fn ingests(self) -> bool {
        matches!(self, Role::All | Role::Ingest)
    }

    /// Whether this role runs the asset worker, given the `[worker]` settings.
    pub fn runs_worker(self, worker: &WorkerConfig) -> bool {
        match self {
            Role::All => worker.enabled,
            Role::Worker => true,
            Role::Api | Role::Ingest => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Ingest => "ingest",
            Role::Worker => "worker",
        }
    }
}

/// The whole configuration of a server process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTP listen address. Default: [`DEFAULT_HTTP`].
    #[serde(default = "default_http")]
    pub http: SocketAddr,
    /// RTMP listen address. Default: [`DEFAULT_RTMP`].
    #[serde(default = "default_rtmp")]
    pub rtmp: SocketAddr,
    /// Data directory. Default: [`DEFAULT_DATA_DIR`].
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Public base URL of the HTTP server. Default: `http://localhost:<http port>`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Base URL other nodes of the deployment reach this node's HTTP port at (see
    /// [`Config::internal_url`]).
    #[serde(default)]
    pub internal_url: Option<String>,
    /// Public RTMP URL encoders publish to. Default: `rtmp://<public host>:<rtmp port>/live`.
    #[serde(default)]
    pub rtmp_public_url: Option<String>,
    /// Metadata database URL (`postgres://…`, `postgresql://…` or `sqlite:…`). Default: SQLite
    /// at `<data_dir>/sluice.db`.
    #[serde(default)]
    pub database_url: Option<String>,
    /// What this process runs. Default: [`Role::All`].
    #[serde(default)]
    pub role: Role,
    /// API key id to make sure exists (from SLUICE_API_KEY). Default: none.
    #[serde(skip)]
    pub api_key: Option<(String, String)>,
    /// Live pipeline settings.
    #[serde(default)]
    pub live: LiveConfig,
    /// Webhook delivery settings.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// API authentication settings.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The asset worker.
    #[serde(default)]
    pub worker: WorkerConfig,
    /// Importing asset sources from URLs.
    #[serde(default)]
    pub import: ImportConfig,
    /// Direct upload settings.
    #[serde(default)]
    pub uploads: UploadsConfig,
    /// Where media objects are stored and how viewers fetch them.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Restreaming to simulcast targets.
    #[serde(default)]
    pub restream: RestreamConfig,
    /// WebRTC ingest over WHIP.
    #[serde(default)]
    pub whip: WhipConfig,
    /// Limits of the HTTP listener.
    #[serde(default)]
    pub http_server: HttpServerConfig,
    /// Speech recognition for generated subtitles.
    #[serde(default)]
    pub transcription: TranscriptionConfig,
    /// Real-time rooms.
    #[serde(default)]
    pub rooms: RoomsConfig,
    /// Master key sealing API key secrets, base64 (from SLUICE_MASTER_KEY). Default: the key
    /// in `data_dir/master.key`, created at first start.
    #[serde(skip)]
    pub master_key: Option<String>,
}

/// Speech recognition (`[transcription]`): generated subtitles of assets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscriptionConfig {
    /// Whether speech is recognised at all. Default: `true`; without the engine installed,
    /// transcription is off with one log line either way.
    pub enabled: bool,
    /// The unpacked `moonshine-voice` 0.0.73 wheel (`scripts/install-deps.sh` puts it there).
    /// Default: [`sluice_transcribe::DEFAULT_LIBRARY_DIR`].
    pub library_dir: PathBuf,
}

impl Default for TranscriptionConfig {
    fn default() -> Self {
        TranscriptionConfig {
            enabled: true,
            library_dir: PathBuf::from(sluice_transcribe::DEFAULT_LIBRARY_DIR),
        }
    }
}

impl TranscriptionConfig {
    /// Why speech cannot be recognised here (turned off, or the engine's files are missing),
    /// checked without loading the engine; `None` when it can.
    pub fn unavailable(&self) -> Option<String> {
        if !self.enabled {
            return Some(
                "transcription is turned off ([transcription] enabled = false)".to_owned(),
            );
        }
        sluice_transcribe::Moonshine::check_installed(&self.library_dir)
            .err()
            .map(|e| e.to_string())
    }
}

/// Real-time rooms (`[rooms]`): LiveKit's client SDKs join them over the `/rtc` WebSocket;
/// their media flows over one UDP port, ICE-lite as WHIP's, so that port and the announced
/// address must be reachable by participants.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// Whether this process runs rooms (role `all` or `api`). Default: `true`.
    pub enabled: bool,
    /// The UDP port room media arrives on, bound on the HTTP listener's address. Default: the
    /// HTTP port's number plus 2 (LiveKit's layout: 7880 for signalling, 7882 for media); `0`
    /// picks a free one.
    pub udp_port: Option<u16>,
    /// The address announced in the host candidate. Default: as `[whip] public_ip`.
    pub public_ip: Option<IpAddr>,
    /// Joining a room name that does not exist creates it, as LiveKit does. Default: `true`.
    pub auto_create: bool,
    /// Participants this node holds, all rooms together. Default:
    /// [`DEFAULT_ROOMS_MAX_PARTICIPANTS`].
    pub max_participants: usize,
}

/// Default of [`RoomsConfig::max_participants`].
pub const DEFAULT_ROOMS_MAX_PARTICIPANTS: usize = 500;

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig {
            enabled: true,
            udp_port: None,
            public_ip: None,
            auto_create: true,
            max_participants: DEFAULT_ROOMS_MAX_PARTICIPANTS,
        }
    }
}

impl RoomsConfig {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=100_000).contains(&self.max_participants),
            "rooms.max_participants must be between 1 and 100000"
        );
        Ok(())
    }
}

/// Settings of webhook delivery (`[webhooks]`). Durations accept fractions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Time a receiver has to answer one attempt. Default: [`DEFAULT_WEBHOOK_TIMEOUT_SECONDS`].
    pub timeout_seconds: f64,
    /// Upper bound of the first retry delay; it doubles with every failed attempt, and the
    /// actual delay is drawn at random below it (full jitter). Default:
    /// [`DEFAULT_WEBHOOK_RETRY_BASE_SECONDS`].
    pub retry_base_seconds: f64,
    /// Cap of the retry delay. Default: [`DEFAULT_WEBHOOK_RETRY_MAX_INTERVAL_SECONDS`].
    pub retry_max_interval_seconds: f64,
    /// Retry window of a delivery, from when it was queued; after it the delivery is failed.
    /// Default: [`DEFAULT_WEBHOOK_GIVE_UP_AFTER_HOURS`].
    pub give_up_after_hours: f64,
    /// Refuse to deliver to URLs that resolve to a loopback, private, link-local or other
    /// non-public address (the address policy of imports and restreams), so whoever may
    /// create webhook endpoints cannot reach the server's own network. Default: `false`
    /// (receivers on the same host or network are common).
    pub deny_private: bool,
    /// With `deny_private`, the hosts, addresses and networks that may still be reached
    /// (the form of `[import] allow_hosts`). Default: none.
    pub allow_hosts: Vec<String>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            timeout_seconds: DEFAULT_WEBHOOK_TIMEOUT_SECONDS,
            retry_base_seconds: DEFAULT_WEBHOOK_RETRY_BASE_SECONDS,
            retry_max_interval_seconds: DEFAULT_WEBHOOK_RETRY_MAX_INTERVAL_SECONDS,
            give_up_after_hours: DEFAULT_WEBHOOK_GIVE_UP_AFTER_HOURS,
            deny_private: false,
            allow_hosts: Vec::new(),
        }
    }
}

/// Settings of direct uploads (`[uploads]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsConfig {
    /// Where incomplete uploads are spooled. Default: `<data_dir>/uploads`.
    pub spool_dir: Option<PathBuf>,
    /// Largest upload accepted, and the default `max_size` of a new upload. Default:
    /// [`DEFAULT_UPLOAD_MAX_SIZE_BYTES`].
    pub max_size_bytes: i64,
    /// How long an upload URL accepts bytes when the request names no `timeout`. Default:
    /// [`sluice_api::DEFAULT_UPLOAD_TIMEOUT_S`].
    pub default_timeout_seconds: u64,
    /// Time between two sweeps timing out expired uploads (fractions accepted). Default:
    /// [`DEFAULT_UPLOAD_SWEEP_INTERVAL_SECONDS`].
    pub sweep_interval_seconds: f64,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        UploadsConfig {
            spool_dir: None,
            max_size_bytes: DEFAULT_UPLOAD_MAX_SIZE_BYTES,
            default_timeout_seconds: sluice_api::DEFAULT_UPLOAD_TIMEOUT_S,
            sweep_interval_seconds: DEFAULT_UPLOAD_SWEEP_INTERVAL_SECONDS,
        }
    }
}

/// How viewers fetch segments (`[storage] playback`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaybackMode {
    /// The server reads objects from the store and serves them.
    #[default]
    Proxy,
    /// Segment requests are answered with a redirect to a presigned URL (S3 only).
    Redirect,
    /// Playlists point at `public_base_url` + the object name (S3 only).
    Public,
}

/// Settings of the object store (`[storage]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `s3://BUCKET/PREFIX` for an S3-compatible bucket (also `--storage`/SLUICE_STORAGE).
    /// Default: none, objects are files under `<data_dir>/objects`.
    pub url: Option<String>,
    /// Endpoint URL of an S3-compatible server. Default: AWS_ENDPOINT_URL, else AWS.
    pub endpoint: Option<String>,
    /// Region. Default: AWS_REGION or the AWS profile's, else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`https://host/bucket/key`). Default: true when an endpoint is
    /// set here or in AWS_ENDPOINT_URL (self-hosted servers), false on AWS.
    pub force_path_style: Option<bool>,
    /// Access key id; set together with `secret_access_key`. Default: the standard AWS
    /// credential chain (environment, profile files, instance or container roles).
    pub access_key_id: Option<String>,
    /// Secret access key; set together with `access_key_id`.
    pub secret_access_key: Option<String>,
    /// How viewers fetch segments. Default: proxy.
    pub playback: PlaybackMode,
    /// Base URL of the bucket as viewers reach it (a CDN), for `playback = "public"`.
    pub public_base_url: Option<String>,
    /// Validity of presigned URLs in `playback = "redirect"`. Default:
    /// [`DEFAULT_PRESIGN_SECONDS`].
    pub presign_seconds: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: None,
            endpoint: None,
            region: None,
            force_path_style: None,
            access_key_id: None,
            secret_access_key: None,
            playback: PlaybackMode::Proxy,
            public_base_url: None,
            presign_seconds: DEFAULT_PRESIGN_SECONDS,
        }
    }
}

impl StorageConfig {
    /// The S3 bucket to store objects in, or `None` for the local data directory.
    pub fn s3(&self) -> anyhow::Result<Option<S3Config>> {
        let Some(url) = &self.url else {
            anyhow::ensure!(
                self.playback == PlaybackMode::Proxy,
                "storage.playback = {:?} needs S3 storage (storage.url or --storage s3://…)",
                self.playback
            );
            return Ok(None);
        };
        let mut config = S3Config::from_url(url)?;
        config.endpoint = self.endpoint.clone().filter(|e| !e.is_empty());
        config.region = self.region.clone().filter(|r| !r.is_empty());
        config.force_path_style = self.force_path_style.unwrap_or_else(|| {
            config.endpoint.is_some()
                || std::env::var("AWS_ENDPOINT_URL").is_ok_and(|e| !e.is_empty())
        });
        config.credentials = match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => Some(S3Credentials {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
            }),
            (None, None) => None,
            _ => anyhow::bail!(
                "storage.access_key_id and storage.secret_access_key must be set together"
            ),
        };
        config.playback = self.playback()?;
        Ok(Some(config))
    }

    fn playback(&self) -> anyhow::Result<Playback> {
        Ok(match self.playback {
            PlaybackMode::Proxy => Playback::Proxy,
            PlaybackMode::Redirect => {
                anyhow::ensure!(
                    (1..=MAX_PRESIGN_SECONDS).contains(&self.presign_seconds),
                    "storage.presign_seconds must be between 1 and {MAX_PRESIGN_SECONDS}"
                );
                Playback::Redirect {
                    expires_in: Duration::from_secs(self.presign_seconds),
                }
            }
            PlaybackMode::Public => {
                let base_url = self.public_base_url.as_deref().unwrap_or_default();
                let parsed = reqwest::Url::parse(base_url).map_err(|error| {
                    anyhow::anyhow!(
                        "storage.playback = \"public\" needs storage.public_base_url, an \
                         http(s) URL ({base_url:?}: {error})"
                    )
                })?;
                anyhow::ensure!(
                    matches!(parsed.scheme(), "http" | "https"),
                    "storage.public_base_url must be an http or https URL"
                );
                Playback::Public {
                    base_url: base_url.trim_end_matches('/').to_owned(),
                }
            }
        })
    }
}

impl UploadsConfig {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_size_bytes >= 1,
            "uploads.max_size_bytes must be at least 1"
        );
        anyhow::ensure!(
            (1..=sluice_api::MAX_UPLOAD_TIMEOUT_S).contains(&self.default_timeout_seconds),
            "uploads.default_timeout_seconds must be between 1 and {}",
            sluice_api::MAX_UPLOAD_TIMEOUT_S
        );
        // Also keeps `Duration::from_secs_f64` from panicking on negative or absurd values.
        anyhow::ensure!(
            self.sweep_interval_seconds.is_finite()
                && self.sweep_interval_seconds >= 0.1
                && self.sweep_interval_seconds <= 86_400.0,
            "uploads.sweep_interval_seconds must be between 0.1 and 86400"
        );
        Ok(())
    }

    /// The upload settings of a server whose data directory is `data_dir`.
    pub fn settings(&self, data_dir: &Path) -> sluice_api::UploadSettings {
        sluice_api::UploadSettings {
            spool_dir: self
                .spool_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("uploads")),
            max_size: self.max_size_bytes,
            default_timeout_s: self.default_timeout_seconds,
            sweep_interval: Duration::from_secs_f64(self.sweep_interval_seconds),
        }
    }
}

/// Settings of API authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The audience an API JWT's `aud` claim must include when present. Default:
    /// [`sluice_api::DEFAULT_JWT_AUDIENCE`].
    #[serde(default = "default_jwt_audience")]
    pub jwt_audience: String,
    /// Longest an API JWT may be valid, in seconds: a token whose `exp` lies further ahead of
    /// now, or of its `iat`, is refused. Default:
    /// [`sluice_api::DEFAULT_JWT_MAX_LIFETIME_S`] (24 hours).
    #[serde(default = "default_jwt_max_lifetime_s")]
    pub jwt_max_lifetime_s: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_audience: default_jwt_audience(),
            jwt_max_lifetime_s: default_jwt_max_lifetime_s(),
        }
    }
}

impl WebhooksConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_seconds)
    }

    pub fn retry_base(&self) -> Duration {
        Duration::from_secs_f64(self.retry_base_seconds)
    }

    pub fn retry_max_interval(&self) -> Duration {
        Duration::from_secs_f64(self.retry_max_interval_seconds)
    }

    pub fn give_up_after(&self) -> Duration {
        Duration::from_secs_f64(self.give_up_after_hours * 3600.0)
    }

    /// The addresses deliveries may reach: `None` (any) unless `deny_private`.
    pub fn address_policy(&self) -> anyhow::Result<Option<AddressPolicy>> {
        if !self.deny_private {
            return Ok(None);
        }
        AddressPolicy::new(&self.allow_hosts)
            .map(Some)
            .map_err(|message| anyhow::anyhow!("webhooks.allow_hosts: {message}"))
    }

    fn validate(&self) -> anyhow::Result<()> {
        // Also keeps `Duration::from_secs_f64` from panicking on negative or absurd values.
        let in_range = |value: f64, max: f64| value.is_finite() && value > 0.0 && value <= max;
        anyhow::ensure!(
            in_range(self.timeout_seconds, 3600.0),
            "webhooks.timeout_seconds must be more than 0 and at most 3600"
        );
        anyhow::ensure!(
            in_range(self.retry_base_seconds, 86_400.0),
            "webhooks.retry_base_seconds must be more than 0 and at most 86400"
        );
        anyhow::ensure!(
            in_range(self.retry_max_interval_seconds, 86_400.0),
            "webhooks.retry_max_interval_seconds must be more than 0 and at most 86400"
        );
        anyhow::ensure!(
            in_range(self.give_up_after_hours, 24.0 * 365.0),
            "webhooks.give_up_after_hours must be more than 0 and at most 8760 (a year)"
        );
        self.address_policy()?;
        Ok(())
    }
}

fn default_jwt_audience() -> String {
    sluice_api::DEFAULT_JWT_AUDIENCE.to_owned()
}
fn default_jwt_max_lifetime_s() -> u64 {
    sluice_api::DEFAULT_JWT_MAX_LIFETIME_S
}

fn default_http() -> SocketAddr {
    DEFAULT_HTTP.parse().expect("constant address")
}
fn default_rtmp() -> SocketAddr {
    DEFAULT_RTMP.parse().expect("constant address")
}
fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}

impl Config {
    /// Builds the configuration from defaults, the optional file, then flags and environment.
    pub fn load(args: &ServeArgs) -> anyhow::Result<Config> {
        let mut config = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => toml::from_str("").context("empty configuration")?,
        };
        if let Some(http) = args.http {
            config.http = http;
        }
        if let Some(rtmp) = args.rtmp {
            config.rtmp = rtmp;
        }
        if let Some(dir) = &args.data_dir {
            config.data_dir = dir.clone();
        }
        if config.live.spool_dir.is_none() {
            config.live.spool_dir = Some(LiveConfig::default_spool_dir(&config.data_dir));
        }
        if let Some(url) = &args.public_url {
            config.public_url = Some(url.clone());
        }
        if let Some(url) = args.internal_url.as_ref().filter(|url| !url.is_empty()) {
            config.internal_url = Some(url.clone());
        }
        if let Some(url) = args.database_url.as_ref().filter(|url| !url.is_empty()) {
            config.database_url = Some(url.clone());
        }
        if let Some(role) = args.role {
            config.role = role;
        }
        if let Some(url) = args.storage.as_ref().filter(|url| !url.is_empty()) {
            config.storage.url = Some(url.clone());
        }
        config.api_key = match (
            std::env::var("SLUICE_API_KEY"),
            std::env::var("SLUICE_API_SECRET"),
        ) {
            (Ok(key), Ok(secret)) if !key.is_empty() && !secret.is_empty() => Some((key, secret)),
            (Ok(_), Err(_)) | (Err(_), Ok(_)) => {
                anyhow::bail!("SLUICE_API_KEY and SLUICE_API_SECRET must be set together")
            }
            _ => None,
        };
        config.master_key = std::env::var("SLUICE_MASTER_KEY")
            .ok()
            .filter(|key| !key.is_empty());
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("parsing configuration file {}", path.display()))
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.live.validate()?;
        anyhow::ensure!(
            !self.auth.jwt_audience.is_empty(),
            "auth.jwt_audience must not be empty"
        );
        anyhow::ensure!(
            self.auth.jwt_max_lifetime_s > 0,
            "auth.jwt_max_lifetime_s must be at least 1"
        );
        self.webhooks.validate()?;
        self.http_server.validate()?;
        self.worker.validate()?;
        self.import.validate()?;
        self.uploads.validate()?;
        self.storage.s3()?;
        self.restream.settings()?;
        self.whip.validate()?;
        self.rooms.validate()?;
        if let Some(url) = &self.internal_url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| anyhow::anyhow!("internal_url {url:?} is not a URL: {e}"))?;
            anyhow::ensure!(
                matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some(),
                "internal_url must be an http:// or https:// URL with a host, e.g. http://ingest-1.internal:8080"
            );
        }
        Ok(())
    }

    /// The metadata database URL: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("sluice.db").display()
            ),
        }
    }

    /// Public base URL of the HTTP server, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://localhost:{}", self.http.port()),
        }
    }

    /// Base URL other nodes reach this node's HTTP port at, without a trailing slash: the
    /// configured one, else `http://HTTP_ADDRESS` when that names one interface; `None` when
    /// it binds every interface (its address would not reach it from elsewhere).
    pub fn internal_url(&self) -> Option<String> {
        match &self.internal_url {
            Some(url) => Some(url.trim_end_matches('/').to_owned()),
            None => (!self.http.ip().is_unspecified()).then(|| format!("http://{}", self.http)),
        }
    }

    /// Where WebRTC media is received: the HTTP listener's address with `[whip] udp_port`.
    pub fn whip_udp_addr(&self) -> SocketAddr {
        SocketAddr::new(
            self.http.ip(),
            self.whip.udp_port.unwrap_or(self.http.port()),
        )
    }

    /// Where room media is received: the HTTP listener's address with `[rooms] udp_port`.
    pub fn rooms_udp_addr(&self) -> SocketAddr {
        let port = self
            .rooms
            .udp_port
            .unwrap_or_else(|| self.http.port().saturating_add(2));
        SocketAddr::new(self.http.ip(), port)
    }

    /// The RTMP URL encoders are told to publish to (the stream key is appended by them).
    pub fn rtmp_public_url(&self) -> String {
        if let Some(url) = &self.rtmp_public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let public = self.public_url();
        let host = public
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(&public)
            .split(['/', ':'])
            .next()
            .unwrap_or("localhost");
        format!("rtmp://{host}:{}/live", self.rtmp.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_constants() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config.http, default_http());
        assert_eq!(config.rtmp.port(), 1935);
        assert_eq!(config.public_url(), "http://localhost:8080");
        assert_eq!(config.rtmp_public_url(), "rtmp://localhost:1935/live");
        assert_eq!(config.database_url(), "sqlite://./data/sluice.db?mode=rwc");
        assert_eq!(config.auth.jwt_audience, "sluice");
    }

    #[test]
    fn database_url_comes_from_the_file() {
        let config: Config =
            toml::from_str("database_url = \"postgres://sluice@db/sluice\"").unwrap();
        assert_eq!(config.database_url(), "postgres://sluice@db/sluice");
    }

    #[test]
    fn jwt_audience_is_configurable() {
        let config: Config = toml::from_str("[auth]\njwt_audience = \"video-api\"").unwrap();
        assert_eq!(config.auth.jwt_audience, "video-api");
        assert!(toml::from_str::<Config>("[auth]\naudience = \"x\"").is_err());
    }

    #[test]
    fn internal_url_is_the_http_address_unless_it_binds_every_interface() {
        let config: Config = toml::from_str("http = \"10.0.0.7:8080\"").unwrap();
        assert_eq!(
            config.internal_url().as_deref(),
            Some("http://10.0.0.7:8080")
        );
        let config: Config = toml::from_str("http = \"0.0.0.0:8080\"").unwrap();
        assert_eq!(config.internal_url(), None);
        let config: Config = toml::from_str(
            "http = \"0.0.0.0:8080\"\ninternal_url = \"http://ingest-1.internal:8080/\"",
        )
        .unwrap();
        assert_eq!(
            config.internal_url().as_deref(),
            Some("http://ingest-1.internal:8080")
        );
        for bad in ["ingest-1:8080", "ftp://ingest-1", ""] {
            let config: Config = toml::from_str(&format!("internal_url = {bad:?}")).unwrap();
            assert!(config.validate().is_err(), "{bad:?} refused");
        }
    }

    #[test]
    fn rtmp_url_follows_the_public_host() {
        let config: Config = toml::from_str("public_url = \"https://video.example.com/\"").unwrap();
        assert_eq!(config.public_url(), "https://video.example.com");
        assert_eq!(
            config.rtmp_public_url(),
            "rtmp://video.example.com:1935/live"
        );
    }

    #[test]
    fn role_comes_from_the_file_then_the_flag() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config.role, Role::All);
        let config: Config = toml::from_str("role = \"ingest\"").unwrap();
        assert_eq!(config.role, Role::Ingest);
        assert!(toml::from_str::<Config>("role = \"everything\"").is_err());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sluice.toml");
        std::fs::write(&file, "role = \"api\"").unwrap();
        let args = ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        };
        assert_eq!(Config::load(&args).unwrap().role, Role::Api);
        let args = ServeArgs {
            role: Some(Role::Worker),
            ..args
        };
        assert_eq!(Config::load(&args).unwrap().role, Role::Worker);
    }

    #[test]
    fn each_role_runs_its_part() {
        let worker = WorkerConfig::default();
        let no_worker = WorkerConfig {
            enabled: false,
            ..WorkerConfig::default()
        };
        let parts = |role: Role, worker: &WorkerConfig| {
            (role.serves_api(), role.ingests(), role.runs_worker(worker))
        };
        assert_eq!(parts(Role::All, &worker), (true, true, true));
        assert_eq!(parts(Role::All, &no_worker), (true, true, false));
        assert_eq!(parts(Role::Api, &worker), (true, false, false));
        assert_eq!(parts(Role::Ingest, &worker), (false, true, false));
        assert_eq!(parts(Role::Worker, &no_worker), (false, false, true));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<Config>("htpp = \"0.0.0.0:1\"").is_err());
        assert!(toml::from_str::<Config>("[live]\npreset = \"warp\"").is_err());
        assert!(toml::from_str::<Config>("[webhooks]\ntimeout = 3").is_err());
    }

    #[test]
    fn worker_and_import_settings_default_and_are_checked() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config.worker, WorkerConfig::default());
        assert!(config.worker.enabled);
        assert_eq!(config.worker.concurrency, 1);
        assert_eq!(config.worker.lease(), Duration::from_secs(30));
        assert!(config.import.allow_hosts.is_empty());
        config.validate().unwrap();

        let config: Config = toml::from_str(
            "[worker]\nenabled = false\nconcurrency = 2\nlease_seconds = 2.5\n\
             [import]\nallow_hosts = [\"127.0.0.1\", \"localhost:8080\", \"10.0.0.0/8\"]",
        )
        .unwrap();
        config.validate().unwrap();
        assert!(!config.worker.enabled);
        assert_eq!(config.worker.lease(), Duration::from_millis(2_500));
        assert_eq!(config.import.allow_hosts.len(), 3);

        let bad_host: Config = toml::from_str("[import]\nallow_hosts = [\"10.0.0.0/99\"]").unwrap();
        let error = bad_host.validate().unwrap_err().to_string();
        assert!(error.starts_with("import.allow_hosts: "), "{error}");
        let none: Config = toml::from_str("[worker]\nconcurrency = 0").unwrap();
        assert!(none.validate().is_err());
        assert!(toml::from_str::<Config>("[worker]\nthreads = 2").is_err());
    }

    #[test]
    fn live_spool_settings_default_and_are_checked() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config.live.spool_dir(), Path::new("./data/spool/live"));
        assert_eq!(config.live.spool_max_bytes, 2 * 1024 * 1024 * 1024);
        let config: Config =
            toml::from_str("[live]\nspool_dir = \"/fast/spool\"\nspool_max_bytes = 1048576")
                .unwrap();
        config.validate().unwrap();
        assert_eq!(config.live.spool_dir(), Path::new("/fast/spool"));
        assert_eq!(config.live.spool_max_bytes, 1 << 20);
        let none: Config = toml::from_str("[live]\nspool_max_bytes = 0").unwrap();
        assert!(none.validate().is_err());
    }

    #[test]
    fn rooms_take_media_two_ports_above_http_unless_told() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config.rooms, RoomsConfig::default());
        assert!(config.rooms.enabled && config.rooms.auto_create);
        let http_port = config.http.port();
        assert_eq!(config.rooms_udp_addr().port(), http_port + 2);
        let config: Config =
            toml::from_str("[rooms]\nudp_port = 7882\nauto_create = false").unwrap();
        assert_eq!(config.rooms_udp_addr().port(), 7882);
        assert!(!config.rooms.auto_create);
        let config: Config = toml::from_str("[rooms]\nmax_participants = 0").unwrap();
        assert!(config.validate().is_err());
        assert!(toml::from_str::<Config>("[rooms]\nport = 1").is_err());
    }

    #[test]
    fn whip_settings_default_to_the_http_port_and_are_checked() {
        let config: Config = toml::from_str("http = \"127.0.0.1:9000\"").unwrap();
        assert_eq!(config.whip, WhipConfig::default());
        assert!(config.whip.enabled);
        assert_eq!(config.whip_udp_addr(), "127.0.0.1:9000".parse().unwrap());
        config.validate().unwrap();

        let config: Config = toml::from_str(
            "[whip]\nudp_port = 8189\npublic_ip = \"203.0.113.10\"\nmedia_timeout_seconds = 4",
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.whip_udp_addr().port(), 8189);
        assert_eq!(config.whip.public_ip, Some("203.0.113.10".parse().unwrap()));
        for bad in [
            "connect_timeout_seconds = 0",
            "media_timeout_seconds = 1000",
        ] {
            let config: Config = toml::from_str(&format!("[whip]\n{bad}")).unwrap();
            let error = config.validate().unwrap_err().to_string();
            assert!(error.starts_with("whip."), "{error}");
        }
        assert!(toml::from_str::<Config>("[whip]\nport = 1").is_err());
    }

    #[test]
    fn upload_settings_default_to_the_data_directory_and_are_checked() {
        let config: Config = toml::from_str("").unwrap();
        let settings = config.uploads.settings(Path::new("/srv/sluice"));
        assert_eq!(settings.spool_dir, Path::new("/srv/sluice/uploads"));
        assert_eq!(settings.max_size, DEFAULT_UPLOAD_MAX_SIZE_BYTES);
        assert_eq!(settings.default_timeout_s, 3600);
        assert_eq!(settings.sweep_interval, Duration::from_secs(60));
        let config: Config = toml::from_str(
            "[uploads]\nspool_dir = \"/fast/spool\"\nmax_size_bytes = 1000\n\
             default_timeout_seconds = 60\nsweep_interval_seconds = 0.5",
        )
        .unwrap();
        config.validate().unwrap();
        let settings = config.uploads.settings(Path::new("/srv/sluice"));
        assert_eq!(settings.spool_dir, Path::new("/fast/spool"));
        assert_eq!(settings.max_size, 1000);
        assert_eq!(settings.sweep_interval, Duration::from_millis(500));
        for bad in [
            "max_size_bytes = 0",
            "default_timeout_seconds = 0",
            "default_timeout_seconds = 604801",
            "sweep_interval_seconds = -1",
        ] {
            let config: Config = toml::from_str(&format!("[uploads]\n{bad}")).unwrap();
            assert!(config.validate().is_err(), "{bad}");
        }
        assert!(toml::from_str::<Config>("[uploads]\nmax_size = 5").is_err());
    }

    #[test]
    fn storage_defaults_to_local_files_and_reads_an_s3_section() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config.storage, StorageConfig::default());
        assert_eq!(config.storage.s3().unwrap(), None);

        let config: Config = toml::from_str(
            "[storage]\nurl = \"s3://media/sluice/prod\"\nendpoint = \"http://minio:9000\"\n\
             region = \"eu-west-1\"\naccess_key_id = \"AK\"\nsecret_access_key = \"SK\"\n\
             playback = \"redirect\"\npresign_seconds = 60",
        )
        .unwrap();
        config.validate().unwrap();
        let s3 = config.storage.s3().unwrap().unwrap();
        assert_eq!(s3.bucket, "media");
        assert_eq!(s3.prefix.unwrap().as_str(), "sluice/prod");
        assert_eq!(s3.endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
        assert!(
            s3.force_path_style,
            "an endpoint means path-style by default"
        );
        assert_eq!(s3.credentials.unwrap().secret_access_key, "SK");
        assert_eq!(
            s3.playback,
            Playback::Redirect {
                expires_in: Duration::from_secs(60)
            }
        );

        let config: Config = toml::from_str(
            "[storage]\nurl = \"s3://media\"\nforce_path_style = false\n\
             playback = \"public\"\npublic_base_url = \"https://cdn.example/m/\"",
        )
        .unwrap();
        let s3 = config.storage.s3().unwrap().unwrap();
        assert!(!s3.force_path_style);
        assert_eq!(
            s3.playback,
            Playback::Public {
                base_url: "https://cdn.example/m".into()
            }
        );
    }

    #[test]
    fn storage_settings_are_checked() {
        for (bad, message) in [
            ("url = \"https://media\"", "must start with s3://"),
            ("url = \"s3://Bad_Bucket\"", "is not a bucket name"),
            ("url = \"s3://media/a/../b\"", "key prefix"),
            ("playback = \"redirect\"", "needs S3 storage"),
            (
                "url = \"s3://media\"\naccess_key_id = \"AK\"",
                "must be set together",
            ),
            (
                "url = \"s3://media\"\nplayback = \"redirect\"\npresign_seconds = 0",
                "presign_seconds",
            ),
            (
                "url = \"s3://media\"\nplayback = \"public\"",
                "needs storage.public_base_url",
            ),
            (
                "url = \"s3://media\"\nplayback = \"public\"\npublic_base_url = \"ftp://x\"",
                "http or https",
            ),
        ] {
            let config: Config = toml::from_str(&format!("[storage]\n{bad}")).unwrap();
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(message), "{bad}: {error}");
        }
        assert!(toml::from_str::<Config>("[storage]\nbucket = \"x\"").is_err());
        assert!(toml::from_str::<Config>("[storage]\nplayback = \"cdn\"").is_err());
    }

    #[test]
    fn webhook_settings_default_and_accept_whole_or_fractional_values() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config.webhooks, WebhooksConfig::default());
        assert_eq!(config.webhooks.timeout(), Duration::from_secs(10));
        assert_eq!(
            config.webhooks.give_up_after(),
            Duration::from_secs(24 * 3600)
        );
        let config: Config =
            toml::from_str("[webhooks]\ntimeout_seconds = 2\nretry_base_seconds = 0.5").unwrap();
        assert_eq!(config.webhooks.timeout(), Duration::from_secs(2));
        assert_eq!(config.webhooks.retry_base(), Duration::from_millis(500));
        assert_eq!(
            config.webhooks.retry_max_interval(),
            Duration::from_secs(3600)
        );
        config.validate().unwrap();
        let negative: Config = toml::from_str("[webhooks]\ntimeout_seconds = -1").unwrap();
        assert!(negative.validate().is_err());
    }
}
