//! Prometheus metrics: the [`Metrics`] handle every part of the server records into (the
//! media plane, the webhook dispatcher, the HTTP layer), encoded in the OpenMetrics text
//! format. It lives below every component so none of them needs the HTTP crate to count; the
//! API's middleware and `GET /metrics` serve it.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `sluice_http_request_duration_seconds{method,route,status}` | histogram | time to answer, by route template (`/v1/live-streams/{id}`) and status class (`2xx`) |
//! | `sluice_live_streams_active` | gauge | live streams receiving a publisher now |
//! | `sluice_sessions_started_total` | counter | publishes accepted |
//! | `sluice_ingest_bytes_total` | counter | RTMP bytes received from publishers (bitrate: `rate() * 8`) |
//! | `sluice_ingest_bitrate_bits_per_second` | gauge | sum of the publishers' latest measured bitrates |
//! | `sluice_frames_dropped_total` | counter | source frames the live ladder dropped to keep up |
//! | `sluice_webhook_deliveries_total` | counter | webhook deliveries answered with 2xx |
//! | `sluice_webhook_delivery_failures_total` | counter | webhook delivery attempts that failed |
//! | `sluice_live_spool_bytes` | gauge | bytes of live segments spooled on local disk, not yet stored |
//! | `sluice_live_upload_failures_total` | counter | live object uploads (segments, playlists, deletes) that failed and will be retried |
//! | `sluice_live_segments_refused_total` | counter | live segments refused because the spool was full (never listed) |
//! | `sluice_live_segment_upload_seconds` | histogram | live segment complete → stored and listed in a stored playlist |
//! | `sluice_viewers{kind}` | gauge | playback sessions that fetched within the last 30 s, of live streams (`kind="live_stream"`) or assets (`"asset"`), as this process counts them (over api nodes, the sum is an upper bound) |

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the HTTP latency histogram; `route` is the route template, never the raw path, so
/// the number of series stays bounded whatever clients request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: &'static str,
}

/// Labels of the viewer gauge: what is watched, never which one (the API counts per stream).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViewerLabels {
    kind: &'static str,
}

/// What is known about one publish's counters, to turn its running totals into increments.
struct IngestSession {
    bytes_received: u64,
    frames_dropped: u64,
    reported_at: Instant,
    bits_per_second: f64,
}

struct Inner {
    registry: Registry,
    http_duration: Family<HttpLabels, Histogram>,
    live_streams_active: Gauge,
    sessions_started: Counter,
    ingest_bytes: Counter,
    ingest_bitrate: Gauge<f64, AtomicU64>,
    frames_dropped: Counter,
    webhook_deliveries: Counter,
    webhook_failures: Counter,
    spool_bytes: Gauge,
    live_upload_failures: Counter,
    live_segments_refused: Counter,
    live_segment_upload: Histogram,
    viewers: Family<ViewerLabels, Gauge>,
    sessions: Mutex<HashMap<String, IngestSession>>,
}

/// The server's metrics; cheap to clone (clones share the same series).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn http_duration_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    /// A registry holding every Sluice series, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http_duration = Family::<HttpLabels, Histogram>::new_with_constructor(
            http_duration_histogram as fn() -> Histogram,
        );
        registry.register(
            "sluice_http_request_duration_seconds",
            "Time to answer HTTP requests, by method, route template and status class",
            http_duration.clone(),
        );
        let live_streams_active = Gauge::default();
        registry.register(
            "sluice_live_streams_active",
            "Live streams receiving a publisher now",
            live_streams_active.clone(),
        );
        // Counters are registered without `_total`: the encoder appends it.
        let sessions_started = Counter::default();
        registry.register(
            "sluice_sessions_started",
            "Publishes accepted",
            sessions_started.clone(),
        );
        let ingest_bytes = Counter::default();
        registry.register(
            "sluice_ingest_bytes",
            "RTMP bytes received from publishers",
            ingest_bytes.clone(),
        );
        let ingest_bitrate = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "sluice_ingest_bitrate_bits_per_second",
            "Sum of the publishers' latest measured ingest bitrates",
            ingest_bitrate.clone(),
        );
        let frames_dropped = Counter::default();
        registry.register(
            "sluice_frames_dropped",
            "Source frames the live ladder dropped to keep up with real time",
            frames_dropped.clone(),
        );
        let webhook_deliveries = Counter::default();
        registry.register(
            "sluice_webhook_deliveries",
            "Webhook deliveries answered with a 2xx status",
            webhook_deliveries.clone(),
        );
        let webhook_failures = Counter::default();
        registry.register(
            "sluice_webhook_delivery_failures",
            "Webhook delivery attempts that failed",
            webhook_failures.clone(),
        );
        let spool_bytes = Gauge::default();
        registry.register(
            "sluice_live_spool_bytes",
            "Bytes of live segments spooled on local disk and not yet stored",
            spool_bytes.clone(),
        );
        let live_upload_failures = Counter::default();
        registry.register(
            "sluice_live_upload_failures",
            "Live object uploads that failed and will be retried",
            live_upload_failures.clone(),
        );
        let live_segments_refused = Counter::default();
        registry.register(
            "sluice_live_segments_refused",
            "Live segments refused because the spool was full",
            live_segments_refused.clone(),
        );
        // 10 ms to about 164 s: a store outage shows as the upper buckets.
        let live_segment_upload = Histogram::new(exponential_buckets(0.01, 2.0, 15));
        registry.register(
            "sluice_live_segment_upload_seconds",
            "Time from a live segment being complete to it being stored and listed in a stored playlist",
            live_segment_upload.clone(),
        );
        let viewers = Family::<ViewerLabels, Gauge>::default();
        registry.register(
            "sluice_viewers",
            "Playback sessions that fetched within the last 30 s, of live streams or assets",
            viewers.clone(),
        );
        Self(Arc::new(Inner {
            registry,
            http_duration,
            live_streams_active,
            sessions_started,
            ingest_bytes,
            ingest_bitrate,
            frames_dropped,
            webhook_deliveries,
            webhook_failures,
            spool_bytes,
            live_upload_failures,
            live_segments_refused,
            live_segment_upload,
            viewers,
            sessions: Mutex::default(),
        }))
    }

    /// A publish was accepted and its session `session_id` began.
    pub fn session_started(&self, session_id: &str) {
        self.0.sessions_started.inc();
        let mut sessions = self.sessions();
        sessions.insert(
            session_id.to_owned(),
            IngestSession {
                bytes_received: 0,
                frames_dropped: 0,
                reported_at: Instant::now(),
                bits_per_second: 0.0,
            },
        );
        self.refresh_live_gauges(&sessions);
    }

    /// The running totals of session `session_id`: bytes received on its connection and frames
    /// its ladder dropped since it began. The counters grow by what is new since the last call.
    pub fn session_progress(&self, session_id: &str, bytes_received: u64, frames_dropped: u64) {
        let mut sessions = self.sessions();
        let Some(session) = sessions.get_mut(session_id) else {
            return;
        };
        let new_bytes = bytes_received.saturating_sub(session.bytes_received);
        self.0.ingest_bytes.inc_by(new_bytes);
        self.0
            .frames_dropped
            .inc_by(frames_dropped.saturating_sub(session.frames_dropped));
        let now = Instant::now();
        let seconds = now.duration_since(session.reported_at).as_secs_f64();
        if seconds > 0.0 {
            session.bits_per_second = new_bytes as f64 * 8.0 / seconds;
        }
        session.bytes_received = session.bytes_received.max(bytes_received);
        session.frames_dropped = session.frames_dropped.max(frames_dropped);
        session.reported_at = now;
        self.refresh_live_gauges(&sessions);
    }

    /// Session `session_id` ended; it no longer counts as live.
    pub fn session_ended(&self, session_id: &str) {
        let mut sessions = self.sessions();
        sessions.remove(session_id);
        self.refresh_live_gauges(&sessions);
    }

    /// A webhook delivery was answered with a 2xx status.
    pub fn webhook_delivered(&self) {
        self.0.webhook_deliveries.inc();
    }

    /// A webhook delivery attempt failed (error status, timeout, unreachable endpoint).
    pub fn webhook_failed(&self) {
        self.0.webhook_failures.inc();
    }

    /// Viewers now: of all live streams, and of all assets.
    pub fn viewers(&self, live_streams: u64, assets: u64) {
        for (kind, count) in [("live_stream", live_streams), ("asset", assets)] {
            self.0
                .viewers
                .get_or_create(&ViewerLabels { kind })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// The live spool now holds `bytes` not yet stored.
    pub fn live_spool_bytes(&self, bytes: u64) {
        self.0
            .spool_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// A live upload (segment, playlist or delete) failed; it will be retried.
    pub fn live_upload_failed(&self) {
        self.0.live_upload_failures.inc();
    }

    /// A live segment was refused because the spool was full.
    pub fn live_segment_refused(&self) {
        self.0.live_segments_refused.inc();
    }

    /// A live segment became stored and listed `seconds` after it was complete.
    pub fn live_segment_listed(&self, seconds: f64) {
        self.0.live_segment_upload.observe(seconds);
    }

    /// Records how long answering one HTTP request took; `route` is the matched route
    /// template, never the raw path. A method outside RFC 9110's is labelled `other`, so
    /// made-up methods cannot grow the series without bound.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = HttpLabels {
            method: method_label(method),
            route: route.to_owned(),
            status: status_class(status),
        };
        self.0.http_duration.get_or_create(&labels).observe(seconds);
    }

    /// Every series in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.0.registry);
        text
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, IngestSession>> {
        // The map stays consistent even if a holder panicked: every update is one insert,
        // remove or field store.
        self.0
            .sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn refresh_live_gauges(&self, sessions: &HashMap<String, IngestSession>) {
        self.0
            .live_streams_active
            .set(i64::try_from(sessions.len()).unwrap_or(i64::MAX));
        self.0
            .ingest_bitrate
            .set(sessions.values().map(|s| s.bits_per_second).sum());
    }
}

/// The methods RFC 9110 defines, plus PATCH (RFC 5789); each gets its own label.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

fn method_label(method: &str) -> &'static str {
    STANDARD_METHODS
        .into_iter()
        .find(|standard| *standard == method)
        .unwrap_or("other")
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn session_totals_become_counter_increments() {
        let metrics = Metrics::new();
        metrics.session_started("ses_a");
        // Time passes between reports, so a bitrate can be measured.
        std::thread::sleep(std::time::Duration::from_millis(2));
        metrics.session_progress("ses_a", 1000, 2);
        metrics.session_progress("ses_a", 2500, 2);
        metrics.session_started("ses_b");
        metrics.session_progress("ses_b", 500, 1);
        let text = metrics.encode();
        assert_eq!(sample(&text, "sluice_sessions_started_total"), 2.0);
        assert_eq!(sample(&text, "sluice_ingest_bytes_total"), 3000.0);
        assert_eq!(sample(&text, "sluice_frames_dropped_total"), 3.0);
        assert_eq!(sample(&text, "sluice_live_streams_active"), 2.0);
        assert!(sample(&text, "sluice_ingest_bitrate_bits_per_second") > 0.0);

        metrics.session_ended("ses_a");
        metrics.session_ended("ses_b");
        // Totals of an ended session are not counted again.
        metrics.session_progress("ses_a", 9000, 9);
        let text = metrics.encode();
        assert_eq!(sample(&text, "sluice_live_streams_active"), 0.0);
        assert_eq!(sample(&text, "sluice_ingest_bitrate_bits_per_second"), 0.0);
        assert_eq!(sample(&text, "sluice_ingest_bytes_total"), 3000.0);
        assert_eq!(sample(&text, "sluice_sessions_started_total"), 2.0);
    }

    #[test]
    fn webhook_outcomes_are_counted_apart() {
        let metrics = Metrics::new();
        metrics.webhook_delivered();
        metrics.webhook_delivered();
        metrics.webhook_failed();
        let text = metrics.encode();
        assert_eq!(sample(&text, "sluice_webhook_deliveries_total"), 2.0);
        assert_eq!(sample(&text, "sluice_webhook_delivery_failures_total"), 1.0);
    }

    #[test]
    fn live_upload_series_follow_the_spool() {
        let metrics = Metrics::new();
        metrics.live_spool_bytes(4096);
        metrics.live_upload_failed();
        metrics.live_upload_failed();
        metrics.live_segment_refused();
        metrics.live_segment_listed(0.05);
        metrics.live_segment_listed(31.0);
        let text = metrics.encode();
        assert_eq!(sample(&text, "sluice_live_spool_bytes"), 4096.0);
        assert_eq!(sample(&text, "sluice_live_upload_failures_total"), 2.0);
        assert_eq!(sample(&text, "sluice_live_segments_refused_total"), 1.0);
        assert_eq!(
            sample(&text, "sluice_live_segment_upload_seconds_count"),
            2.0
        );
        assert_eq!(
            sample(&text, "sluice_live_segment_upload_seconds_sum"),
            31.05
        );
        metrics.live_spool_bytes(0);
        assert_eq!(sample(&metrics.encode(), "sluice_live_spool_bytes"), 0.0);
    }

    #[test]
    fn made_up_methods_share_one_series() {
        let metrics = Metrics::new();
        for i in 0..100 {
            metrics.observe_request(&format!("BREW{i}"), "unmatched", 405, 0.001);
        }
        metrics.observe_request("PATCH", "unmatched", 405, 0.001);
        let text = metrics.encode();
        assert_eq!(
            sample(
                &text,
                "sluice_http_request_duration_seconds_count{method=\"other\",route=\"unmatched\",status=\"4xx\"}"
            ),
            100.0
        );
        assert!(!text.contains("BREW"));
        assert!(text.contains("method=\"PATCH\""));
    }

    #[test]
    fn requests_are_labelled_by_status_class() {
        let metrics = Metrics::new();
        metrics.observe_request("GET", "/v1/live-streams/{id}", 404, 0.002);
        let text = metrics.encode();
        assert_eq!(
            sample(
                &text,
                "sluice_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/live-streams/{id}\",status=\"4xx\"}"
            ),
            1.0
        );
    }
}
