//! The live core's configuration sections, beside the components they build: `[live]`
//! ([`LiveConfig`]: ladder preset, segments, playlist window, RTMP limits, spool), `[whip]`
//! ([`WhipConfig`]) and `[restream]` ([`RestreamConfig`]). Every field documents its default;
//! unknown keys are an error. The server's configuration file embeds them and checks them
//! (`validate`, and `RestreamConfig::settings`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sluice_storage::{LatencyMode, DEFAULT_DATA_DIR};
use sluice_transcoder::Preset;

use crate::address_policy::AddressPolicy;

/// x264 preset of live ladder rungs: fast enough to keep a 1080p30 four-rung ladder in real
/// time on two cores (see docs/BENCHMARKS.md).
pub const DEFAULT_LIVE_PRESET: Preset = Preset::Superfast;
/// Target segment duration, and the interval of the IDRs forced on every rung.
pub const DEFAULT_SEGMENT_SECONDS: u32 = 2;
/// LL-HLS part target of `low` latency streams, in milliseconds: ten frames at 30 fps.
pub const DEFAULT_PART_TARGET_MS: u32 = 334;
/// Segments kept in a live playlist's sliding window (Apple asks for at least 6).
pub const DEFAULT_PLAYLIST_WINDOW: usize = 6;
/// Disk quota of the live segment spool, across all sessions of the process: 2 GiB.
pub const DEFAULT_LIVE_SPOOL_MAX_BYTES: u64 = 2 << 30;
/// Seconds an RTMP connection may stay silent before it is closed.
pub const DEFAULT_RTMP_IDLE_TIMEOUT_SECONDS: u64 = 10;
/// RTMP connections one IPv4 address or IPv6 /64 may hold open at once (handshakes included).
pub const DEFAULT_RTMP_MAX_CONNECTIONS_PER_IP: usize = 16;
/// RTMP connections open at once from everyone. A connection holds at most about 0.5 MiB of
/// peer data until its publish is accepted, so this bounds what strangers can make the server
/// hold to about 0.5 GiB.
pub const DEFAULT_RTMP_MAX_CONNECTIONS: usize = 1000;

/// Settings of the live pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConfig {
    /// x264 preset for live rungs. Default: [`DEFAULT_LIVE_PRESET`].
    #[serde(default = "default_preset")]
    pub preset: Preset,
    /// Segment duration and IDR interval in seconds of standard-latency streams (see
    /// [`LiveConfig::segment_duration`]). Default: [`DEFAULT_SEGMENT_SECONDS`].
    #[serde(default = "default_segment_seconds")]
    pub segment_seconds: u32,
    /// Segments in a live playlist window. Default: [`DEFAULT_PLAYLIST_WINDOW`].
    #[serde(default = "default_playlist_window")]
    pub playlist_window: usize,
    /// RTMP idle timeout in seconds. Default: [`DEFAULT_RTMP_IDLE_TIMEOUT_SECONDS`].
    #[serde(default = "default_rtmp_idle_timeout")]
    pub rtmp_idle_timeout_seconds: u64,
    /// RTMP connections per client IPv4 address or IPv6 /64 network. Default:
    /// [`DEFAULT_RTMP_MAX_CONNECTIONS_PER_IP`].
    #[serde(default = "default_rtmp_max_connections_per_ip")]
    pub rtmp_max_connections_per_ip: usize,
    /// RTMP connections open at once, from every address together. Default:
    /// [`DEFAULT_RTMP_MAX_CONNECTIONS`].
    #[serde(default = "default_rtmp_max_connections")]
    pub rtmp_max_connections: usize,
    /// Where live segments wait on local disk until the object store accepted them.
    /// Default: [`LiveConfig::default_spool_dir`] of the server's data directory, filled in
    /// by its configuration loader (of [`DEFAULT_DATA_DIR`] when nobody did).
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// Bytes the spool may hold across all sessions; a segment that would exceed it is
    /// refused (never listed). Default: [`DEFAULT_LIVE_SPOOL_MAX_BYTES`].
    #[serde(default = "default_live_spool_max_bytes")]
    pub spool_max_bytes: u64,
    /// LL-HLS part target of `low` latency streams in milliseconds (100 to 1000; a part ends
    /// before the frame that would take it past). Default: [`DEFAULT_PART_TARGET_MS`].
    #[serde(default = "default_part_target_ms")]
    pub part_target_ms: u32,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            preset: DEFAULT_LIVE_PRESET,
            segment_seconds: DEFAULT_SEGMENT_SECONDS,
            playlist_window: DEFAULT_PLAYLIST_WINDOW,
            rtmp_idle_timeout_seconds: DEFAULT_RTMP_IDLE_TIMEOUT_SECONDS,
            rtmp_max_connections_per_ip: DEFAULT_RTMP_MAX_CONNECTIONS_PER_IP,
            rtmp_max_connections: DEFAULT_RTMP_MAX_CONNECTIONS,
            spool_dir: None,
            spool_max_bytes: DEFAULT_LIVE_SPOOL_MAX_BYTES,
            part_target_ms: DEFAULT_PART_TARGET_MS,
        }
    }
}

fn default_preset() -> Preset {
    DEFAULT_LIVE_PRESET
}
fn default_segment_seconds() -> u32 {
    DEFAULT_SEGMENT_SECONDS
}
fn default_playlist_window() -> usize {
    DEFAULT_PLAYLIST_WINDOW
}
fn default_rtmp_idle_timeout() -> u64 {
    DEFAULT_RTMP_IDLE_TIMEOUT_SECONDS
}
fn default_rtmp_max_connections_per_ip() -> usize {
    DEFAULT_RTMP_MAX_CONNECTIONS_PER_IP
}
fn default_rtmp_max_connections() -> usize {
    DEFAULT_RTMP_MAX_CONNECTIONS
}
fn default_live_spool_max_bytes() -> u64 {
    DEFAULT_LIVE_SPOOL_MAX_BYTES
}
fn default_part_target_ms() -> u32 {
    DEFAULT_PART_TARGET_MS
}
/// Segment duration (and IDR interval) of `reduced` and `low` latency streams.
pub const REDUCED_LATENCY_SEGMENT: Duration = Duration::from_secs(1);

impl LiveConfig {
    /// How long the segments of a session in `mode` are: `segment_seconds` for standard
    /// latency, [`REDUCED_LATENCY_SEGMENT`] otherwise.
    pub fn segment_duration(&self, mode: LatencyMode) -> Duration {
        match mode {
            LatencyMode::Standard => Duration::from_secs(u64::from(self.segment_seconds)),
            LatencyMode::Reduced | LatencyMode::Low => REDUCED_LATENCY_SEGMENT,
        }
    }

    /// The LL-HLS part target of a session in `mode`: `low` latency sessions only.
    pub fn part_target(&self, mode: LatencyMode) -> Option<Duration> {
        (mode == LatencyMode::Low).then(|| Duration::from_millis(u64::from(self.part_target_ms)))
    }

    /// Checks the bounds of every field; the message names the field as `live.…`.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (100..=1000).contains(&self.part_target_ms),
            "live.part_target_ms must be between 100 and 1000"
        );
        anyhow::ensure!(
            (1..=10).contains(&self.segment_seconds),
            "live.segment_seconds must be between 1 and 10"
        );
        anyhow::ensure!(
            self.rtmp_max_connections_per_ip >= 1,
            "live.rtmp_max_connections_per_ip must be at least 1"
        );
        anyhow::ensure!(
            self.rtmp_max_connections >= 1,
            "live.rtmp_max_connections must be at least 1"
        );
        anyhow::ensure!(
            self.spool_max_bytes > 0,
            "live.spool_max_bytes must be above 0"
        );
        anyhow::ensure!(
            self.playlist_window >= 6,
            "live.playlist_window must be at least 6 segments (Apple HLS authoring spec §8.11)"
        );
        Ok(())
    }

    /// The live spool directory: the configured one, else the default data directory's.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool_dir
            .clone()
            .unwrap_or_else(|| Self::default_spool_dir(Path::new(DEFAULT_DATA_DIR)))
    }

    /// The live spool of a data directory: `<data_dir>/spool/live`.
    pub fn default_spool_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("spool").join("live")
    }
}

/// Settings of WebRTC ingest over WHIP (`[whip]`). Media flows over one UDP port; ICE is
/// lite (the server only answers connectivity checks), so that port and the announced address
/// must be reachable by publishers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhipConfig {
    /// Whether WHIP offers are taken. Default: true.
    pub enabled: bool,
    /// The UDP port all WebRTC media arrives on, bound on the HTTP listener's address.
    /// Default: the HTTP port's number (UDP and TCP ports are separate).
    pub udp_port: Option<u16>,
    /// The address announced in the host candidate. Default: the HTTP listener's address if it
    /// is a specific one, else the address this host routes from.
    pub public_ip: Option<IpAddr>,
    /// Time ICE and DTLS have to complete after the answer. Default:
    /// [`DEFAULT_WHIP_CONNECT_TIMEOUT_SECONDS`].
    pub connect_timeout_seconds: f64,
    /// A session with no media for this long ends. Default:
    /// [`DEFAULT_WHIP_MEDIA_TIMEOUT_SECONDS`].
    pub media_timeout_seconds: f64,
}

/// Default of [`WhipConfig::connect_timeout_seconds`].
pub const DEFAULT_WHIP_CONNECT_TIMEOUT_SECONDS: f64 = 10.0;
/// Default of [`WhipConfig::media_timeout_seconds`].
pub const DEFAULT_WHIP_MEDIA_TIMEOUT_SECONDS: f64 = 10.0;

impl Default for WhipConfig {
    fn default() -> Self {
        WhipConfig {
            enabled: true,
            udp_port: None,
            public_ip: None,
            connect_timeout_seconds: DEFAULT_WHIP_CONNECT_TIMEOUT_SECONDS,
            media_timeout_seconds: DEFAULT_WHIP_MEDIA_TIMEOUT_SECONDS,
        }
    }
}

impl WhipConfig {
    /// Checks the bounds of every field; the message names the field as `whip.…`.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, seconds) in [
            ("whip.connect_timeout_seconds", self.connect_timeout_seconds),
            ("whip.media_timeout_seconds", self.media_timeout_seconds),
        ] {
            anyhow::ensure!(
                seconds.is_finite() && (1.0..=300.0).contains(&seconds),
                "{name} must be between 1 and 300"
            );
        }
        Ok(())
    }
}

/// Settings of restreaming to simulcast targets (`[restream]`). See [`crate::restream`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestreamConfig {
    /// Hosts targets may be on although they are not public, written as `[import]
    /// allow_hosts` entries (`"127.0.0.1"`, `"rtmp.internal:1935"`, `"10.0.0.0/8"`). Default:
    /// none.
    pub allow_hosts: Vec<String>,
    /// Packets one target may have waiting before it drops to the next keyframe. Default:
    /// [`DEFAULT_RESTREAM_QUEUE_PACKETS`].
    pub queue_packets: usize,
    /// Longest a connection attempt, or one write to a target, may take. Default: 10.
    pub connect_timeout_seconds: f64,
    /// First pause before retrying a failed target; it doubles on each failure. Default: 1.
    pub retry_min_seconds: f64,
    /// Longest pause between retries. Default: 30.
    pub retry_max_seconds: f64,
}

/// About 8 s of a 30 fps stream with its audio.
pub const DEFAULT_RESTREAM_QUEUE_PACKETS: usize = 600;

impl Default for RestreamConfig {
    fn default() -> Self {
        RestreamConfig {
            allow_hosts: Vec::new(),
            queue_packets: DEFAULT_RESTREAM_QUEUE_PACKETS,
            connect_timeout_seconds: 10.0,
            retry_min_seconds: 1.0,
            retry_max_seconds: 30.0,
        }
    }
}

impl RestreamConfig {
    /// The restreamer's settings, or what is wrong with these.
    pub fn settings(&self) -> anyhow::Result<crate::restream::RestreamSettings> {
        let in_range = |value: f64| (0.05..=3_600.0).contains(&value);
        anyhow::ensure!(
            in_range(self.connect_timeout_seconds)
                && in_range(self.retry_min_seconds)
                && in_range(self.retry_max_seconds)
                && self.retry_min_seconds <= self.retry_max_seconds,
            "restream.connect_timeout_seconds, retry_min_seconds and retry_max_seconds must be \
             between 0.05 and 3600, with retry_min_seconds at most retry_max_seconds"
        );
        anyhow::ensure!(
            (1..=100_000).contains(&self.queue_packets),
            "restream.queue_packets must be between 1 and 100000"
        );
        Ok(crate::restream::RestreamSettings {
            addresses: AddressPolicy::new(&self.allow_hosts)
                .map_err(|message| anyhow::anyhow!("restream.allow_hosts: {message}"))?,
            queue_packets: self.queue_packets,
            connect_timeout: Duration::from_secs_f64(self.connect_timeout_seconds),
            retry_min: Duration::from_secs_f64(self.retry_min_seconds),
            retry_max: Duration::from_secs_f64(self.retry_max_seconds),
        })
    }
}
