//! The webhook dispatcher: sends the deliveries of the outbox (`webhook_deliveries`, written in
//! the same transaction as each event) to their endpoints as signed HTTP POSTs.
//!
//! It wakes on every published event and also polls once a second, for retries that have come
//! due and for work a previous run left behind, so nothing queued is lost across a restart.
//! Deliveries are claimed with a lease through a conditional update, at most
//! [`MAX_IN_FLIGHT`] at a time and one per endpoint at a time; each request has the configured
//! timeout. A slow or dead receiver therefore holds only its own endpoint's queue, never the
//! API, ingest or other endpoints. 2xx is delivered; any other status, a connect error or a
//! timeout is a failed attempt, retried after an exponential delay with full jitter until the
//! retry window ends and the delivery is marked failed.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use reqwest::header::CONTENT_TYPE;
use sha2::Sha256;
use sluice_live::address_policy::AddressPolicy;
use sluice_storage::Metrics;
use sluice_storage::{AttemptOutcome, ClaimedDelivery, Db, EventBus, WebhookAttempt};
use tokio::sync::watch;
use tokio::task::{self, JoinSet};
use tracing::{debug, info, warn};

use crate::config::WebhooksConfig;

/// Deliveries sent at once, across all endpoints.
pub const MAX_IN_FLIGHT: usize = 8;
/// How often due retries and leftover work are looked for when no event wakes the dispatcher.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Margin of a claim's lease over the request timeout: a dispatcher that dies mid-request
/// leaves the delivery to others once the lease has passed.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
const USER_AGENT: &str = concat!("Sluice-Webhooks/", env!("CARGO_PKG_VERSION"));

/// The `Sluice-Signature` header value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any size");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// What follows a failed attempt, the `attempts_made`-th of a delivery queued at `queued_at`:
/// a retry after a delay drawn uniformly below `base * 2^(attempts_made - 1)` (capped at the
/// maximum interval), never later than the end of the retry window; or, once the window is
/// over, giving up.
pub fn after_failure(
    settings: &WebhooksConfig,
    attempts_made: u32,
    queued_at: DateTime<Utc>,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> AttemptOutcome {
    let deadline = queued_at
        + chrono::Duration::from_std(settings.give_up_after()).unwrap_or(chrono::Duration::MAX);
    if now >= deadline {
        return AttemptOutcome::GiveUp;
    }
    let delay = sluice_storage::backoff::full_jitter_delay(
        settings.retry_base(),
        settings.retry_max_interval(),
        attempts_made,
        rng,
    );
    let retry_at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    AttemptOutcome::RetryAt(retry_at.min(deadline))
}

/// Sends the outbox until shutdown.
pub struct WebhookDispatcher {
    db: Db,
    events: EventBus,
    settings: WebhooksConfig,
    client: reqwest::Client,
    /// With `[webhooks] deny_private`, where deliveries may connect.
    addresses: Option<Arc<AddressPolicy>>,
    metrics: Metrics,
    stopping: watch::Receiver<bool>,
}

impl WebhookDispatcher {
    pub fn new(
        db: Db,
        events: EventBus,
        settings: WebhooksConfig,
        metrics: Metrics,
        stopping: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()?;
        let addresses = settings.address_policy()?.map(Arc::new);
        Ok(Self {
            db,
            events,
            settings,
            client,
            addresses,
            metrics,
            stopping,
        })
    }

    /// Runs until the shutdown channel turns true. Requests still in flight then are
    /// abandoned and their leases released, so the next run sends them again at once.
    pub async fn run(mut self) {
        let mut wake = self.events.subscribe();
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut in_flight = JoinSet::new();
        // Task → (endpoint id, delivery id) of every request in flight.
        let mut sending: HashMap<task::Id, (String, String)> = HashMap::new();
        let lease = self.settings.timeout() * 2 + LEASE_MARGIN;
        loop {
            if in_flight.len() < MAX_IN_FLIGHT {
                let busy: Vec<String> = sending.values().map(|(e, _)| e.clone()).collect();
                match self
                    .db
                    .claim_due_webhook_deliveries(MAX_IN_FLIGHT - in_flight.len(), lease, &busy)
                    .await
                {
                    Ok(claimed) => {
                        for claim in claimed {
                            let ids = (claim.endpoint_id.clone(), claim.delivery_id.clone());
                            let handle = in_flight.spawn(deliver(
                                self.db.clone(),
                                self.client.clone(),
                                self.addresses.clone(),
                                self.settings.clone(),
                                self.metrics.clone(),
                                claim,
                            ));
                            sending.insert(handle.id(), ids);
                        }
                    }
                    Err(error) => warn!(%error, "Cannot claim webhook deliveries."),
                }
            }
            tokio::select! {
                _ = self.stopping.wait_for(|stop| *stop) => break,
                // Any event may have queued deliveries; a lagging receiver just claims now.
                _ = wake.recv() => {}
                _ = poll.tick() => {}
                Some(done) = in_flight.join_next_with_id() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(error) => {
                            warn!(%error, "A webhook delivery task failed.");
                            error.id()
                        }
                    };
                    sending.remove(&id);
                }
            }
        }
        in_flight.abort_all();
        while in_flight.join_next().await.is_some() {}
        let unfinished: Vec<String> = sending.into_values().map(|(_, d)| d).collect();
        if let Err(error) = self.db.release_webhook_leases(&unfinished).await {
            warn!(%error, "Cannot release the leases of unsent webhook deliveries.");
        }
        info!("Webhook dispatcher stopped.");
    }
}

/// The client to send a delivery to `url` with: the shared one, or, under an address policy, one
/// pinned to the address the policy admitted (so a second DNS answer cannot swap in another),
/// or why the URL may not be reached.
async fn checked_client(
    client: reqwest::Client,
    addresses: Option<&AddressPolicy>,
    settings: &WebhooksConfig,
    url: &str,
) -> Result<reqwest::Client, String> {
    let Some(addresses) = addresses else {
        return Ok(client);
    };
    let url = reqwest::Url::parse(url).map_err(|e| format!("the webhook URL is invalid: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let address = addresses.resolve("the webhook URL", host, port).await?;
    reqwest::Client::builder()
        .timeout(settings.timeout())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(USER_AGENT)
        .resolve(host, address)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// One attempt of one delivery, recorded with its outcome.
async fn deliver(
    db: Db,
    client: reqwest::Client,
    addresses: Option<Arc<AddressPolicy>>,
    settings: WebhooksConfig,
    metrics: Metrics,
    claim: ClaimedDelivery,
) {
    let body = match serde_json::to_vec(&claim.event) {
        Ok(body) => body,
        Err(error) => {
            warn!(%error, delivery_id = %claim.delivery_id, "Cannot serialise a webhook event.");
            return;
        }
    };
    let started_at = Utc::now();
    let signature = signature_header(&claim.secret, started_at.timestamp(), &body);
    let clock = Instant::now();
    let response = match checked_client(client, addresses.as_deref(), &settings, &claim.url).await {
        Ok(client) => client
            .post(&claim.url)
            .header(CONTENT_TYPE, "application/json")
            .header("Sluice-Signature", signature)
            .header("Sluice-Event-Id", &claim.event.id)
            .header("Sluice-Delivery-Id", &claim.delivery_id)
            .body(body)
            .send()
            .await
            .map_err(|error| describe(error, settings.timeout())),
        Err(refused) => Err(refused),
    };
    let duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status_code, error) = match response {
        Ok(response) => (Some(response.status().as_u16()), None),
        Err(error) => (None, Some(error)),
    };
    let delivered = status_code.is_some_and(|code| (200..300).contains(&code));
    let outcome = if delivered {
        metrics.webhook_delivered();
        AttemptOutcome::Delivered
    } else {
        metrics.webhook_failed();
        after_failure(
            &settings,
            claim.attempt_count + 1,
            claim.queued_at,
            Utc::now(),
            &mut rand::thread_rng(),
        )
    };
    debug!(
        delivery_id = %claim.delivery_id,
        event_id = %claim.event.id,
        status_code,
        error,
        ?outcome,
        "Webhook delivery attempted."
    );
    if outcome == AttemptOutcome::GiveUp {
        warn!(
            delivery_id = %claim.delivery_id,
            url = %claim.url,
            "Webhook delivery failed for good."
        );
    }
    let attempt = WebhookAttempt {
        started_at,
        duration_ms,
        status_code,
        error,
    };
    match db.record_webhook_attempt(&claim, &attempt, outcome).await {
        Ok(()) => {}
        // Its endpoint was deleted meanwhile.
        Err(error) if error.is_not_found() => {
            debug!(delivery_id = %claim.delivery_id, "Webhook delivery vanished while sent.");
        }
        Err(error) => {
            warn!(%error, delivery_id = %claim.delivery_id, "Cannot record a webhook attempt.")
        }
    }
}

/// A failed request in a line for the deliveries API: "timed out after …", or the error with
/// its causes (reqwest's own message names only the URL, the cause says what happened).
fn describe(error: reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("timed out after {timeout:?}");
    }
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn settings() -> WebhooksConfig {
        WebhooksConfig {
            timeout_seconds: 10.0,
            retry_base_seconds: 10.0,
            retry_max_interval_seconds: 3600.0,
            give_up_after_hours: 24.0,
            ..WebhooksConfig::default()
        }
    }

    fn delay(outcome: AttemptOutcome, now: DateTime<Utc>) -> Duration {
        match outcome {
            AttemptOutcome::RetryAt(at) => (at - now).to_std().unwrap(),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn retry_delays_stay_under_a_doubling_capped_ceiling_and_are_spread() {
        let settings = settings();
        let mut rng = StdRng::seed_from_u64(7);
        let now = Utc::now();
        for (attempts, ceiling_secs) in
            [(1, 10), (2, 20), (3, 40), (9, 2560), (10, 3600), (40, 3600)]
        {
            let delays: Vec<Duration> = (0..200)
                .map(|_| delay(after_failure(&settings, attempts, now, now, &mut rng), now))
                .collect();
            let ceiling = Duration::from_secs(ceiling_secs);
            assert!(delays.iter().all(|d| *d < ceiling), "attempt {attempts}");
            // Full jitter: delays cover the range, not one point.
            assert!(
                delays.iter().any(|d| *d < ceiling / 4),
                "attempt {attempts}"
            );
            assert!(
                delays.iter().any(|d| *d > ceiling * 3 / 4),
                "attempt {attempts}"
            );
        }
    }

    #[test]
    fn retries_end_with_the_window() {
        let settings = settings();
        let mut rng = StdRng::seed_from_u64(1);
        let queued_at = Utc::now();
        let window = chrono::Duration::hours(24);
        // Near the end of the window the retry is no later than its end…
        let late = queued_at + window - chrono::Duration::seconds(5);
        for _ in 0..50 {
            match after_failure(&settings, 30, queued_at, late, &mut rng) {
                AttemptOutcome::RetryAt(at) => assert!(at <= queued_at + window),
                other => panic!("expected a retry, got {other:?}"),
            }
        }
        // …and once it is over, the delivery fails.
        assert_eq!(
            after_failure(&settings, 31, queued_at, queued_at + window, &mut rng),
            AttemptOutcome::GiveUp
        );
    }

    #[test]
    fn signature_is_the_hmac_of_timestamp_dot_body() {
        // Expected value from an independent implementation:
        // `printf '1700000000.{}' | openssl dgst -sha256 -hmac key`.
        assert_eq!(
            signature_header("key", 1_700_000_000, b"{}"),
            "t=1700000000,v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }
}
