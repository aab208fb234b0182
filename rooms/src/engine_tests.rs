//! The engine driven through its commands, without a browser: joining, refusals, floods and
//! bad SDP, the API's control requests and the notices they leave. Media is exercised by the
//! black-box tests with real clients (`tests/rooms.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use livekit_protocol as proto;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use crate::control::ControlError;
use crate::engine::{
    Command, Control, Engine, EngineSettings, Joining, Notice, ParticipantKey, RoomRecord,
};
use crate::signal::{Request, Response};
use crate::token::Grant;

struct Harness {
    commands: mpsc::Sender<Command>,
    notices: mpsc::UnboundedReceiver<Notice>,
    _shutdown: watch::Sender<bool>,
}

fn room(max_participants: u32) -> RoomRecord {
    RoomRecord {
        id: "room_test".into(),
        name: "test".into(),
        max_participants,
        empty_timeout_s: 0,
        metadata: String::new(),
        created_at: Utc::now(),
        transcription_language: None,
    }
}

fn grant(identity: &str) -> Grant {
    Grant {
        api_key_id: "ak".into(),
        room: "test".into(),
        identity: identity.into(),
        name: identity.to_uppercase(),
        metadata: String::new(),
        can_publish: true,
        can_subscribe: true,
        can_publish_data: true,
        can_publish_sources: Vec::new(),
        hidden: false,
        expires_at: u64::MAX,
    }
}

async fn start(max_participants: usize) -> Harness {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let candidate: SocketAddr = socket.local_addr().unwrap();
    let (commands, inbox) = mpsc::channel(64);
    let (notice_tx, notices) = mpsc::unbounded_channel();
    let (shutdown, stop) = watch::channel(false);
    let settings = EngineSettings {
        candidate,
        max_participants,
        node_id: "test-node".into(),
    };
    tokio::spawn(Engine::new(socket, settings, inbox, notice_tx, stop).run());
    Harness {
        commands,
        notices,
        _shutdown: shutdown,
    }
}

impl Harness {
    async fn join(
        &self,
        room: RoomRecord,
        grant: Grant,
    ) -> (
        Result<ParticipantKey, proto::DisconnectReason>,
        mpsc::Receiver<Response>,
    ) {
        let (signal, responses) = mpsc::channel(64);
        let (reply, answer) = oneshot::channel();
        let joining = Joining {
            room,
            grant,
            auto_subscribe: true,
            signal,
        };
        self.commands
            .send(Command::Join {
                joining: Box::new(joining),
                reply,
            })
            .await
            .unwrap();
        (answer.await.unwrap(), responses)
    }

    async fn signal(&self, key: ParticipantKey, request: Request) {
        self.commands
            .send(Command::Signal {
                key,
                request: Box::new(request),
            })
            .await
            .unwrap();
    }

    async fn control<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Control) -> T {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Control(make(reply)))
            .await
            .unwrap();
        answer.await.unwrap()
    }

    async fn notice(&mut self) -> Notice {
        tokio::time::timeout(Duration::from_secs(10), self.notices.recv())
            .await
            .expect("a notice in time")
            .expect("the engine runs")
    }
}

/// The next response but the subscriber connection's offers (every join gets one).
async fn next(responses: &mut mpsc::Receiver<Response>) -> Option<Response> {
    loop {
        let response = tokio::time::timeout(Duration::from_secs(10), responses.recv())
            .await
            .expect("a response in time");
        if !matches!(response, Some(Response::Offer(_))) {
            return response;
        }
    }
}

fn leave_reason(response: &Response) -> Option<proto::DisconnectReason> {
    match response {
        Response::Leave(leave) => proto::DisconnectReason::try_from(leave.reason).ok(),
        _ => None,
    }
}

#[tokio::test]
async fn a_join_is_answered_with_the_room_the_participant_and_the_others() {
    let mut harness = start(10).await;
    let (first, mut first_responses) = harness.join(room(0), grant("ana")).await;
    let first = first.unwrap();
    let Some(Response::Join(join)) = next(&mut first_responses).await else {
        panic!("a join response first");
    };
    assert_eq!(join.room.unwrap().name, "test");
    let me = join.participant.unwrap();
    assert!(me.sid.starts_with("PA_"));
    assert_eq!(me.identity, "ana");
    assert!(me.permission.unwrap().can_publish);
    assert!(join.other_participants.is_empty());
    assert!(!join.server_info.unwrap().version.is_empty());
    assert!(matches!(harness.notice().await, Notice::RoomStarted { .. }));
    assert!(matches!(
        harness.notice().await,
        Notice::ParticipantJoined { .. }
    ));

    let (_, mut second_responses) = harness.join(room(0), grant("ben")).await;
    let Some(Response::Join(join)) = next(&mut second_responses).await else {
        panic!("a join response");
    };
    assert_eq!(join.other_participants.len(), 1);
    assert_eq!(join.other_participants[0].identity, "ana");
    // The first hears of the second.
    let Some(Response::Update(update)) = next(&mut first_responses).await else {
        panic!("a participant update");
    };
    assert_eq!(update.participants[0].identity, "ben");

    // Pings are answered.
    harness
        .signal(
            first,
            Request::PingReq(proto::Ping {
                timestamp: 7,
                rtt: 0,
            }),
        )
        .await;
    let Some(Response::PongResp(pong)) = next(&mut first_responses).await else {
        panic!("a pong");
    };
    assert_eq!(pong.last_ping_timestamp, 7);
}

#[tokio::test]
async fn a_full_room_and_a_full_node_refuse_with_a_leave() {
    let harness = start(2).await;
    let (one, _r1) = harness.join(room(1), grant("a")).await;
    assert!(one.is_ok());
    let (refused, _r2) = harness.join(room(1), grant("b")).await;
    assert_eq!(refused, Err(proto::DisconnectReason::JoinFailure));
    let mut other = room(0);
    other.name = "other".into();
    let (two, _r3) = harness.join(other.clone(), grant("c")).await;
    assert!(two.is_ok());
    let (node_full, _r4) = harness.join(other, grant("d")).await;
    assert!(
        node_full.is_err(),
        "the node holds two participants at most"
    );
}

#[tokio::test]
async fn the_same_identity_joining_again_replaces_the_first() {
    let mut harness = start(10).await;
    let (_, mut first) = harness.join(room(0), grant("ana")).await;
    next(&mut first).await;
    let (_, mut second) = harness.join(room(0), grant("ana")).await;
    assert_eq!(
        leave_reason(&next(&mut first).await.unwrap()),
        Some(proto::DisconnectReason::DuplicateIdentity)
    );
    assert!(
        next(&mut first).await.is_none(),
        "the first is disconnected"
    );
    let Some(Response::Join(join)) = next(&mut second).await else {
        panic!("the second joins");
    };
    assert!(join.other_participants.is_empty());
    let mut kinds = Vec::new();
    while let Ok(Some(notice)) =
        tokio::time::timeout(Duration::from_millis(500), harness.notices.recv()).await
    {
        kinds.push(match notice {
            Notice::RoomStarted { .. } => "started",
            Notice::ParticipantJoined { .. } => "joined",
            Notice::ParticipantLeft { .. } => "left",
            _ => "other",
        });
    }
    assert_eq!(kinds, ["started", "joined", "left", "joined"]);
}

#[tokio::test]
async fn an_offer_with_too_many_media_sections_or_bad_sdp_removes_only_its_sender() {
    let harness = start(10).await;
    let (bad, mut bad_responses) = harness.join(room(0), grant("bad")).await;
    let (_, mut good_responses) = harness.join(room(0), grant("good")).await;
    next(&mut bad_responses).await;
    next(&mut good_responses).await;
    let sdp = "v=0\r\n".to_owned() + &"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".repeat(100);
    harness
        .signal(
            bad.unwrap(),
            Request::Offer(proto::SessionDescription {
                r#type: "offer".into(),
                sdp,
                id: 1,
                ..Default::default()
            }),
        )
        .await;
    loop {
        match next(&mut bad_responses).await {
            Some(Response::Leave(_)) => break,
            Some(_) => continue,
            None => panic!("a leave before the end"),
        }
    }
    // The good one hears the bad one left, and is still served.
    let participants = harness
        .control(|reply| Control::Participants {
            room: "test".into(),
            reply,
        })
        .await;
    assert_eq!(participants.len(), 1);
    assert_eq!(participants[0].identity, "good");

    let (garbage, mut garbage_responses) = harness.join(room(0), grant("garbage")).await;
    next(&mut garbage_responses).await;
    harness
        .signal(
            garbage.unwrap(),
            Request::Offer(proto::SessionDescription {
                r#type: "offer".into(),
                sdp: "not sdp at all".into(),
                id: 1,
                ..Default::default()
            }),
        )
        .await;
    loop {
        match next(&mut garbage_responses).await {
            Some(Response::Leave(_)) => break,
            Some(_) => continue,
            None => panic!("a leave before the end"),
        }
    }
}

#[tokio::test]
async fn a_signal_flood_disconnects_the_flooder() {
    let harness = start(10).await;
    let (key, mut responses) = harness.join(room(0), grant("flood")).await;
    let key = key.unwrap();
    next(&mut responses).await;
    for _ in 0..1000 {
        harness
            .signal(key, Request::Trickle(proto::TrickleRequest::default()))
            .await;
    }
    let mut left = false;
    while let Some(response) = next(&mut responses).await {
        left |= matches!(response, Response::Leave(_));
    }
    assert!(left, "told why before being disconnected");
}

#[tokio::test]
async fn a_track_without_permission_is_not_published_and_control_requests_name_what_is_missing() {
    let harness = start(10).await;
    let mut viewer = grant("viewer");
    viewer.can_publish = false;
    let (key, mut responses) = harness.join(room(0), viewer).await;
    let key = key.unwrap();
    next(&mut responses).await;
    harness
        .signal(
            key,
            Request::AddTrack(proto::AddTrackRequest {
                cid: "cam".into(),
                r#type: proto::TrackType::Video as i32,
                source: proto::TrackSource::Camera as i32,
                ..Default::default()
            }),
        )
        .await;
    harness.signal(key, Request::Ping(1)).await;
    // The next response is the pong: no TrackPublished came first.
    assert!(matches!(
        next(&mut responses).await,
        Some(Response::Pong(_))
    ));

    let missing = harness
        .control(|reply| Control::Remove {
            room: "test".into(),
            identity: "nobody".into(),
            reply,
        })
        .await;
    assert_eq!(missing, Err(ControlError::NoParticipant("nobody".into())));
    let not_running = harness
        .control(|reply| Control::Close {
            room: "elsewhere".into(),
            reply,
        })
        .await;
    assert_eq!(not_running, Err(ControlError::RoomNotRunning));
    let no_track = harness
        .control(|reply| Control::Mute {
            room: "test".into(),
            identity: "viewer".into(),
            track_sid: "TR_none".into(),
            muted: true,
            reply,
        })
        .await;
    assert_eq!(no_track, Err(ControlError::NoTrack("TR_none".into())));
    // Closing the room tells the participant and ends it.
    let closed = harness
        .control(|reply| Control::Close {
            room: "test".into(),
            reply,
        })
        .await;
    assert_eq!(closed, Ok(()));
    assert_eq!(
        leave_reason(&next(&mut responses).await.unwrap()),
        Some(proto::DisconnectReason::RoomDeleted)
    );
}

#[tokio::test]
async fn a_tap_set_before_the_room_runs_hears_its_visible_members_and_its_end() {
    let harness = start(10).await;
    let (tap, events) = std::sync::mpsc::sync_channel(crate::tap::TAP_QUEUE);
    harness
        .commands
        .send(Command::Control(Control::Tap {
            room: "test".into(),
            sender: tap,
            video: true,
        }))
        .await
        .unwrap();
    let next_members = || loop {
        match events
            .recv_timeout(Duration::from_secs(10))
            .expect("a tap event in time")
        {
            crate::tap::TapEvent::Members(members) => return Some(members),
            crate::tap::TapEvent::RoomFinished => return None,
            _ => {}
        }
    };

    let (joined, _ana) = harness.join(room(0), grant("ana")).await;
    joined.unwrap();
    let members = next_members().expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].identity, "ana");

    // A hidden participant (a recorder) is not shown to the tap.
    let mut hidden = grant("recorder");
    hidden.hidden = true;
    let (joined, _recorder) = harness.join(room(0), hidden).await;
    joined.unwrap();
    let (joined, _ben) = harness.join(room(0), grant("ben")).await;
    joined.unwrap();
    let members = loop {
        let members = next_members().expect("members");
        if members.len() > 1 {
            break members;
        }
    };
    let identities: Vec<&str> = members.iter().map(|m| m.identity.as_str()).collect();
    assert_eq!(
        identities,
        ["ana", "ben"],
        "in join order, the hidden one left out"
    );

    harness
        .control(|reply| Control::Close {
            room: "test".into(),
            reply,
        })
        .await
        .unwrap();
    while next_members().is_some() {}
}
