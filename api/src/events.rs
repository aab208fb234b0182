//! `/v1/events`: the history of domain events a page at a time (`GET /v1/events`), and the
//! same history followed live as Server-Sent Events (`GET /v1/events/stream`), resumable with
//! `Last-Event-ID` for apps that want realtime notifications without a public endpoint.

use std::collections::VecDeque;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{self, KeepAlive, Sse};
use axum::Extension;
use axum::Json;
use chrono::{DateTime, Utc};
use futures_util::{FutureExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use sluice_storage::{Db, Event, EventBus, EventFilter, EventType};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, Interval};
use tracing::warn;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::json::{page_limit, PageEnvelope};
use crate::AppState;

/// How often an idle event stream sends a comment, so proxies keep the connection open.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// How often an open event stream checks that its API key still works: a stream ends at
/// most this long after its key is revoked.
const AUTH_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Events read from the history at a time while a stream catches up.
const CATCH_UP_BATCH: u64 = 100;

/// The OpenAPI schema of an event as every consumer sees it: the `GET /v1/events` items, the
/// `data:` of each Server-Sent Event and the body of each webhook delivery. All three are
/// written by [`Event`]'s own `Serialize`; this type only describes that form in the OpenAPI
/// document (a test checks that it names exactly the fields `Event` writes).
#[derive(ToSchema)]
#[schema(as = Event)]
#[allow(dead_code)] // never built: it exists for its schema
pub struct EventView {
    /// `evt_…`: the `Last-Event-ID` to resume from, and the webhook de-duplication key.
    #[schema(example = "evt_3kP9sQ2mT7vX1bN4cR8y")]
    id: String,
    #[schema(rename = "type", example = "live_stream.created")]
    event_type: String,
    created_at: DateTime<Utc>,
    object: EventObjectView,
    /// The object as it was when the event happened, in its API form.
    #[schema(value_type = Object)]
    data: Value,
}

/// What an event is about.
#[derive(ToSchema)]
#[schema(as = EventObject)]
#[allow(dead_code)] // never built: it exists for its schema
pub struct EventObjectView {
    /// `live_stream`, `session`, …
    #[schema(rename = "type", example = "live_stream")]
    object_type: String,
    #[schema(example = "ls_8fQ2mZx0Lk3vT9sRb1Nc")]
    id: String,
}

/// The event type named `name`, or a 400 naming it (`field` says where it came from).
pub(crate) fn parse_event_type(field: &str, name: &str) -> Result<EventType, ApiError> {
    EventType::parse(name)
        .ok_or_else(|| ApiError::InvalidRequest(format!("{field}: unknown event type {name:?}")))
}

/// `?limit=&cursor=&type=&object_id=` of `GET /v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventListParams {
    /// Items per page, 1 to 100 (default 25).
    limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only events of this type, e.g. `live_stream.created`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only events about this object (`ls_…`, `ses_…`).
    object_id: Option<String>,
}

/// Events oldest first, a page at a time, optionally of one type or about one object.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(EventListParams),
    responses(
        (status = 200, description = "A page of events", body = PageEnvelope<EventView>),
        (status = 400, description = "Invalid limit, cursor or type", body = ErrorBody),
        (status = 403, description = "The key lacks the `events:read` permission", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<EventListParams>, QueryRejection>,
) -> Result<Json<PageEnvelope<Event>>, ApiError> {
    let Query(params) = params?;
    let limit = page_limit(params.limit)?;
    let filter = EventFilter {
        event_type: params
            .event_type
            .as_deref()
            .map(|name| parse_event_type("type", name))
            .transpose()?,
        object_id: params.object_id,
    };
    let page = state
        .db
        .list_events_matching(limit, params.cursor.as_deref(), &filter)
        .await?;
    Ok(Json(PageEnvelope {
        data: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// `?last_event_id=&type=` of `GET /v1/events/stream`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Resume after this event; the `Last-Event-ID` header, when sent, takes precedence.
    last_event_id: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
}

/// Events as Server-Sent Events: each with `id:` (the event id), `event:` (its type) and
/// `data:` (the event JSON). With `Last-Event-ID` (header or `?last_event_id=`) the stream
/// first replays every event after that one, then follows new events live, with no gap and
/// no duplicate; without it, it starts with the next event. A comment every 15 s keeps idle
/// connections open. The stream ends within 5 s of its API key being revoked.
#[utoipa::path(get, path = "/v1/events/stream", tag = "events",
    params(
        StreamParams,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "An endless stream of events", content_type = "text/event-stream", body = String),
        (status = 400, description = "Unknown event id or type", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    params: Result<Query<StreamParams>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, axum::Error>>>, ApiError> {
    let Query(params) = params?;
    let event_type = params
        .event_type
        .as_deref()
        .map(|name| parse_event_type("type", name))
        .transpose()?;
    let last_event_id = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| {
                    ApiError::InvalidRequest("Last-Event-ID: not a valid event id".to_owned())
                })?
                .to_owned(),
        ),
        None => params.last_event_id,
    };
    // Subscribe before reading where to start, so nothing recorded in between is missed.
    let live = state.events.subscribe();
    let (last_seq, catching_up) = match &last_event_id {
        Some(id) => {
            let seq = state.db.event_seq(id).await?.ok_or_else(|| {
                ApiError::InvalidRequest(format!("Last-Event-ID: no event with id {id:?}"))
            })?;
            (seq, true)
        }
        None => (state.db.latest_event_seq().await?, false),
    };
    let tail = Tail {
        db: state.db.clone(),
        bus: state.events.clone(),
        live,
        last_seq,
        catching_up,
        pending: VecDeque::new(),
        event_type,
        api_key_id: principal.api_key_id,
        expires_at: principal.expires_at,
        auth_check: tokio::time::interval_at(
            Instant::now() + AUTH_CHECK_INTERVAL,
            AUTH_CHECK_INTERVAL,
        ),
    };
    let events = futures_util::stream::unfold(tail, |mut tail| async move {
        let event = tail.next().await?;
        let message = sse::Event::default()
            .id(event.id.clone())
            .event(event.event_type.clone())
            .json_data(&event);
        Some((message, tail))
    });
    // The response head goes out with the first bytes of the body: a comment right away lets
    // clients see the stream open before the first event.
    let opened = futures_util::stream::once(async { Ok(sse::Event::default().comment("open")) });
    Ok(Sse::new(opened.chain(events)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE_INTERVAL)))
}

/// Follows the history from position `last_seq`: from the database while catching up, then
/// from the live bus. A live event that is not the very next one (another publisher's event
/// was broadcast first, or this reader lagged behind the channel) sends the reader back to
/// the database, so events are delivered in order, each once. While waiting it checks every
/// [`AUTH_CHECK_INTERVAL`] that the reader's API key is still usable.
struct Tail {
    db: Db,
    bus: EventBus,
    live: broadcast::Receiver<Event>,
    /// The last event handed out or skipped by the type filter.
    last_seq: i64,
    catching_up: bool,
    pending: VecDeque<Event>,
    event_type: Option<EventType>,
    /// The key the stream was opened with.
    api_key_id: String,
    /// When the Bearer token the stream was opened with expires (`None` for Basic auth).
    expires_at: Option<DateTime<Utc>>,
    auth_check: Interval,
}

impl Tail {
    /// The next event the reader wants; `None` ends the stream (server shutting down, the
    /// reader's key revoked, or the database failing).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.last_seq = event.seq;
                if self
                    .event_type
                    .is_none_or(|wanted| wanted.as_str() == event.event_type)
                {
                    return Some(event);
                }
                continue;
            }
            if self.catching_up {
                // A long catch-up checks the credentials on schedule too.
                if self.auth_check.tick().now_or_never().is_some() && !self.still_authorised().await
                {
                    return None;
                }
                match self
                    .db
                    .events_after_seq(self.last_seq, CATCH_UP_BATCH)
                    .await
                {
                    Ok(events) => {
                        self.catching_up = events.len() as u64 == CATCH_UP_BATCH;
                        self.pending.extend(events);
                    }
                    Err(error) => {
                        warn!(%error, "Event stream cannot read the history; closing it.");
                        return None;
                    }
                }
                continue;
            }
            let received = tokio::select! {
                received = self.live.recv() => received,
                () = self.bus.closed() => return None,
                _ = self.auth_check.tick() => {
                    if !self.still_authorised().await {
                        return None;
                    }
                    continue;
                }
            };
            match received {
                Ok(event) if event.seq <= self.last_seq => {}
                Ok(event) if event.seq == self.last_seq + 1 => self.pending.push_back(event),
                Ok(_) | Err(RecvError::Lagged(_)) => self.catching_up = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Whether the reader's credentials still hold: its token has not expired and its API key
    /// exists and is not revoked. A database failure counts as no (the client reconnects and
    /// authenticates afresh).
    async fn still_authorised(&self) -> bool {
        if self.expires_at.is_some_and(|at| at <= Utc::now()) {
            return false;
        }
        match self.db.api_key_is_usable(&self.api_key_id).await {
            Ok(usable) => usable,
            Err(error) => {
                warn!(%error, "Event stream cannot check its API key; closing it.");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::Utc;
    use serde_json::json;
    use sluice_storage::model::EventObject;
    use sluice_storage::Event;
    use utoipa::PartialSchema;

    use super::{EventObjectView, EventView};

    /// The property names of `schema`.
    fn properties(schema: impl serde::Serialize) -> BTreeSet<String> {
        let schema = serde_json::to_value(schema).unwrap();
        schema["properties"]
            .as_object()
            .expect("an object schema")
            .keys()
            .cloned()
            .collect()
    }

    fn keys(value: &serde_json::Value) -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn the_event_schema_names_exactly_the_fields_an_event_serialises() {
        let event = Event {
            seq: 7,
            id: "evt_1".to_owned(),
            event_type: "live_stream.created".to_owned(),
            created_at: Utc::now(),
            object: EventObject {
                object_type: "live_stream".to_owned(),
                id: "ls_1".to_owned(),
            },
            data: json!({ "id": "ls_1" }),
        };
        let wire = serde_json::to_value(&event).unwrap();
        assert_eq!(keys(&wire), properties(EventView::schema()));
        assert_eq!(keys(&wire["object"]), properties(EventObjectView::schema()));
    }
}
