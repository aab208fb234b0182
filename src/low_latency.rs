//! The live core's LL-HLS trees ([`sluice_live::low_latency`]) plugged into HTTP delivery
//! ([`sluice_api::LowLatencyHls`]): [`LiveLowLatency`] answers from this process's memory,
//! [`RemoteLowLatency`] forwards to the node packaging a session (its `packager_url`), and
//! [`RoutedLowLatency`] tries the first, then the second.
//!
//! Forwarded requests that are alike (the same held playlist or part, asked by many viewers
//! of one api node) share one request to the packaging node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use reqwest::StatusCode;
use sluice_api::{ForwardedQuery, LowLatencyAnswer, LowLatencyHls, LowLatencyRequest};
use sluice_ingest::peers::RefusalLog;
use sluice_live::low_latency::{BlockingRequest, LowLatencyStreams, PlaylistAnswer};
use sluice_storage::{Db, LiveStreamId};
use tracing::warn;

/// How long an api node remembers which node packages a stream (or that none does).
const PACKAGER_MEMORY: Duration = Duration::from_secs(1);
/// A forwarded request's limit: past the longest hold (three target durations of a `source`
/// rung cutting at long key-frame intervals).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a packaging node that could not be reached is not asked again (its streams play
/// from the store meanwhile).
const UNREACHABLE_MEMORY: Duration = Duration::from_secs(5);
/// Distinct forwarded requests in flight at once; past it the store answers.
const MAX_FLIGHTS: usize = 4096;

/// The low-latency sessions of this process's live core.
#[derive(Clone)]
pub struct LiveLowLatency(pub Arc<LowLatencyStreams>);

#[async_trait]
impl LowLatencyHls for LiveLowLatency {
    async fn playlist(
        &self,
        live_stream_id: &LiveStreamId,
        rendition: &str,
        request: LowLatencyRequest,
        uri_query: &str,
    ) -> Option<LowLatencyAnswer> {
        let tree = self.0.get(live_stream_id)?;
        let blocking = request.msn.map(|msn| BlockingRequest {
            msn,
            part: request.part,
        });
        match tree
            .playlist(rendition, blocking, request.skip, uri_query)
            .await
        {
            PlaylistAnswer::Playlist(body) => Some(LowLatencyAnswer::Playlist(body)),
            PlaylistAnswer::NotFound => None,
            PlaylistAnswer::TooFarAhead => Some(LowLatencyAnswer::TooFarAhead),
            PlaylistAnswer::TimedOut => Some(LowLatencyAnswer::TimedOut),
        }
    }

    async fn media(
        &self,
        live_stream_id: &LiveStreamId,
        rendition: &str,
        name: &str,
    ) -> Option<Bytes> {
        let tree = self.0.get(live_stream_id)?;
        tree.media(rendition, name).await
    }
}

/// What the packaging node answered a forwarded request.
#[derive(Clone, Debug)]
enum Forwarded {
    Body(Bytes),
    TooFarAhead,
    TimedOut,
    /// Not there (or the node could not be reached): the store serves the request.
    Missing,
}

type Flight = Shared<BoxFuture<'static, Forwarded>>;
type Flights = Arc<Mutex<HashMap<String, Flight>>>;

/// Forwards LL-HLS requests to the node packaging each stream's session, found by its
/// session's `packager_url`, with the node token every node derives from the master key.
pub struct RemoteLowLatency {
    db: Db,
    client: reqwest::Client,
    node_token: Arc<str>,
    /// Live stream → (when looked up, its packaging node's base URL).
    packagers: Mutex<HashMap<LiveStreamId, (Instant, Option<String>)>>,
    /// One database lookup at a time: requests arriving together find the first one's answer.
    lookup: tokio::sync::Mutex<()>,
    /// Packaging node base URL → when it could not be reached.
    unreachable: Arc<Mutex<HashMap<String, Instant>>>,
    /// Forwarded requests in flight, by URL, shared by every viewer asking the same. Each runs
    /// as its own task, which removes it when answered, whoever still waits.
    flights: Flights,
    warnings: Arc<Warnings>,
}

impl RemoteLowLatency {
    pub fn new(db: Db, node_token: Arc<str>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(FORWARD_TIMEOUT)
            .build()?;
        Ok(RemoteLowLatency {
            db,
            client,
            node_token,
            packagers: Mutex::default(),
            lookup: tokio::sync::Mutex::default(),
            unreachable: Arc::default(),
            flights: Arc::default(),
            warnings: Arc::default(),
        })
    }

    /// The base URL of the node packaging the stream's low-latency session, if any.
    async fn packager(&self, live_stream_id: &LiveStreamId) -> Option<String> {
        let remembered = || {
            lock(&self.packagers)
                .get(live_stream_id)
                .filter(|(at, _)| at.elapsed() < PACKAGER_MEMORY)
                .map(|(_, url)| url.clone())
        };
        if let Some(url) = remembered() {
            return url;
        }
        let _turn = self.lookup.lock().await;
        if let Some(url) = remembered() {
            return url;
        }
        let url = match self.db.live_packager_url(live_stream_id).await {
            Ok(url) => url,
            Err(e) => {
                self.warnings
                    .warn(format_args!("looking up the packaging node: {e}"));
                None
            }
        };
        let mut packagers = lock(&self.packagers);
        packagers.retain(|_, (at, _)| at.elapsed() < PACKAGER_MEMORY);
        packagers.insert(live_stream_id.clone(), (Instant::now(), url.clone()));
        url
    }

    /// Asks the packaging node for `name` of `rendition`, joining an identical request in
    /// flight.
    async fn forward(
        &self,
        live_stream_id: &LiveStreamId,
        rendition: &str,
        name: &str,
        query: Vec<(&'static str, String)>,
    ) -> Forwarded {
        let Some(base) = self.packager(live_stream_id).await else {
            return Forwarded::Missing;
        };
        if lock(&self.unreachable)
            .get(&base)
            .is_some_and(|at| at.elapsed() < UNREACHABLE_MEMORY)
        {
            return Forwarded::Missing;
        }
        let path = format!(
            "{base}{}/{live_stream_id}/{rendition}/{name}",
            sluice_api::LOW_LATENCY_PATH
        );
        let mut url = match reqwest::Url::parse(&path) {
            Ok(url) => url,
            Err(e) => {
                self.warnings.warn(format_args!(
                    "the packaging node's URL {base:?} does not parse: {e}"
                ));
                return Forwarded::Missing;
            }
        };
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let key = url.to_string();
        let flight = {
            let mut flights = lock(&self.flights);
            match flights.get(&key) {
                Some(flight) => flight.clone(),
                None if flights.len() >= MAX_FLIGHTS => return Forwarded::Missing,
                None => {
                    let task = tokio::spawn(self.fly(url, base, key.clone()));
                    let flight = async move { task.await.unwrap_or(Forwarded::Missing) }
                        .boxed()
                        .shared();
                    flights.insert(key, flight.clone());
                    flight
                }
            }
        };
        flight.await
    }

    /// One request to the packaging node at `base`, leaving the flights once answered.
    fn fly(
        &self,
        url: reqwest::Url,
        base: String,
        key: String,
    ) -> impl std::future::Future<Output = Forwarded> + Send + 'static {
        let request = self.client.get(url).bearer_auth(&*self.node_token).send();
        let (flights, unreachable, warnings) = (
            self.flights.clone(),
            self.unreachable.clone(),
            self.warnings.clone(),
        );
        async move {
            let answer = match request.await {
                Ok(response) => match response.status() {
                    StatusCode::OK => match response.bytes().await {
                        Ok(body) => Forwarded::Body(body),
                        Err(e) => {
                            warnings.warn(format_args!("reading from the packaging node: {e}"));
                            Forwarded::Missing
                        }
                    },
                    StatusCode::BAD_REQUEST => Forwarded::TooFarAhead,
                    StatusCode::SERVICE_UNAVAILABLE => Forwarded::TimedOut,
                    StatusCode::NOT_FOUND => Forwarded::Missing,
                    status => {
                        warnings.warn(format_args!("the packaging node answered {status}"));
                        Forwarded::Missing
                    }
                },
                Err(e) => {
                    if e.is_connect() || e.is_timeout() {
                        let mut unreachable = lock(&unreachable);
                        unreachable.retain(|_, at| at.elapsed() < UNREACHABLE_MEMORY);
                        unreachable.insert(base, Instant::now());
                    }
                    warnings.warn(format_args!("reaching the packaging node: {e}"));
                    Forwarded::Missing
                }
            };
            lock(&flights).remove(&key);
            answer
        }
    }
}

#[async_trait]
impl LowLatencyHls for RemoteLowLatency {
    async fn playlist(
        &self,
        live_stream_id: &LiveStreamId,
        rendition: &str,
        request: LowLatencyRequest,
        uri_query: &str,
    ) -> Option<LowLatencyAnswer> {
        let query = ForwardedQuery::encode(request, uri_query);
        match self
            .forward(live_stream_id, rendition, "index.m3u8", query)
            .await
        {
            Forwarded::Body(body) => Some(LowLatencyAnswer::Playlist(body)),
            Forwarded::TooFarAhead => Some(LowLatencyAnswer::TooFarAhead),
            Forwarded::TimedOut => Some(LowLatencyAnswer::TimedOut),
            Forwarded::Missing => None,
        }
    }

    async fn media(
        &self,
        live_stream_id: &LiveStreamId,
        rendition: &str,
        name: &str,
    ) -> Option<Bytes> {
        match self
            .forward(live_stream_id, rendition, name, Vec::new())
            .await
        {
            Forwarded::Body(body) => Some(body),
            _ => None,
        }
    }
}

/// Answers from this process's sessions when it packages the stream, else from the node that
/// does.
pub struct RoutedLowLatency {
    pub local: Option<LiveLowLatency>,
    pub remote: RemoteLowLatency,
}

impl RoutedLowLatency {
    fn local_for(&self, live_stream_id: &LiveStreamId) -> Option<&LiveLowLatency> {
        self.local
            .as_ref()
            .filter(|local| local.0.get(live_stream_id).is_some())
    }
}

#[async_trait]
impl LowLatencyHls for RoutedLowLatency {
    async fn playlist(
        &self,
        live_stream_id: &LiveStreamId,
        rendition: &str,
        request: LowLatencyRequest,
        uri_query: &str,
    ) -> Option<LowLatencyAnswer> {
        match self.local_for(live_stream_id) {
            Some(local) => {
                local
                    .playlist(live_stream_id, rendition, request, uri_query)
                    .await
            }
            None => {
                self.remote
                    .playlist(live_stream_id, rendition, request, uri_query)
                    .await
            }
        }
    }

    async fn media(
        &self,
        live_stream_id: &LiveStreamId,
        rendition: &str,
        name: &str,
    ) -> Option<Bytes> {
        match self.local_for(live_stream_id) {
            Some(local) => local.media(live_stream_id, rendition, name).await,
            None => self.remote.media(live_stream_id, rendition, name).await,
        }
    }
}

/// Problems forwarding, warned about at most every ten seconds (a node down would otherwise
/// log once per viewer request), as listeners warn about refused peers.
#[derive(Default)]
struct Warnings(Mutex<RefusalLog>);

impl Warnings {
    fn warn(&self, problem: std::fmt::Arguments<'_>) {
        if let Some(failures) = lock(&self.0).refused(Instant::now()) {
            warn!(%problem, failures, "LL-HLS requests fall back to the store's regular playlists.");
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sluice_media::Ladder;
    use sluice_storage::test_support::TestDatabase;
    use sluice_storage::{LiveStreamSettings, SecretBox, SessionOrigin, MASTER_KEY_LEN};

    use super::*;

    /// A packaging node answering every forwarded request with a playlist after `delay`, and
    /// how many it was asked.
    async fn packaging_node(delay: Duration) -> (String, Arc<AtomicUsize>) {
        let asked = Arc::new(AtomicUsize::new(0));
        let counter = asked.clone();
        let answer = move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                "#EXTM3U\n"
            }
        };
        let app = axum::Router::new().route(
            "/internal/low-latency/{live_stream_id}/{rendition}/{name}",
            axum::routing::get(answer),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, asked)
    }

    /// A forwarder whose database says `base` packages the returned stream's session.
    async fn forwarder_to(base: &str) -> (TestDatabase, RemoteLowLatency, LiveStreamId) {
        let database = TestDatabase::new();
        let db = Db::connect(database.url())
            .await
            .unwrap()
            .with_secret_box(SecretBox::new([7; MASTER_KEY_LEN]));
        db.migrate().await.unwrap();
        let stream = db
            .create_live_stream("low", &Ladder::default(), &LiveStreamSettings::default())
            .await
            .unwrap();
        let origin = SessionOrigin {
            client_addr: "192.0.2.1:5000".to_owned(),
            protocol: "rtmp",
            encoder: None,
            app: Some("live".to_owned()),
        };
        let session = db.start_session(&stream.id, &origin).await.unwrap();
        db.set_session_packager(&session.id, base).await.unwrap();
        let remote = RemoteLowLatency::new(db, Arc::from("node token")).unwrap();
        (database, remote, stream.id)
    }

    const NEXT_PART: LowLatencyRequest = LowLatencyRequest {
        msn: Some(3),
        part: Some(1),
        skip: false,
    };

    #[tokio::test]
    async fn alike_requests_share_one_forwarded_request() {
        let (base, asked) = packaging_node(Duration::from_millis(200)).await;
        let (_database, remote, id) = forwarder_to(&base).await;
        let answers = futures_util::future::join_all(
            (0..10).map(|_| remote.playlist(&id, "v0", NEXT_PART, "")),
        )
        .await;
        for answer in answers {
            assert_eq!(
                answer,
                Some(LowLatencyAnswer::Playlist(Bytes::from_static(b"#EXTM3U\n")))
            );
        }
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        assert!(lock(&remote.flights).is_empty(), "answered flights leave");
    }

    #[tokio::test]
    async fn a_forward_every_viewer_left_still_ends_and_is_not_reused() {
        let (base, asked) = packaging_node(Duration::from_millis(300)).await;
        let (_database, remote, id) = forwarder_to(&base).await;
        let gave_up = tokio::time::timeout(
            Duration::from_millis(100),
            remote.playlist(&id, "v0", NEXT_PART, ""),
        )
        .await;
        assert!(gave_up.is_err(), "the viewer left before the answer");
        assert_eq!(lock(&remote.flights).len(), 1);
        tokio::time::timeout(Duration::from_secs(10), async {
            while !lock(&remote.flights).is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the flight ended on its own");
        assert!(remote.playlist(&id, "v0", NEXT_PART, "").await.is_some());
        assert_eq!(asked.load(Ordering::SeqCst), 2, "asked afresh");
    }

    #[tokio::test]
    async fn a_packaging_node_out_of_reach_leaves_the_store_to_answer() {
        // A port nobody listens on any more.
        let base = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let (_database, remote, id) = forwarder_to(&base).await;
        assert_eq!(remote.playlist(&id, "v0", NEXT_PART, "").await, None);
        assert!(lock(&remote.unreachable).contains_key(&base));
        assert_eq!(remote.media(&id, "v0", "x-3.1.m4s").await, None);
    }
}
