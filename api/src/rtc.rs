//! `/rtc`: the WebSocket LiveKit's client SDKs signal over, and `/rtc/validate`, which they
//! call when the WebSocket fails, to show why.
//!
//! The access token (`access_token` in the query) is checked before the upgrade, so a bad one
//! is refused with a plain HTTP status and message; the SDK's validate call gets the same
//! answer. Once upgraded, binary frames carry LiveKit's protobuf signal messages both ways
//! between the socket and the room engine ([`RoomControl::attach`]). The SDKs' newer
//! single-connection path (`/rtc/v1`) is not served: its 404 makes them fall back to `/rtc`.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use sluice_rooms::signal::MAX_SIGNAL_BYTES;
use sluice_rooms::{JoinOptions, RoomControl};
use tokio::sync::mpsc;
use tracing::debug;

use crate::error::ApiError;
use crate::AppState;

/// Signal messages read from a socket and not yet taken by the engine.
const INCOMING_QUEUE: usize = 16;
/// Encoded responses waiting for the socket.
const OUTGOING_QUEUE: usize = 64;

/// The connect URL's query, as the SDKs send it.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct RtcQuery {
    /// The room access token.
    access_token: Option<String>,
    /// `1` when the SDK tries to resume a session (answered with a full rejoin).
    reconnect: Option<String>,
    /// `0` to subscribe to nothing until asked; default `1`.
    auto_subscribe: Option<String>,
}

fn flag(value: Option<&str>, default: bool) -> bool {
    value.map_or(default, |value| matches!(value, "1" | "true"))
}

impl RtcQuery {
    fn options(&self) -> JoinOptions {
        JoinOptions {
            resume: flag(self.reconnect.as_deref(), false),
            auto_subscribe: flag(self.auto_subscribe.as_deref(), true),
        }
    }
}

fn rooms(state: &AppState) -> Result<Arc<dyn RoomControl>, ApiError> {
    state.rooms.clone().ok_or(ApiError::RoomsUnavailable)
}

/// A refusal as the SDK reads it: the status, and the message as plain text.
fn refused(status: u16, message: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
    (
        status,
        [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        message,
    )
        .into_response()
}

/// Joins a room: LiveKit's signal WebSocket.
#[utoipa::path(get, path = "/rtc", tag = "rooms", params(RtcQuery),
    responses(
        (status = 101, description = "Upgraded to the signal WebSocket"),
        (status = 401, description = "The access token is missing, invalid or expired", body = String),
        (status = 404, description = "The token's room does not exist (and rooms are not created on join)", body = String),
        (status = 503, description = "This server runs no rooms"),
    ))]
pub(crate) async fn connect(
    State(state): State<AppState>,
    Query(query): Query<RtcQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let rooms = rooms(&state)?;
    let token = query.access_token.as_deref().unwrap_or_default();
    let admission = match rooms.admit(token, query.options()).await {
        Ok(admission) => admission,
        Err(refusal) => return Ok(refused(refusal.status, refusal.message)),
    };
    Ok(upgrade
        .max_message_size(MAX_SIGNAL_BYTES)
        .on_upgrade(move |socket| async move {
            let (incoming, outgoing, pump) = bridge(socket);
            let pump = tokio::spawn(pump);
            // `attach` drops `outgoing` when the participant is done; the pump then closes.
            rooms.attach(admission, incoming, outgoing).await;
            let _ = pump.await;
        }))
}

/// Says whether a connect URL would be accepted, for an SDK whose WebSocket failed.
#[utoipa::path(get, path = "/rtc/validate", tag = "rooms", params(RtcQuery),
    responses(
        (status = 200, description = "The token would be accepted", body = String, example = "success"),
        (status = 401, description = "The access token is missing, invalid or expired", body = String),
        (status = 404, description = "The token's room does not exist", body = String),
    ))]
pub(crate) async fn validate(
    State(state): State<AppState>,
    Query(query): Query<RtcQuery>,
) -> Result<Response, ApiError> {
    let rooms = rooms(&state)?;
    let token = query.access_token.as_deref().unwrap_or_default();
    Ok(match rooms.admit(token, query.options()).await {
        Ok(_) => refused(200, "success".into()),
        Err(refusal) => refused(refusal.status, refusal.message),
    })
}

/// Splits a socket into the engine's channels: binary frames in, encoded responses out.
/// The returned future ends once both directions are done; the socket is then closed.
fn bridge(
    socket: WebSocket,
) -> (
    mpsc::Receiver<Vec<u8>>,
    mpsc::Sender<Vec<u8>>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (mut sink, mut stream) = socket.split();
    let (incoming_tx, incoming) = mpsc::channel(INCOMING_QUEUE);
    let (outgoing, mut outgoing_rx) = mpsc::channel::<Vec<u8>>(OUTGOING_QUEUE);
    let reader = tokio::spawn(async move {
        while let Some(message) = stream.next().await {
            let bytes = match message {
                Ok(Message::Binary(bytes)) => bytes.to_vec(),
                // LiveKit's JSON signalling is not spoken: the engine refuses it as malformed.
                Ok(Message::Text(text)) => text.as_bytes().to_vec(),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            if incoming_tx.send(bytes).await.is_err() {
                break;
            }
        }
    });
    let pump = async move {
        while let Some(bytes) = outgoing_rx.recv().await {
            if let Err(e) = sink.send(Message::Binary(bytes.into())).await {
                debug!(error = %e, "Writing to a signal WebSocket failed.");
                break;
            }
        }
        let _ = sink.close().await;
        reader.abort();
    };
    (incoming, outgoing, pump)
}
