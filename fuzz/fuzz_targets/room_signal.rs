//! Arbitrary bytes as a room participant's signal messages (LiveKit's `SignalRequest`
//! protobuf) and data packets: decoding never panics, and whatever decodes is handed to a
//! running room engine for a joined participant, which must answer the ping that follows or
//! remove the participant with a leave, never panic. A removed participant joins again.
#![no_main]

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use livekit_protocol as proto;
use prost::Message;
use sluice_rooms::engine::{Command, Engine, EngineSettings, Joining, ParticipantKey, RoomRecord};
use sluice_rooms::signal::{decode_request, Request, Response};
use sluice_rooms::token::Grant;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot, watch};

struct Harness {
    runtime: Runtime,
    commands: mpsc::Sender<Command>,
    participant: Mutex<Option<(ParticipantKey, mpsc::Receiver<Response>)>>,
    _shutdown: watch::Sender<bool>,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (commands, inbox) = mpsc::channel(64);
        let (shutdown, stop) = watch::channel(false);
        runtime.block_on(async {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let settings = EngineSettings {
                candidate: socket.local_addr().unwrap(),
                max_participants: 10,
                node_id: "fuzz".into(),
            };
            let (notices, mut drain) = mpsc::unbounded_channel();
            tokio::spawn(async move { while drain.recv().await.is_some() {} });
            tokio::spawn(Engine::new(socket, settings, inbox, notices, stop).run());
        });
        Harness {
            runtime,
            commands,
            participant: Mutex::new(None),
            _shutdown: shutdown,
        }
    })
}

async fn join(commands: &mpsc::Sender<Command>) -> (ParticipantKey, mpsc::Receiver<Response>) {
    let (signal, responses) = mpsc::channel(1024);
    let (reply, answer) = oneshot::channel();
    let joining = Joining {
        room: RoomRecord {
            id: "room_fuzz".into(),
            name: "fuzz".into(),
            max_participants: 0,
            empty_timeout_s: 60,
            metadata: String::new(),
            created_at: chrono::Utc::now(),
        },
        grant: Grant {
            api_key_id: "ak".into(),
            room: "fuzz".into(),
            identity: "fuzzer".into(),
            name: String::new(),
            metadata: String::new(),
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
            can_publish_sources: Vec::new(),
            hidden: false,
            expires_at: u64::MAX,
        },
        auto_subscribe: true,
        signal,
    };
    commands
        .send(Command::Join { joining: Box::new(joining), reply })
        .await
        .unwrap();
    (answer.await.unwrap().unwrap(), responses)
}

fuzz_target!(|data: &[u8]| {
    let _ = proto::DataPacket::decode(data);
    let Ok(request) = decode_request(data) else {
        return;
    };
    let harness = harness();
    let mut participant = harness.participant.lock().unwrap();
    harness.runtime.block_on(async {
        let (key, mut responses) = match participant.take() {
            Some(joined) => joined,
            None => join(&harness.commands).await,
        };
        for request in [request, Request::Ping(42)] {
            harness
                .commands
                .send(Command::Signal { key, request: Box::new(request) })
                .await
                .unwrap();
        }
        // The pong, or the end of the participant (removed, with a leave first).
        loop {
            match tokio::time::timeout(Duration::from_secs(5), responses.recv()).await {
                Ok(Some(Response::Pong(_))) => {
                    *participant = Some((key, responses));
                    return;
                }
                Ok(Some(_)) => continue,
                Ok(None) => return,
                Err(_) => panic!("the engine did not answer a ping"),
            }
        }
    });
});
