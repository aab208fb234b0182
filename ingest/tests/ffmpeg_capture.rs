//! Replays a real ffmpeg publish (`testdata/ffmpeg_publish.bin`, made by
//! `testdata/capture_ffmpeg_publish.sh` through nginx-rtmp) into a `ServerSession`, whole and
//! split at many offsets: every split must give the same events.

use sluice_ingest::{
    PublishMode, RtmpError, ServerSession, SessionConfig, SessionEvent, SessionOutput,
};
use sluice_media::{TrackInfo, TrackKind};

const CAPTURE: &[u8] = include_bytes!("../testdata/ffmpeg_publish.bin");

/// Feeds `pieces` in order, accepting every publish request, and returns the events.
fn replay<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<SessionEvent>, RtmpError> {
    let mut session = ServerSession::new(SessionConfig::default());
    let mut events = Vec::new();
    for piece in pieces {
        let mut outputs = session.handle_input(piece)?;
        loop {
            let mut publish_requested = false;
            for output in outputs {
                if let SessionOutput::Event(event) = output {
                    publish_requested |= matches!(event, SessionEvent::PublishRequested { .. });
                    events.push(event);
                }
            }
            if !publish_requested {
                break;
            }
            session.accept_publish();
            outputs = session.handle_input(&[])?;
        }
    }
    Ok(events)
}

#[test]
fn ffmpeg_publish_yields_the_expected_event_sequence() {
    let events = replay([CAPTURE]).unwrap();
    let SessionEvent::Connected {
        app,
        tc_url,
        flash_ver,
    } = &events[0]
    else {
        panic!("first event should be Connected, got {:?}", events[0]);
    };
    assert_eq!(app, "live");
    assert!(tc_url.as_deref().unwrap().ends_with("/live"));
    assert!(
        flash_ver
            .as_deref()
            .unwrap()
            .starts_with("FMLE/3.0 (compatible; Lavf"),
        "{flash_ver:?}"
    );
    assert_eq!(
        events[1],
        SessionEvent::PublishRequested {
            app: "live".into(),
            stream_key: "testkey".into(),
            mode: PublishMode::Live,
            stream_id: 1,
        }
    );
    let SessionEvent::Metadata(metadata) = &events[2] else {
        panic!("third event should be Metadata, got {:?}", events[2]);
    };
    assert_eq!((metadata.width, metadata.height), (Some(320), Some(240)));
    assert_eq!(metadata.frame_rate, Some(30.0));
    assert!(metadata.encoder.as_deref().unwrap().starts_with("Lavf"));

    let tracks: Vec<&TrackInfo> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Track(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    let TrackInfo::Avc { config, frame_rate } = tracks[0] else {
        panic!("first track should be AVC: {:?}", tracks[0]);
    };
    assert_eq!((config.width, config.height), (320, 240));
    assert_eq!(*frame_rate, Some(30.0));
    let TrackInfo::Aac { config } = tracks[1] else {
        panic!("second track should be AAC: {:?}", tracks[1]);
    };
    assert_eq!(config.sample_rate, 44_100);

    for kind in [TrackKind::Video, TrackKind::Audio] {
        let packets: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Packet(p) if p.kind == kind => Some(p),
                _ => None,
            })
            .collect();
        assert!(packets.len() >= 25, "{kind:?}: {} packets", packets.len());
        assert!(
            packets.windows(2).all(|w| w[0].dts <= w[1].dts),
            "{kind:?} dts not monotonic"
        );
        assert!(packets.iter().all(|p| p.pts >= p.dts));
        if kind == TrackKind::Video {
            assert!(packets[0].keyframe);
            // x264 with B-frames: some frames are presented later than decoded.
            assert!(packets.iter().any(|p| p.pts > p.dts));
        }
    }
    assert_eq!(
        events.last(),
        Some(&SessionEvent::PublishFinished {
            app: "live".into(),
            stream_key: "testkey".into(),
        })
    );
    let finished = events
        .iter()
        .filter(|e| matches!(e, SessionEvent::PublishFinished { .. }))
        .count();
    assert_eq!(finished, 1);
}

#[test]
fn ffmpeg_publish_gives_identical_events_at_every_split_point() {
    let whole = replay([CAPTURE]).unwrap();
    // Every offset through the handshake and command phase, then a stride through the media.
    let splits = (0..4096).chain((4096..CAPTURE.len()).step_by(7));
    for split in splits {
        let (head, tail) = CAPTURE.split_at(split);
        assert_eq!(replay([head, tail]).unwrap(), whole, "split at {split}");
    }
    assert_eq!(replay(CAPTURE.chunks(1)).unwrap(), whole, "byte by byte");
    assert_eq!(
        replay(CAPTURE.chunks(1000)).unwrap(),
        whole,
        "1000-byte reads"
    );
}

#[test]
fn ffmpeg_publish_cut_anywhere_never_errors() {
    for end in (0..CAPTURE.len()).step_by(13) {
        replay([&CAPTURE[..end]]).unwrap();
    }
}
