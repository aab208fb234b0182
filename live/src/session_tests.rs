//! The session core driven by a fake publisher, the way every protocol adapter drives it:
//! a real database (SQLite, or Postgres when the test environment names one), a real local
//! store behind [`NotingStore`] (which notes the order of what it accepted), the real pipeline
//! on a small clip made by the ffmpeg CLI (a `source` ladder, so nothing is encoded) or on
//! generated raw pictures (as a room's composite publishes them, encoded into a small ladder),
//! and fake ports for the event views and recordings.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use sluice_media::fixtures::{ffmpeg_clip, raw_picture};
use sluice_media::{
    AudioSpecificConfig, Ladder, Packet, Timebase, TrackInfo, TrackKind, VideoCodec,
};
use sluice_storage::test_support::TestDatabase;
use sluice_storage::{
    AssetId, Db, Dvr, DvrMode, EventBus, LiveStream, LiveStreamId, LiveStreamSettings,
    LiveStreamStatus, Metrics, ObjectStore, Session, SessionId, SessionOrigin, SimulcastTarget,
};
use sluice_transcoder::{FileDemuxer, ProbeLimits};
use tokio::sync::watch;

use crate::address_policy::AddressPolicy;
use crate::config::LiveConfig;
use crate::restream::RestreamSettings;
use crate::test_support::NotingStore;
use crate::{
    EventViews, LiveService, PublishRequest, Publisher, PublisherEvent, Recordings,
    SessionRecording,
};

/// Segment duration of the rig's sessions (the clip has a key frame every second).
const SEGMENT_SECONDS: u32 = 1;
/// How long a test waits for something the session does in the background.
const PATIENCE: Duration = Duration::from_secs(30);

/// What a fake publisher was told about its publish.
#[derive(Clone, Debug, Default, PartialEq)]
enum Answer {
    #[default]
    None,
    Accepted,
    Rejected(String),
}

/// A publisher that hands over a fixed list of events, then says it dropped.
struct FakePublisher {
    events: VecDeque<PublisherEvent>,
    answer: Arc<Mutex<Answer>>,
    /// How long it waits before each video packet: zero hands them over as fast as they are
    /// taken, a frame interval as a live source would.
    video_interval: Duration,
}

impl FakePublisher {
    fn new(events: impl IntoIterator<Item = PublisherEvent>) -> (Self, Arc<Mutex<Answer>>) {
        let answer = Arc::new(Mutex::new(Answer::None));
        let publisher = FakePublisher {
            events: events.into_iter().collect(),
            answer: answer.clone(),
            video_interval: Duration::ZERO,
        };
        (publisher, answer)
    }
}

impl Publisher for FakePublisher {
    type Error = String;

    async fn next_event(&mut self) -> Result<PublisherEvent, String> {
        let event = self.events.pop_front().unwrap_or(PublisherEvent::Dropped);
        if matches!(&event, PublisherEvent::Media(packet) if packet.kind == TrackKind::Video) {
            tokio::time::sleep(self.video_interval).await;
        }
        Ok(event)
    }

    async fn accept_publish(&mut self) -> Result<(), String> {
        *self.answer.lock().unwrap() = Answer::Accepted;
        Ok(())
    }

    async fn reject_publish(&mut self, reason: &str) -> Result<(), String> {
        *self.answer.lock().unwrap() = Answer::Rejected(reason.to_owned());
        Ok(())
    }

    fn bytes_received(&self) -> u64 {
        0
    }
}

/// Event data that names the object only: what the tests look at.
struct IdViews;

#[async_trait]
impl EventViews for IdViews {
    async fn live_stream(&self, stream: LiveStream) -> anyhow::Result<Value> {
        Ok(json!({"id": stream.id}))
    }

    fn session(&self, session: Session) -> anyhow::Result<Value> {
        Ok(json!({"id": session.id}))
    }

    fn simulcast_target(&self, target: SimulcastTarget) -> Value {
        json!({"id": target.id})
    }
}

/// Recordings that keep what the core handed over.
#[derive(Default)]
struct KeptRecordings {
    sealed: Mutex<Vec<(AssetId, Option<SessionRecording>)>>,
}

#[async_trait]
impl Recordings for KeptRecordings {
    async fn start(
        &self,
        _live_stream_id: &LiveStreamId,
        _session_id: &SessionId,
    ) -> Option<AssetId> {
        Some(AssetId::parse("asset_recorded").unwrap())
    }

    async fn seal(
        &self,
        asset_id: &AssetId,
        _live_stream_id: &LiveStreamId,
        recording: Option<SessionRecording>,
        _wait: bool,
    ) {
        self.sealed
            .lock()
            .unwrap()
            .push((asset_id.to_owned(), recording));
    }

    async fn error_interrupted(&self) {}
}

/// A live core on a fresh database and store, with the clip's events ready to publish.
struct Rig {
    _database: TestDatabase,
    dir: tempfile::TempDir,
    db: Db,
    store: Arc<NotingStore>,
    recordings: Arc<KeptRecordings>,
    live: Arc<LiveService>,
    _shutdown: watch::Sender<bool>,
}

impl Rig {
    async fn new() -> Rig {
        let database = TestDatabase::new();
        let db = Db::connect(database.url()).await.unwrap();
        db.migrate().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(NotingStore::new(&dir.path().join("objects")));
        let recordings = Arc::new(KeptRecordings::default());
        let config = LiveConfig {
            segment_seconds: SEGMENT_SECONDS,
            spool_dir: Some(dir.path().join("spool")),
            ..LiveConfig::default()
        };
        let restream = RestreamSettings {
            addresses: AddressPolicy::new(&[]).unwrap(),
            queue_packets: 600,
            connect_timeout: Duration::from_secs(5),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(5),
        };
        let (shutdown, stopping) = watch::channel(false);
        let live = LiveService::new(
            db.clone(),
            store.clone(),
            EventBus::new(db.clone()),
            Metrics::new(),
            config,
            restream,
            Arc::new(IdViews),
            recordings.clone(),
            stopping,
            None,
            Arc::new(sluice_transcribe::Speech::unavailable(
                "not used by these tests".to_owned(),
            )),
        );
        Rig {
            _database: database,
            dir,
            db,
            store,
            recordings,
            live,
            _shutdown: shutdown,
        }
    }

    async fn stream(&self, settings: LiveStreamSettings) -> LiveStream {
        self.stream_with_ladder(json!(["source"]), settings).await
    }

    async fn stream_with_ladder(&self, ladder: Value, settings: LiveStreamSettings) -> LiveStream {
        self.db
            .create_live_stream("test", &Ladder::from_request(&ladder).unwrap(), &settings)
            .await
            .unwrap()
    }

    /// A video-only H.264 clip of `seconds` (a key frame a second) as a publisher's events:
    /// its track, then its packets.
    fn clip(&self, seconds: u32) -> Vec<PublisherEvent> {
        let duration = seconds.to_string();
        let path: PathBuf = ffmpeg_clip(
            self.dir.path(),
            &format!("clip-{seconds}.mp4"),
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=160x120:rate=15",
                "-t",
                &duration,
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "15",
                "-bf",
                "0",
            ],
        );
        let mut demuxer = FileDemuxer::open(&path, &ProbeLimits::default()).unwrap();
        let config = demuxer.video_config().cloned().expect("an H.264 clip");
        let packets: Vec<Packet> = demuxer.packets().collect();
        std::iter::once(PublisherEvent::Track(TrackInfo::Avc {
            config,
            frame_rate: Some(15.0),
        }))
        .chain(packets.into_iter().map(PublisherEvent::Media))
        .collect()
    }

    /// `seconds` of 320×180 raw pictures at 30 fps on the 90 kHz clock with a tone's AAC
    /// audio (made by the ffmpeg CLI) as a room's composite publishes them: its tracks, then
    /// its packets in time order.
    fn raw_composite(&self, seconds: u32) -> Vec<PublisherEvent> {
        let duration = seconds.to_string();
        let tone = ffmpeg_clip(
            self.dir.path(),
            &format!("tone-{seconds}.m4a"),
            &[
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                &duration,
                "-c:a",
                "aac",
                "-ac",
                "1",
            ],
        );
        let mut demuxer = FileDemuxer::open(&tone, &ProbeLimits::default()).unwrap();
        // The encoder's priming frame, before zero, is not the composite's.
        let audio = demuxer.packets().filter(|packet| packet.dts >= 0);
        let pictures = (0..seconds * 30).map(|index| Packet {
            kind: TrackKind::Video,
            timebase: Timebase::MPEG,
            dts: i64::from(index) * 3_000,
            pts: i64::from(index) * 3_000,
            keyframe: true,
            data: raw_picture(320, 180, index),
        });
        let mut packets: Vec<Packet> = audio.chain(pictures).collect();
        packets.sort_by(|a, b| {
            a.dts_time()
                .as_secs_f64()
                .total_cmp(&b.dts_time().as_secs_f64())
        });
        [
            PublisherEvent::Track(TrackInfo::RawVideo {
                width: 320,
                height: 180,
                frame_rate: 30.0,
            }),
            PublisherEvent::Track(TrackInfo::Aac {
                config: AudioSpecificConfig::new(2, 48_000, 1).unwrap(),
            }),
        ]
        .into_iter()
        .chain(packets.into_iter().map(PublisherEvent::Media))
        .collect()
    }

    /// Publishes `events` to `stream` as one publisher, until the core lets it go.
    async fn publish(
        &self,
        stream: &LiveStream,
        events: Vec<PublisherEvent>,
    ) -> Arc<Mutex<Answer>> {
        self.publish_paced(stream, events, Duration::ZERO).await
    }

    /// [`Rig::publish`], waiting `video_interval` before each video packet.
    async fn publish_paced(
        &self,
        stream: &LiveStream,
        events: Vec<PublisherEvent>,
        video_interval: Duration,
    ) -> Arc<Mutex<Answer>> {
        let (mut publisher, answer) = FakePublisher::new(events);
        publisher.video_interval = video_interval;
        self.live
            .publish(publisher, request(&stream.stream_key))
            .await
            .unwrap();
        answer
    }

    /// Event types recorded about `object_id`, in order.
    async fn events_of(&self, object_id: &str) -> Vec<String> {
        self.db
            .events_after_seq(0, 1_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|event| event.object.id == object_id)
            .map(|event| event.event_type)
            .collect()
    }

    /// Waits until `stream` is idle again (its session fully ended).
    async fn wait_idle(&self, stream: &LiveStream) -> LiveStream {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let now = self.db.get_live_stream(&stream.id).await.unwrap().unwrap();
                if now.status == LiveStreamStatus::Idle {
                    return now;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("the stream becomes idle")
    }
}

fn request(stream_key: &str) -> PublishRequest {
    PublishRequest {
        stream_key: stream_key.to_owned(),
        origin: SessionOrigin {
            client_addr: "192.0.2.1:5000".to_owned(),
            protocol: "fake",
            encoder: None,
            app: None,
        },
    }
}

fn no_reconnect_window() -> LiveStreamSettings {
    LiveStreamSettings {
        reconnect_window_s: 0,
        ..LiveStreamSettings::default()
    }
}

/// Checks that every media playlist the store accepted listed only segments it had accepted
/// before, and returns how many segments were stored.
fn assert_segments_stored_before_playlists(store: &NotingStore, live_stream_id: &str) -> usize {
    let accepted = store.accepted();
    let playlists = store.playlists();
    assert!(!playlists.is_empty(), "no media playlist was stored");
    let mut versions_seen: HashMap<String, usize> = HashMap::new();
    for (key, uris) in playlists {
        // The n-th version of a playlist the store noted is its n-th accepted put.
        let put = format!("put {key}");
        let version = versions_seen.entry(put.clone()).or_default();
        let at = accepted
            .iter()
            .enumerate()
            .filter(|(_, line)| **line == put)
            .nth(*version)
            .map(|(at, _)| at)
            .expect("the playlist was accepted");
        *version += 1;
        let dir = key.as_str().rsplit_once('/').unwrap().0;
        for uri in uris {
            let segment = format!("put {dir}/{uri}");
            let stored = accepted[..at].contains(&segment);
            assert!(stored, "{key} listed {uri} before it was stored");
        }
    }
    accepted
        .iter()
        .filter(|line| line.starts_with(&format!("put live/{live_stream_id}/v0/")))
        .filter(|line| line.ends_with(".m4s"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_is_stored_segment_before_playlist_and_ends_with_its_events() {
    let rig = Rig::new().await;
    let stream = rig.stream(no_reconnect_window()).await;
    let mut events = rig.clip(6);
    events.push(PublisherEvent::Unpublished);

    let answer = rig.publish(&stream, events).await;

    assert_eq!(*answer.lock().unwrap(), Answer::Accepted);
    let stream = rig.wait_idle(&stream).await;
    let segments = assert_segments_stored_before_playlists(&rig.store, &stream.id);
    assert!(
        segments >= 4,
        "six seconds make several segments: {segments}"
    );
    let index = rig
        .store
        .get(&sluice_storage::layout::live_object(&stream.id, &["v0", "index.m3u8"]).unwrap())
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&index).contains("#EXT-X-ENDLIST"));
    assert_eq!(
        rig.events_of(&stream.id).await,
        [
            "live_stream.connected",
            "live_stream.active",
            "live_stream.disconnected",
            "live_stream.idle"
        ]
    );
    let session_id = stream
        .active_session_id
        .expect("the stream names its last session");
    assert_eq!(
        rig.events_of(&session_id).await,
        ["session.started", "session.ended"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_that_leave_the_window_are_deleted_after_they_were_stored() {
    let rig = Rig::new().await;
    let window = Dvr {
        mode: DvrMode::Window,
        window_s: Some(2),
    };
    let stream = rig
        .stream(LiveStreamSettings {
            dvr: window,
            ..no_reconnect_window()
        })
        .await;
    let mut events = rig.clip(10);
    events.push(PublisherEvent::Unpublished);

    rig.publish(&stream, events).await;
    rig.wait_idle(&stream).await;

    let accepted = rig.store.accepted();
    let deletes: Vec<&String> = accepted
        .iter()
        .filter(|line| line.starts_with("delete "))
        .collect();
    assert!(
        !deletes.is_empty(),
        "a two-second window evicts: {accepted:?}"
    );
    for delete in deletes {
        let key = delete.trim_start_matches("delete ");
        let put = accepted
            .iter()
            .position(|line| *line == format!("put {key}"));
        let deleted = accepted.iter().position(|line| line == delete);
        assert!(put < deleted, "{key} was deleted before it was stored");
    }
    let (_, last_listed) = rig
        .store
        .playlists()
        .into_iter()
        .rfind(|(key, _)| key.as_str().ends_with("v0/index.m3u8"))
        .unwrap();
    for uri in last_listed {
        let key = format!("delete live/{}/v0/{uri}", stream.id);
        assert!(!accepted.contains(&key), "{uri} is listed but deleted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_vanishes_is_waited_for_and_one_that_returns_resumes_the_session() {
    let rig = Rig::new().await;
    let stream = rig
        .stream(LiveStreamSettings {
            reconnect_window_s: 30,
            ..LiveStreamSettings::default()
        })
        .await;
    let clip = rig.clip(4);
    let first = clip.clone();
    // The first publisher's events run out: it dropped without unpublishing.
    let waiting = {
        let live = rig.live.clone();
        let key = stream.stream_key.clone();
        tokio::spawn(async move {
            let (publisher, _) = FakePublisher::new(first);
            live.publish(publisher, request(&key)).await
        })
    };
    tokio::time::timeout(PATIENCE, async {
        while !rig
            .events_of(&stream.id)
            .await
            .contains(&"live_stream.disconnected".to_owned())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the vanished publisher is announced");
    let parked = rig.db.get_live_stream(&stream.id).await.unwrap().unwrap();
    assert_eq!(
        parked.status,
        LiveStreamStatus::Active,
        "the stream stays claimed"
    );

    let mut second = clip;
    second.push(PublisherEvent::Unpublished);
    let answer = rig.publish(&stream, second).await;
    waiting.await.unwrap().unwrap();

    assert_eq!(*answer.lock().unwrap(), Answer::Accepted);
    let ended = rig.wait_idle(&stream).await;
    assert_eq!(
        ended.active_session_id, parked.active_session_id,
        "one session"
    );
    let session_id = ended.active_session_id.unwrap();
    assert_eq!(
        rig.events_of(&session_id).await,
        ["session.started", "session.ended"],
        "the returning publisher resumed the session rather than starting one"
    );
    let index = rig
        .store
        .get(&sluice_storage::layout::live_object(&stream.id, &["v0", "index.m3u8"]).unwrap())
        .await
        .unwrap();
    let index = String::from_utf8_lossy(&index);
    assert!(index.contains("#EXT-X-DISCONTINUITY"), "{index}");
    assert!(index.contains("#EXT-X-ENDLIST"), "{index}");
    assert_segments_stored_before_playlists(&rig.store, &stream.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_session_hands_every_segment_it_stored_to_the_recordings() {
    let rig = Rig::new().await;
    let stream = rig
        .stream(LiveStreamSettings {
            record: true,
            dvr: Dvr {
                mode: DvrMode::Window,
                window_s: Some(2),
            },
            ..no_reconnect_window()
        })
        .await;
    let mut events = rig.clip(8);
    events.push(PublisherEvent::Unpublished);

    rig.publish(&stream, events).await;
    rig.wait_idle(&stream).await;

    let sealed = rig.recordings.sealed.lock().unwrap().clone();
    let [(asset_id, Some(recording))] = &sealed[..] else {
        panic!("one recording is sealed: {sealed:?}");
    };
    assert_eq!(asset_id, "asset_recorded");
    assert!(
        recording.master.is_some(),
        "the multivariant playlist is kept"
    );
    let video = &recording.renditions[0];
    assert_eq!(video.kind, TrackKind::Video);
    let stored = assert_segments_stored_before_playlists(&rig.store, &stream.id);
    assert_eq!(
        video.segments.len(),
        stored,
        "every stored segment is recorded"
    );
    let accepted = rig.store.accepted();
    for segment in &video.segments {
        let key = format!("delete live/{}/{}/{}", stream.id, video.dir, segment.name);
        assert!(
            !accepted.contains(&key),
            "a recorded segment is never evicted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_floods_without_a_usable_video_configuration_is_refused() {
    let rig = Rig::new().await;
    let stream = rig.stream(no_reconnect_window()).await;
    // VP8 is sized by its first key frame; a flood of inter frames never gives it.
    let inter_frame = Packet {
        kind: TrackKind::Video,
        timebase: sluice_media::Timebase::MILLIS,
        dts: 0,
        pts: 0,
        keyframe: false,
        data: bytes::Bytes::from_static(&[0x31, 0x05, 0x00, 0x11]),
    };
    let events = std::iter::once(PublisherEvent::Track(TrackInfo::OtherVideo {
        codec: VideoCodec::Vp8,
    }))
    .chain((0..5_000).map(|n| {
        PublisherEvent::Media(Packet {
            dts: n,
            pts: n,
            ..inter_frame.clone()
        })
    }))
    .collect();

    rig.publish(&stream, events).await;

    rig.wait_idle(&stream).await;
    assert_eq!(
        rig.events_of(&stream.id).await,
        [
            "live_stream.connected",
            "live_stream.disconnected",
            "live_stream.idle"
        ],
        "never active"
    );
    assert!(rig.store.playlists().is_empty(), "nothing was packaged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_disabled_stream_key_is_refused_with_the_reason() {
    let rig = Rig::new().await;
    let answer = {
        let (publisher, answer) = FakePublisher::new([]);
        rig.live
            .publish(publisher, request("no-such-key"))
            .await
            .unwrap();
        answer
    };
    assert_eq!(
        *answer.lock().unwrap(),
        Answer::Rejected("unknown stream key".to_owned())
    );

    let stream = rig.stream(no_reconnect_window()).await;
    rig.db
        .set_live_stream_disabled(&stream.id, true)
        .await
        .unwrap();
    let answer = rig.publish(&stream, Vec::new()).await;
    assert_eq!(
        *answer.lock().unwrap(),
        Answer::Rejected(format!("live stream {} is disabled", stream.id))
    );
    assert!(rig.events_of(&stream.id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_pictures_are_encoded_into_the_ladder_past_one_of_the_wrong_size() {
    let rig = Rig::new().await;
    let ladder = json!([
        "source",
        {"name": "180p", "height": 180, "bitrate_kbps": 400},
        {"name": "90p", "height": 90, "bitrate_kbps": 150}
    ]);
    let stream = rig.stream_with_ladder(ladder, no_reconnect_window()).await;
    let mut events = rig.raw_composite(3);
    // The picture at 1 s comes with half its bytes: the decoder skips it and goes on.
    let broken = events
        .iter_mut()
        .find_map(|event| match event {
            PublisherEvent::Media(packet)
                if packet.kind == TrackKind::Video && packet.dts == 90_000 =>
            {
                Some(packet)
            }
            _ => None,
        })
        .unwrap();
    broken.data = broken.data.slice(..broken.data.len() / 2);
    events.push(PublisherEvent::Unpublished);

    let answer = rig
        .publish_paced(&stream, events, Duration::from_millis(33))
        .await;

    assert_eq!(*answer.lock().unwrap(), Answer::Accepted);
    let stream = rig.wait_idle(&stream).await;
    assert_eq!(
        rig.events_of(&stream.id).await,
        [
            "live_stream.connected",
            "live_stream.active",
            "live_stream.disconnected",
            "live_stream.idle"
        ]
    );
    assert_segments_stored_before_playlists(&rig.store, &stream.id);
    let object = |path: &[&str]| sluice_storage::layout::live_object(&stream.id, path).unwrap();
    let master = rig.store.get(&object(&["master.m3u8"])).await.unwrap();
    let Ok((_, m3u8_rs::Playlist::MasterPlaylist(master))) = m3u8_rs::parse_playlist(&master)
    else {
        panic!("a multivariant playlist");
    };
    let variants: Vec<(&str, String)> = master
        .variants
        .iter()
        .map(|variant| {
            let resolution = variant.resolution.unwrap();
            (
                variant.uri.as_str(),
                format!("{}x{}", resolution.width, resolution.height),
            )
        })
        .collect();
    assert_eq!(
        variants,
        [
            ("v0/index.m3u8", "320x180".to_owned()),
            ("v1/index.m3u8", "160x90".to_owned())
        ],
        "the encoded rungs, and no source rung"
    );
    assert_eq!(master.alternatives.len(), 1, "the AAC audio rendition");
    for rendition in ["v0", "v1"] {
        let index = rig
            .store
            .get(&object(&[rendition, "index.m3u8"]))
            .await
            .unwrap();
        let Ok((_, m3u8_rs::Playlist::MediaPlaylist(index))) = m3u8_rs::parse_playlist(&index)
        else {
            panic!("{rendition}'s media playlist");
        };
        let seconds: f32 = index.segments.iter().map(|segment| segment.duration).sum();
        assert!(
            seconds > 2.5,
            "{rendition} goes on past the broken picture to the end: {seconds} s"
        );
        assert!(index.end_list, "{rendition} ended");
    }
}
