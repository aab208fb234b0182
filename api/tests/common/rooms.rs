//! What the room tests share: a fake room engine that records what it is asked, runs the rooms
//! and composites it is told to and can be made to refuse composite calls, and JSON calls of
//! the router with any credentials.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use async_trait::async_trait;
use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use chrono::Utc;
use serde_json::Value;
use sluice_rooms::{
    Admission, CompositeLayout, CompositeSpec, ControlError, DataMessage, JoinOptions,
    ParticipantView, Refusal, RoomControl, TrackView,
};
use sluice_storage::{Db, EventBus, EventType, NewEvent, RoomCompositeId};
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::Harness;

/// A room engine running the rooms named in `running`, recording what it is asked. Composites
/// behave as the real engine's do toward the database once [`FakeRooms::record_into`] gave it
/// one: started in a running room they turn active; stopped, they are marked stopped and
/// `room.composite.stopped` is published.
#[derive(Default)]
pub struct FakeRooms {
    pub running: Mutex<HashMap<String, Vec<ParticipantView>>>,
    pub calls: Mutex<Vec<String>>,
    pub data: Mutex<Vec<(String, DataMessage)>>,
    /// The composites it runs, by room name.
    pub composites: Mutex<HashMap<String, CompositeSpec>>,
    /// What the next composite call answers instead of doing anything.
    composite_refusal: Mutex<Option<ControlError>>,
    storage: OnceLock<(Db, EventBus)>,
}

impl FakeRooms {
    pub fn run(&self, room: &str, participants: Vec<ParticipantView>) {
        self.running
            .lock()
            .unwrap()
            .insert(room.to_owned(), participants);
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// Where composites are marked active and stopped, as the engine does.
    pub fn record_into(&self, db: Db, events: EventBus) {
        assert!(self.storage.set((db, events)).is_ok(), "storage given once");
    }

    /// Makes the next composite call fail with `error`.
    pub fn refuse_next_composite_call(&self, error: ControlError) {
        *self.composite_refusal.lock().unwrap() = Some(error);
    }

    /// Forgets a composite as a crashed engine would, leaving its row running.
    pub fn lose_composite(&self, room: &str) {
        self.composites.lock().unwrap().remove(room);
    }

    fn with_room<T>(
        &self,
        room: &str,
        call: String,
        then: impl FnOnce(&mut Vec<ParticipantView>) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        self.calls.lock().unwrap().push(call);
        let mut running = self.running.lock().unwrap();
        let participants = running.get_mut(room).ok_or(ControlError::RoomNotRunning)?;
        then(participants)
    }

    /// Records a composite call; the refusal set for it, if any.
    fn composite_call(&self, call: String) -> Result<(), ControlError> {
        self.calls.lock().unwrap().push(call);
        match self.composite_refusal.lock().unwrap().take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn storage(&self) -> &(Db, EventBus) {
        self.storage
            .get()
            .expect("composite tests give the fake its storage")
    }
}

#[async_trait]
impl RoomControl for FakeRooms {
    async fn admit(&self, _token: &str, _options: JoinOptions) -> Result<Admission, Refusal> {
        Err(Refusal {
            status: 503,
            message: "the fake engine admits no one".to_owned(),
        })
    }

    async fn attach(
        &self,
        _admission: Admission,
        _incoming: mpsc::Receiver<Vec<u8>>,
        _outgoing: mpsc::Sender<Vec<u8>>,
    ) {
    }

    async fn participants(&self, room: &str) -> Result<Vec<ParticipantView>, ControlError> {
        self.with_room(room, format!("participants {room}"), |p| Ok(p.clone()))
    }

    async fn remove_participant(&self, room: &str, identity: &str) -> Result<(), ControlError> {
        self.with_room(room, format!("remove {room} {identity}"), |participants| {
            let before = participants.len();
            participants.retain(|p| p.identity != identity);
            match participants.len() < before {
                true => Ok(()),
                false => Err(ControlError::NoParticipant(identity.to_owned())),
            }
        })
    }

    async fn mute_track(
        &self,
        room: &str,
        identity: &str,
        track_sid: &str,
        muted: bool,
    ) -> Result<(), ControlError> {
        self.with_room(
            room,
            format!("mute {room} {identity} {track_sid} {muted}"),
            |participants| {
                let participant = participants
                    .iter_mut()
                    .find(|p| p.identity == identity)
                    .ok_or_else(|| ControlError::NoParticipant(identity.to_owned()))?;
                let track = participant
                    .tracks
                    .iter_mut()
                    .find(|t| t.sid == track_sid)
                    .ok_or_else(|| ControlError::NoTrack(track_sid.to_owned()))?;
                track.muted = muted;
                Ok(())
            },
        )
    }

    async fn send_data(&self, room: &str, message: DataMessage) -> Result<(), ControlError> {
        self.with_room(room, format!("data {room}"), |_| Ok(()))?;
        self.data.lock().unwrap().push((room.to_owned(), message));
        Ok(())
    }

    async fn close_room(&self, room: &str) -> Result<(), ControlError> {
        self.with_room(room, format!("close {room}"), |_| Ok(()))?;
        self.running.lock().unwrap().remove(room);
        Ok(())
    }

    async fn start_composite(&self, spec: CompositeSpec) -> Result<(), ControlError> {
        let room = spec.room_name.clone();
        self.composite_call(format!(
            "start_composite {room} {:?} {:?}",
            spec.layout, spec.resolution
        ))?;
        if self.composites.lock().unwrap().contains_key(&room) {
            return Err(ControlError::CompositeRunning);
        }
        let id = RoomCompositeId::parse(&spec.composite_id).unwrap();
        self.composites.lock().unwrap().insert(room.clone(), spec);
        if self.running.lock().unwrap().contains_key(&room) {
            let (db, _) = self.storage();
            db.mark_room_composite_active(&id).await.unwrap();
        }
        Ok(())
    }

    async fn set_composite_layout(
        &self,
        room: &str,
        layout: CompositeLayout,
    ) -> Result<(), ControlError> {
        self.composite_call(format!("set_composite_layout {room} {layout:?}"))?;
        let mut composites = self.composites.lock().unwrap();
        let spec = composites.get_mut(room).ok_or(ControlError::NoComposite)?;
        spec.layout = layout;
        Ok(())
    }

    async fn stop_composite(&self, room: &str) -> Result<(), ControlError> {
        self.composite_call(format!("stop_composite {room}"))?;
        let spec = self
            .composites
            .lock()
            .unwrap()
            .remove(room)
            .ok_or(ControlError::NoComposite)?;
        let (db, events) = self.storage();
        let id = RoomCompositeId::parse(&spec.composite_id).unwrap();
        if let Some(stopped) = db.mark_room_composite_stopped(&id).await.unwrap() {
            events
                .publish(NewEvent::about_room_composite(
                    EventType::RoomCompositeStopped,
                    &stopped,
                ))
                .await
                .unwrap();
        }
        Ok(())
    }

    /// Records the call; the room is taken as running elsewhere (nothing starts here).
    async fn start_transcription(
        &self,
        room_id: &str,
        _room_name: &str,
        language: &str,
    ) -> Result<bool, ControlError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("start_transcription {room_id} {language}"));
        Ok(false)
    }

    /// Records the call; nothing is transcribed here.
    async fn stop_transcription(&self, room: &str) -> Result<(), ControlError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("stop_transcription {room}"));
        Err(ControlError::NoTranscription)
    }
}

pub fn alice() -> ParticipantView {
    ParticipantView {
        sid: "PA_alice0000000".to_owned(),
        identity: "alice".to_owned(),
        name: "Alice".to_owned(),
        metadata: String::new(),
        joined_at: Utc::now(),
        state: "active",
        hidden: false,
        tracks: vec![TrackView {
            sid: "TR_cam000000000".to_owned(),
            kind: "video",
            source: "camera",
            name: String::new(),
            muted: false,
            mime_type: "video/VP8".to_owned(),
            width: 1280,
            height: 720,
            simulcast: true,
        }],
    }
}

impl Harness {
    /// A JSON call with `authorization`: its status and body (`null` when empty).
    pub async fn call_as(
        &self,
        authorization: &str,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, authorization);
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    /// A JSON call with the admin key.
    pub async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(&self.auth(), method, uri, body).await
    }

    pub async fn create_room(&self, body: Value) -> Value {
        let (status, body) = self.call("POST", "/v1/rooms", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["data"].clone()
    }
}

/// Asserts an error answer: its status and `error.code`.
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}
