//! `/v1/rooms/{id}/composite`: a room's composite, its participants composed onto one canvas
//! with their audio mixed, started, changed, stopped and read back, with the room's history of
//! composites; and the VideoSDK-shaped shortcuts (`/hls`, `/recordings`, `/livestreams`, each
//! `start` and `stop`) that drive the same code.
//!
//! A composite runs as the publisher of a live stream made for it (named after the room, the
//! default ladder, no reconnect window), so its HLS (the stream's public playback id, only when
//! `outputs.hls`), recording (`outputs.record`) and simulcast targets (`source`: the top
//! encoded rung) are the live stream's. The room engine runs it through
//! [`sluice_rooms::RoomControl`]: it marks the composite `active` once it publishes and
//! `stopped` when it ends, publishing `room.composite.stopped`. A transcribed room's composite
//! has live captions (the live stream's `captions`), made of the lines the room's transcription
//! recognises. Where the engine no longer has
//! a composite the database still shows running, this side marks it stopped, so a room is never
//! stuck with one.
//!
//! HLS and recording are fixed for a composite's whole run; simulcast targets can be added and
//! removed while it runs (the restreamer follows their events).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_rooms::{
    CompositeLayout, CompositeResolution, CompositeSpec, ControlError, RoomControl,
};
use sluice_storage::{
    Captions, EventType, LatencyMode, LiveStream, LiveStreamSettings, NewEvent, NewRoomComposite,
    NewSimulcastTarget, Room, RoomComposite, RoomCompositeId, RoomCompositeLayout,
    RoomCompositeOutputs, RoomCompositeResolution, RoomCompositeStatus, RoomCompositeTarget,
    SimulcastTarget, SOURCE_RENDITION,
};
use tracing::error;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::json::{ApiJson, ApiPath, Envelope, PageEnvelope, PageParams};
use crate::live_streams::{self, validate_ladder, DEFAULT_CAPTIONS_NAME};
use crate::playback_ids::{hls_url, views, PlaybackIdView};
use crate::rooms::{control_error, engine, find, invalid, COMPOSITE_RUNNING, NO_COMPOSITE};
use crate::simulcast_targets::{self, too_many_targets, validate_target, MAX_SIMULCAST_TARGETS};
use crate::AppState;

/// Starts a composite: `{"layout"?, "resolution"?, "outputs"?, "latency_mode"?}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartComposite {
    /// `grid` (default), `speaker` or `single`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "grid")]
    layout: Option<RoomCompositeLayout>,
    /// `1080p` (default) or `720p`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "1080p")]
    resolution: Option<RoomCompositeResolution>,
    /// What the composite's live stream produces (default: HLS only).
    #[serde(default)]
    outputs: Option<OutputsRequest>,
    /// `standard` (default), `reduced` or `low`, as a live stream's.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "standard")]
    latency_mode: Option<LatencyMode>,
}

/// The outputs a composite is started with; at least one is needed.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputsRequest {
    /// Give the live stream a public playback id for HLS viewers (default true).
    #[serde(default)]
    #[schema(example = true)]
    hls: Option<bool>,
    /// Record the composite as an asset (default false).
    #[serde(default)]
    #[schema(example = false)]
    record: Option<bool>,
    /// RTMP(S) servers to restream to (default none).
    #[serde(default)]
    simulcast_targets: Option<Vec<TargetRequest>>,
}

/// A simulcast target of a composite, as for a live stream.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetRequest {
    /// `rtmp://host[:port]/app` or `rtmps://…`, without the stream key.
    #[schema(example = "rtmp://a.rtmp.youtube.com/live2")]
    url: String,
    /// The stream key the target gave you.
    #[schema(example = "abcd-efgh-ijkl-mnop")]
    stream_key: String,
}

/// Changes the running composite: only the fields present change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateComposite {
    /// `grid`, `speaker` or `single`: applied at once.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "speaker")]
    layout: Option<RoomCompositeLayout>,
    /// Every simulcast target the composite should have: targets not listed are removed, new
    /// ones added (a target is the same when its URL and stream key are).
    #[serde(default)]
    simulcast_targets: Option<Vec<TargetRequest>>,
}

/// Starts a composite with HLS or recording (`/hls/start`, `/recordings/start`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartOutput {
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "grid")]
    layout: Option<RoomCompositeLayout>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "1080p")]
    resolution: Option<RoomCompositeResolution>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "standard")]
    latency_mode: Option<LatencyMode>,
}

/// Restreams the room to RTMP(S) servers (`/livestreams/start`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartLivestreams {
    /// The servers to add (at least one).
    outputs: Vec<TargetRequest>,
    /// The layout: the composite's when one starts; applied to a running one.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "grid")]
    layout: Option<RoomCompositeLayout>,
}

/// A room composite.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompositeView {
    #[schema(example = "rcmp_4hQ8sT2mW6yB1dF3jK5n")]
    id: String,
    #[schema(example = "room_2Yb8kQ4mXr7TnC1vPq9L")]
    room_id: String,
    /// The live stream the composite publishes to: its sessions, recordings and simulcast
    /// targets are those of any live stream.
    #[schema(example = "ls_Ab3dE5fG7hJ9kL1mN3pQ")]
    live_stream_id: String,
    /// `grid`, `speaker` or `single`.
    #[schema(value_type = String, example = "grid")]
    layout: RoomCompositeLayout,
    /// `1080p` or `720p`.
    #[schema(value_type = String, example = "1080p")]
    resolution: RoomCompositeResolution,
    /// `{"hls", "record", "simulcast_targets": [{"id", "url"}]}`.
    #[schema(value_type = Object, example = json!({"hls": true, "record": false, "simulcast_targets": [{"id": "st_2Yb8kQ4mXr7TnC1v", "url": "rtmp://a.rtmp.youtube.com/live2"}]}))]
    outputs: RoomCompositeOutputs,
    #[schema(value_type = String, example = "standard")]
    latency_mode: LatencyMode,
    /// `waiting` (for the room's first participant), `active` (publishing) or `stopped`.
    #[schema(value_type = String, example = "active")]
    status: RoomCompositeStatus,
    /// The live stream's playback ids (none without HLS).
    playback_ids: Vec<PlaybackIdView>,
    /// Where viewers play it (the first public playback id); `null` without HLS.
    #[schema(example = "https://video.example.com/hls/Xk3v9QpL2mZr8TnB4wYc7DsA/master.m3u8")]
    hls_url: Option<String>,
    created_at: DateTime<Utc>,
    /// When it began publishing; `null` while waiting.
    started_at: Option<DateTime<Utc>>,
    /// When it stopped; `null` while running.
    stopped_at: Option<DateTime<Utc>>,
}

/// A composite to start, checked.
struct Plan {
    layout: RoomCompositeLayout,
    resolution: RoomCompositeResolution,
    latency_mode: LatencyMode,
    hls: bool,
    record: bool,
    targets: Vec<TargetRequest>,
}

impl Plan {
    fn new(
        layout: Option<RoomCompositeLayout>,
        resolution: Option<RoomCompositeResolution>,
        latency_mode: Option<LatencyMode>,
        outputs: OutputsRequest,
    ) -> Result<Self, ApiError> {
        let plan = Self {
            layout: layout.unwrap_or(RoomCompositeLayout::Grid),
            resolution: resolution.unwrap_or(RoomCompositeResolution::P1080),
            latency_mode: latency_mode.unwrap_or(LatencyMode::Standard),
            hls: outputs.hls.unwrap_or(true),
            record: outputs.record.unwrap_or(false),
            targets: outputs.simulcast_targets.unwrap_or_default(),
        };
        if !plan.hls && !plan.record && plan.targets.is_empty() {
            return Err(invalid(
                "outputs: ask for at least one of hls, record and simulcast_targets",
            ));
        }
        Ok(plan)
    }
}

/// An output the shortcut routes start and stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Hls,
    Recording,
    Livestreams,
}

impl Output {
    fn is_on(self, outputs: &RoomCompositeOutputs) -> bool {
        match self {
            Output::Hls => outputs.hls,
            Output::Recording => outputs.record,
            Output::Livestreams => !outputs.simulcast_targets.is_empty(),
        }
    }

    /// Whether the composite has outputs besides this one (so stopping this one leaves it
    /// running).
    fn others_on(self, outputs: &RoomCompositeOutputs) -> bool {
        [Output::Hls, Output::Recording, Output::Livestreams]
            .into_iter()
            .any(|other| other != self && other.is_on(outputs))
    }

    /// Why this output cannot be added to or removed from a running composite; `None` for
    /// simulcast targets, which can.
    fn fixed_for_run(self) -> Option<&'static str> {
        match self {
            Output::Hls => Some(
                "HLS is fixed for a composite's run, and the room has one running: stop it \
                 (DELETE /v1/rooms/{id}/composite), then start one with the outputs wanted",
            ),
            Output::Recording => Some(
                "recording is fixed for a composite's run, and the room has one running: stop \
                 it (DELETE /v1/rooms/{id}/composite), then start one with the outputs wanted",
            ),
            Output::Livestreams => None,
        }
    }

    /// Why stopping it is refused when the running composite does not have it.
    fn not_on(self) -> &'static str {
        match self {
            Output::Hls => "the room's running composite does not serve HLS",
            Output::Recording => "the room's running composite is not recorded",
            Output::Livestreams => "the room's running composite has no simulcast targets",
        }
    }
}

fn engine_layout(layout: RoomCompositeLayout) -> CompositeLayout {
    match layout {
        RoomCompositeLayout::Grid => CompositeLayout::Grid,
        RoomCompositeLayout::Speaker => CompositeLayout::Speaker,
        RoomCompositeLayout::Single => CompositeLayout::Single,
    }
}

fn engine_resolution(resolution: RoomCompositeResolution) -> CompositeResolution {
    match resolution {
        RoomCompositeResolution::P1080 => CompositeResolution::P1080,
        RoomCompositeResolution::P720 => CompositeResolution::P720,
    }
}

/// The composite's record of a live stream's targets.
fn composite_targets(targets: Vec<SimulcastTarget>) -> Vec<RoomCompositeTarget> {
    targets
        .into_iter()
        .map(|target| RoomCompositeTarget {
            id: target.id,
            url: target.url,
        })
        .collect()
}

/// Checks the targets a request names (under `field`): their number, no two alike, then each
/// as a live stream's target is checked.
async fn validate_targets(
    state: &AppState,
    field: &str,
    targets: &[TargetRequest],
) -> Result<(), ApiError> {
    if targets.len() as u64 > MAX_SIMULCAST_TARGETS {
        return Err(too_many_targets());
    }
    for (index, target) in targets.iter().enumerate() {
        if let Some(same) = targets[..index]
            .iter()
            .position(|earlier| same_target(earlier, &target.url, &target.stream_key))
        {
            return Err(invalid(format!(
                "{field}[{index}]: the same url and stream_key as {field}[{same}]"
            )));
        }
        validate_target(
            state,
            &format!("{field}[{index}]."),
            &target.url,
            &target.stream_key,
        )
        .await?;
    }
    Ok(())
}

fn same_target(target: &TargetRequest, url: &str, stream_key: &str) -> bool {
    target.url == url && target.stream_key == stream_key
}

/// `composite` in its API form, with its live stream's playback ids.
async fn view(state: &AppState, composite: RoomComposite) -> Result<CompositeView, ApiError> {
    let playback_ids = state
        .db
        .list_playback_ids(&composite.live_stream_id)
        .await?;
    Ok(CompositeView {
        hls_url: hls_url(&state.public_url, &playback_ids),
        playback_ids: views(playback_ids),
        id: composite.id.into(),
        room_id: composite.room_id.into(),
        live_stream_id: composite.live_stream_id.into(),
        layout: composite.layout,
        resolution: composite.resolution,
        outputs: composite.outputs,
        latency_mode: composite.latency_mode,
        status: composite.status,
        created_at: composite.created_at,
        started_at: composite.started_at,
        stopped_at: composite.stopped_at,
    })
}

/// The room's running composite, or `404`.
async fn running(state: &AppState, room: &Room) -> Result<RoomComposite, ApiError> {
    state
        .db
        .running_room_composite(&room.id)
        .await?
        .ok_or(ApiError::NotFound(NO_COMPOSITE))
}

/// Marks a composite stopped and, when this did it, publishes `room.composite.stopped`.
async fn mark_stopped(state: &AppState, id: &RoomCompositeId) -> Result<(), ApiError> {
    if let Some(stopped) = state.db.mark_room_composite_stopped(id).await? {
        state
            .events
            .publish(NewEvent::about_room_composite(
                EventType::RoomCompositeStopped,
                &stopped,
            ))
            .await?;
    }
    Ok(())
}

/// Deletes a live stream made for a composite that could not start; a failure is logged, the
/// request answers with why the start failed.
async fn discard(state: &AppState, stream: LiveStream) {
    let id = stream.id.clone();
    if let Err(e) = live_streams::remove(state, stream).await {
        error!(live_stream_id = %id, error = %e,
            "Could not delete the live stream of a composite that did not start.");
    }
}

/// Starts a composite of `room` as `plan` says: its live stream with its targets, the
/// `room_composites` row (`waiting`), `room.composite.started`, then the room engine. What the
/// engine refuses is undone: the row stopped, the live stream deleted.
async fn start(
    state: &AppState,
    rooms: &dyn RoomControl,
    room: &Room,
    plan: Plan,
) -> Result<CompositeView, ApiError> {
    if state.db.running_room_composite(&room.id).await?.is_some() {
        return Err(ApiError::Conflict(COMPOSITE_RUNNING));
    }
    // A transcribed room's composite carries live captions of what is said in it (the room's
    // transcription's lines, which the composite sends).
    let captions = room.transcription.as_ref().map(|transcription| Captions {
        language: transcription.language.clone(),
        name: DEFAULT_CAPTIONS_NAME.to_owned(),
    });
    let settings = LiveStreamSettings {
        latency_mode: plan.latency_mode,
        reconnect_window_s: 0,
        record: plan.record,
        captions,
        ..LiveStreamSettings::default()
    };
    let stream = state
        .db
        .create_live_stream(
            &format!("{} (composite)", room.name),
            &validate_ladder(&Value::Null)?,
            &settings,
        )
        .await?;
    let composite = match record(state, room, &plan, &stream).await {
        Ok(composite) => composite,
        Err(e) => {
            discard(state, stream).await;
            return Err(e);
        }
    };
    let spec = CompositeSpec {
        composite_id: composite.id.to_string(),
        room_id: room.id.to_string(),
        room_name: room.name.clone(),
        live_stream_id: stream.id.to_string(),
        stream_key: stream.stream_key.clone(),
        layout: engine_layout(plan.layout),
        resolution: engine_resolution(plan.resolution),
        captions: stream.captions.is_some(),
    };
    let started = match state
        .events
        .publish(NewEvent::about_room_composite(
            EventType::RoomCompositeStarted,
            &composite,
        ))
        .await
    {
        Ok(_) => rooms.start_composite(spec).await.map_err(control_error),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = started {
        if let Err(marking) = mark_stopped(state, &composite.id).await {
            error!(room_composite_id = %composite.id, error = %marking,
                "Could not mark a composite that did not start stopped.");
        }
        discard(state, stream).await;
        return Err(e);
    }
    // The engine may have marked it active already.
    let composite = state
        .db
        .get_room_composite(&composite.id)
        .await?
        .unwrap_or(composite);
    view(state, composite).await
}

/// The first steps of [`start`] once its live stream exists: HLS off when not asked for, the
/// stream's `live_stream.created`, its targets, the composite's row.
async fn record(
    state: &AppState,
    room: &Room,
    plan: &Plan,
    stream: &LiveStream,
) -> Result<RoomComposite, ApiError> {
    if !plan.hls {
        for playback_id in state.db.list_playback_ids(&stream.id).await? {
            state
                .db
                .delete_playback_id(&stream.id, &playback_id.id)
                .await?;
        }
    }
    let stream_view = live_streams::view(state, stream.clone()).await?;
    live_streams::publish(state, EventType::LiveStreamCreated, &stream_view).await?;
    let mut targets = Vec::with_capacity(plan.targets.len());
    for target in &plan.targets {
        targets
            .push(simulcast_targets::add(state, &stream.id, source_target(target.clone())).await?);
    }
    Ok(state
        .db
        .create_room_composite(&NewRoomComposite {
            room_id: room.id.clone(),
            live_stream_id: stream.id.clone(),
            layout: plan.layout,
            resolution: plan.resolution,
            latency_mode: plan.latency_mode,
            outputs: RoomCompositeOutputs {
                hls: plan.hls,
                record: plan.record,
                simulcast_targets: composite_targets(targets),
            },
        })
        .await?)
}

/// A composite's target: the `source` rendition, which for a composite is its top encoded
/// rung.
fn source_target(target: TargetRequest) -> NewSimulcastTarget {
    NewSimulcastTarget {
        url: target.url,
        stream_key: target.stream_key,
        rendition: SOURCE_RENDITION.to_owned(),
        passthrough: true,
    }
}

/// Gives the composite's live stream exactly the targets `wanted` (already validated): the
/// ones it has and `wanted` does not are removed, the missing ones added. Returns the
/// composite with its outputs recorded.
async fn replace_targets(
    state: &AppState,
    composite: RoomComposite,
    mut wanted: Vec<TargetRequest>,
) -> Result<RoomComposite, ApiError> {
    for target in state
        .db
        .list_simulcast_targets(&composite.live_stream_id)
        .await?
    {
        match wanted
            .iter()
            .position(|want| same_target(want, &target.url, &target.stream_key))
        {
            Some(kept) => {
                wanted.remove(kept);
            }
            None => simulcast_targets::remove(state, &target.id).await?,
        }
    }
    for target in wanted {
        simulcast_targets::add(state, &composite.live_stream_id, source_target(target)).await?;
    }
    let targets = state
        .db
        .list_simulcast_targets(&composite.live_stream_id)
        .await?;
    let outputs = RoomCompositeOutputs {
        simulcast_targets: composite_targets(targets),
        ..composite.outputs
    };
    Ok(state
        .db
        .set_room_composite_outputs(&composite.id, &outputs)
        .await?)
}

/// Adds `added` (already validated) to the composite's targets, those it has kept.
async fn add_targets(
    state: &AppState,
    composite: RoomComposite,
    added: Vec<TargetRequest>,
) -> Result<RoomComposite, ApiError> {
    let mut wanted: Vec<TargetRequest> = state
        .db
        .list_simulcast_targets(&composite.live_stream_id)
        .await?
        .into_iter()
        .map(|target| TargetRequest {
            url: target.url,
            stream_key: target.stream_key,
        })
        .collect();
    for target in added {
        if !wanted
            .iter()
            .any(|have| same_target(have, &target.url, &target.stream_key))
        {
            wanted.push(target);
        }
    }
    if wanted.len() as u64 > MAX_SIMULCAST_TARGETS {
        return Err(too_many_targets());
    }
    replace_targets(state, composite, wanted).await
}

/// Changes the running composite's layout in the engine, then in its row. An engine that no
/// longer runs it has the row marked stopped: `404`.
async fn change_layout(
    state: &AppState,
    rooms: &dyn RoomControl,
    room: &Room,
    composite: RoomComposite,
    layout: RoomCompositeLayout,
) -> Result<RoomComposite, ApiError> {
    match rooms
        .set_composite_layout(&room.name, engine_layout(layout))
        .await
    {
        Ok(()) => Ok(state
            .db
            .set_room_composite_layout(&composite.id, layout)
            .await?),
        Err(ControlError::NoComposite) => {
            mark_stopped(state, &composite.id).await?;
            Err(ApiError::NotFound(NO_COMPOSITE))
        }
        Err(e) => Err(control_error(e)),
    }
}

/// Asks the engine to stop the running composite; it marks it stopped once it has (its
/// recording sealed). An engine that no longer runs it has the row marked stopped here.
async fn stop_running(
    state: &AppState,
    rooms: &dyn RoomControl,
    room: &Room,
    composite: RoomComposite,
) -> Result<(), ApiError> {
    match rooms.stop_composite(&room.name).await {
        Ok(()) => Ok(()),
        Err(ControlError::NoComposite) => mark_stopped(state, &composite.id).await,
        Err(e) => Err(control_error(e)),
    }
}

/// Stops a room's running composite before the room is deleted: through this process's
/// engine when it has one, and marked stopped (with its event) here either way, since the room
/// and its composites are about to go.
pub(crate) async fn stop_before_room_deletion(
    state: &AppState,
    room: &Room,
    composite: RoomComposite,
) -> Result<(), ApiError> {
    if let Some(rooms) = state.rooms.as_deref() {
        match rooms.stop_composite(&room.name).await {
            Ok(()) | Err(ControlError::NoComposite) => {}
            Err(e) => return Err(control_error(e)),
        }
    }
    mark_stopped(state, &composite.id).await
}

/// `201` with a composite just started, `200` with one changed.
fn answer(status: StatusCode, data: CompositeView) -> (StatusCode, Json<Envelope<CompositeView>>) {
    (status, Json(Envelope { data }))
}

/// Starts the room's composite: a live stream is made for it and the room engine publishes to
/// it once someone is in the room.
#[utoipa::path(post, path = "/v1/rooms/{id}/composite", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    request_body = StartComposite,
    responses(
        (status = 201, description = "Started (waiting for the room's first participant, or active)", body = Envelope<CompositeView>),
        (status = 400, description = "An unknown layout, resolution or latency mode, no output, or an invalid simulcast target", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 409, description = "The room already has a composite running", body = ErrorBody),
        (status = 503, description = "This server runs no rooms, or cannot run composites", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn create(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<StartComposite>,
) -> Result<(StatusCode, Json<Envelope<CompositeView>>), ApiError> {
    let rooms = engine(&state)?;
    let plan = Plan::new(
        request.layout,
        request.resolution,
        request.latency_mode,
        request.outputs.unwrap_or_default(),
    )?;
    validate_targets(&state, "outputs.simulcast_targets", &plan.targets).await?;
    let room = find(&state, &id).await?;
    let data = start(&state, rooms, &room, plan).await?;
    Ok(answer(StatusCode::CREATED, data))
}

/// The room's running composite (`waiting` or `active`).
#[utoipa::path(get, path = "/v1/rooms/{id}/composite", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    responses(
        (status = 200, description = "The running composite", body = Envelope<CompositeView>),
        (status = 404, description = "No such room, or no composite running", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Envelope<CompositeView>>, ApiError> {
    let room = find(&state, &id).await?;
    let composite = running(&state, &room).await?;
    Ok(Json(Envelope {
        data: view(&state, composite).await?,
    }))
}

/// The room's composites, newest first, the running one included.
#[utoipa::path(get, path = "/v1/rooms/{id}/composites", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)"), PageParams),
    responses(
        (status = 200, description = "A page of composites", body = PageEnvelope<CompositeView>),
        (status = 400, description = "Invalid limit or cursor", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn list(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Json<PageEnvelope<CompositeView>>, ApiError> {
    let Query(params) = params?;
    let room = find(&state, &id).await?;
    let page = state
        .db
        .list_room_composites(&room.id, params.limit()?, params.cursor.as_deref())
        .await
        .map_err(ApiError::not_found_as("room not found"))?;
    let mut data = Vec::with_capacity(page.items.len());
    for composite in page.items {
        data.push(view(&state, composite).await?);
    }
    Ok(Json(PageEnvelope {
        data,
        next_cursor: page.next_cursor,
    }))
}

/// Changes the running composite: its layout at once, its simulcast targets (added ones
/// connect at once while it publishes, removed ones disconnect).
#[utoipa::path(patch, path = "/v1/rooms/{id}/composite", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    request_body = UpdateComposite,
    responses(
        (status = 200, description = "The changed composite", body = Envelope<CompositeView>),
        (status = 400, description = "An unknown layout or an invalid simulcast target", body = ErrorBody),
        (status = 404, description = "No such room, or no composite running", body = ErrorBody),
        (status = 503, description = "This server runs no rooms", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn update(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<UpdateComposite>,
) -> Result<Json<Envelope<CompositeView>>, ApiError> {
    let rooms = engine(&state)?;
    if let Some(targets) = &request.simulcast_targets {
        validate_targets(&state, "simulcast_targets", targets).await?;
    }
    let room = find(&state, &id).await?;
    let mut composite = running(&state, &room).await?;
    if let Some(layout) = request.layout {
        composite = change_layout(&state, rooms, &room, composite, layout).await?;
    }
    if let Some(targets) = request.simulcast_targets {
        composite = replace_targets(&state, composite, targets).await?;
    }
    Ok(Json(Envelope {
        data: view(&state, composite).await?,
    }))
}

/// Stops the running composite: its live stream's session ends and its recording is sealed.
/// It reads `stopped` once the room engine has stopped it.
#[utoipa::path(delete, path = "/v1/rooms/{id}/composite", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    responses(
        (status = 204, description = "Stopping"),
        (status = 404, description = "No such room, or no composite running", body = ErrorBody),
        (status = 503, description = "This server runs no rooms", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let rooms = engine(&state)?;
    let room = find(&state, &id).await?;
    let composite = running(&state, &room).await?;
    stop_running(&state, rooms, &room, composite).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `/hls/start` and `/recordings/start`: a composite with that output alone when none runs;
/// refused while one runs (the output is fixed for a run).
async fn start_fixed_output(
    state: &AppState,
    id: &str,
    output: Output,
    request: StartOutput,
) -> Result<(StatusCode, Json<Envelope<CompositeView>>), ApiError> {
    let rooms = engine(state)?;
    let room = find(state, id).await?;
    if state.db.running_room_composite(&room.id).await?.is_some() {
        return Err(ApiError::Conflict(
            output.fixed_for_run().unwrap_or(COMPOSITE_RUNNING),
        ));
    }
    let outputs = OutputsRequest {
        hls: Some(output == Output::Hls),
        record: Some(output == Output::Recording),
        simulcast_targets: None,
    };
    let plan = Plan::new(
        request.layout,
        request.resolution,
        request.latency_mode,
        outputs,
    )?;
    let data = start(state, rooms, &room, plan).await?;
    Ok(answer(StatusCode::CREATED, data))
}

/// The `/…/stop` shortcuts: stopping the composite's last output stops the composite;
/// simulcast targets are removed from one that keeps other outputs; HLS and recording cannot
/// leave a running composite.
async fn stop_output(state: &AppState, id: &str, output: Output) -> Result<StatusCode, ApiError> {
    let rooms = engine(state)?;
    let room = find(state, id).await?;
    let composite = running(state, &room).await?;
    if !output.is_on(&composite.outputs) {
        return Err(ApiError::Conflict(output.not_on()));
    }
    if !output.others_on(&composite.outputs) {
        stop_running(state, rooms, &room, composite).await?;
    } else if let Some(fixed) = output.fixed_for_run() {
        return Err(ApiError::Conflict(fixed));
    } else {
        replace_targets(state, composite, Vec::new()).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Starts a composite serving HLS alone (VideoSDK's `hls/start`).
#[utoipa::path(post, path = "/v1/rooms/{id}/hls/start", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    request_body(content = Option<StartOutput>, description = "Optional settings of the composite"),
    responses(
        (status = 201, description = "Started", body = Envelope<CompositeView>),
        (status = 400, description = "An unknown layout, resolution or latency mode", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 409, description = "A composite runs already (HLS is fixed for a run)", body = ErrorBody),
        (status = 503, description = "This server runs no rooms, or cannot run composites", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn hls_start(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    request: Option<ApiJson<StartOutput>>,
) -> Result<(StatusCode, Json<Envelope<CompositeView>>), ApiError> {
    let request = request.map(|ApiJson(request)| request).unwrap_or_default();
    start_fixed_output(&state, &id, Output::Hls, request).await
}

/// Stops HLS: the composite, when HLS is its only output.
#[utoipa::path(post, path = "/v1/rooms/{id}/hls/stop", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    responses(
        (status = 204, description = "Stopping the composite"),
        (status = 404, description = "No such room, or no composite running", body = ErrorBody),
        (status = 409, description = "The composite serves no HLS, or has other outputs", body = ErrorBody),
        (status = 503, description = "This server runs no rooms", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn hls_stop(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    stop_output(&state, &id, Output::Hls).await
}

/// Starts a recorded composite without HLS (VideoSDK's `recordings/start`).
#[utoipa::path(post, path = "/v1/rooms/{id}/recordings/start", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    request_body(content = Option<StartOutput>, description = "Optional settings of the composite"),
    responses(
        (status = 201, description = "Started", body = Envelope<CompositeView>),
        (status = 400, description = "An unknown layout, resolution or latency mode", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 409, description = "A composite runs already (recording is fixed for a run)", body = ErrorBody),
        (status = 503, description = "This server runs no rooms, or cannot run composites", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn recordings_start(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    request: Option<ApiJson<StartOutput>>,
) -> Result<(StatusCode, Json<Envelope<CompositeView>>), ApiError> {
    let request = request.map(|ApiJson(request)| request).unwrap_or_default();
    start_fixed_output(&state, &id, Output::Recording, request).await
}

/// Stops recording: the composite, when recording is its only output.
#[utoipa::path(post, path = "/v1/rooms/{id}/recordings/stop", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    responses(
        (status = 204, description = "Stopping the composite"),
        (status = 404, description = "No such room, or no composite running", body = ErrorBody),
        (status = 409, description = "The composite is not recorded, or has other outputs", body = ErrorBody),
        (status = 503, description = "This server runs no rooms", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn recordings_stop(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    stop_output(&state, &id, Output::Recording).await
}

/// Restreams the room to RTMP(S) servers (VideoSDK's `livestreams/start`): starts a composite
/// with these simulcast targets alone when none runs, else adds them to the running one (and
/// applies `layout`).
#[utoipa::path(post, path = "/v1/rooms/{id}/livestreams/start", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    request_body = StartLivestreams,
    responses(
        (status = 201, description = "A composite started", body = Envelope<CompositeView>),
        (status = 200, description = "The targets added to the running composite", body = Envelope<CompositeView>),
        (status = 400, description = "No output, an invalid one, or more than 32", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 503, description = "This server runs no rooms, or cannot run composites", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn livestreams_start(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(request): ApiJson<StartLivestreams>,
) -> Result<(StatusCode, Json<Envelope<CompositeView>>), ApiError> {
    let rooms = engine(&state)?;
    if request.outputs.is_empty() {
        return Err(invalid(
            "outputs: name at least one {\"url\", \"stream_key\"}",
        ));
    }
    validate_targets(&state, "outputs", &request.outputs).await?;
    let room = find(&state, &id).await?;
    let Some(mut composite) = state.db.running_room_composite(&room.id).await? else {
        let outputs = OutputsRequest {
            hls: Some(false),
            record: Some(false),
            simulcast_targets: Some(request.outputs),
        };
        let plan = Plan::new(request.layout, None, None, outputs)?;
        let data = start(&state, rooms, &room, plan).await?;
        return Ok(answer(StatusCode::CREATED, data));
    };
    if let Some(layout) = request.layout {
        composite = change_layout(&state, rooms, &room, composite, layout).await?;
    }
    let composite = add_targets(&state, composite, request.outputs).await?;
    Ok(answer(StatusCode::OK, view(&state, composite).await?))
}

/// Stops restreaming (VideoSDK's `livestreams/stop`): every simulcast target is removed; the
/// composite stops when they were its only output.
#[utoipa::path(post, path = "/v1/rooms/{id}/livestreams/stop", tag = "rooms",
    params(("id" = String, Path, description = "Room id (`room_…`)")),
    responses(
        (status = 204, description = "Targets removed, or the composite stopping"),
        (status = 404, description = "No such room, or no composite running", body = ErrorBody),
        (status = 409, description = "The composite has no simulcast targets", body = ErrorBody),
        (status = 503, description = "This server runs no rooms", body = ErrorBody),
    ),
    security(("api_key" = []), ("jwt" = [])))]
pub async fn livestreams_stop(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    stop_output(&state, &id, Output::Livestreams).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(hls: bool, record: bool, targets: usize) -> RoomCompositeOutputs {
        RoomCompositeOutputs {
            hls,
            record,
            simulcast_targets: (0..targets)
                .map(|i| RoomCompositeTarget {
                    id: sluice_storage::SimulcastTargetId::parse(&format!("st_{i}")).unwrap(),
                    url: "rtmp://example.com/live".to_owned(),
                })
                .collect(),
        }
    }

    #[test]
    fn an_output_knows_whether_others_keep_the_composite_running() {
        let hls_only = outputs(true, false, 0);
        assert!(Output::Hls.is_on(&hls_only));
        assert!(!Output::Hls.others_on(&hls_only));
        assert!(!Output::Recording.is_on(&hls_only));
        let everything = outputs(true, true, 2);
        for output in [Output::Hls, Output::Recording, Output::Livestreams] {
            assert!(output.is_on(&everything) && output.others_on(&everything));
        }
        let targets_only = outputs(false, false, 1);
        assert!(Output::Livestreams.is_on(&targets_only));
        assert!(!Output::Livestreams.others_on(&targets_only));
    }

    #[test]
    fn a_composite_needs_at_least_one_output() {
        let none = OutputsRequest {
            hls: Some(false),
            record: Some(false),
            simulcast_targets: Some(Vec::new()),
        };
        assert!(Plan::new(None, None, None, none).is_err());
        let plan = Plan::new(None, None, None, OutputsRequest::default()).unwrap();
        assert!(plan.hls && !plan.record && plan.targets.is_empty());
        assert_eq!(
            (plan.layout, plan.resolution, plan.latency_mode),
            (
                RoomCompositeLayout::Grid,
                RoomCompositeResolution::P1080,
                LatencyMode::Standard
            )
        );
    }

    #[test]
    fn layouts_and_resolutions_map_onto_the_engines() {
        assert_eq!(
            engine_layout(RoomCompositeLayout::Speaker),
            CompositeLayout::Speaker
        );
        assert_eq!(
            engine_resolution(RoomCompositeResolution::P720).size(),
            (1280, 720)
        );
    }
}
