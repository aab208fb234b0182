//! The asset worker: claims `asset.transcode` jobs from the durable queue and turns each
//! asset's source into HLS renditions, a poster and a storyboard in the object store.
//!
//! For one job, in a working directory of its own per claim
//! (`<scratch>/<asset id>-<job id>-<attempt>`, removed whatever happens):
//!
//! 1. **Start clean**: `assets/{id}/hls/` and `assets/{id}/images/` are removed (and the
//!    asset is no longer playable until its master playlist is back), so a job taken over
//!    from a worker that died (or a retried attempt) leaves no duplicate output.
//! 2. **Source**: an upload's file is copied out of the store; a URL is imported
//!    ([`Importer`]) once and kept at `assets/{id}/source` (a later attempt reuses it).
//! 3. **Probe** with the configured limits; the tracks, duration and container are recorded.
//! 4. **Transcode and package** the ladder of the asset's settings into `assets/{id}/hls/`
//!    ([`package`]): playable early (the asset is marked playable as soon as the master
//!    playlist exists), progress recorded with each heartbeat.
//! 5. **Pictures**: `images/poster.jpg`, `images/storyboard.jpg` and `images/storyboard.vtt`,
//!    made while step 4 runs, on a thread of lower CPU priority.
//! 6. **Ready**: the renditions are recorded and `asset.ready` is published.
//!
//! A bad input (not media, refused URL, over a limit) errors the asset at once
//! (`asset.errored`, with a reason a person understands) and the job fails without retry.
//! Failures that may pass (the store, the network, the disk) fail the attempt and the queue
//! retries it; the last attempt errors the asset. A heartbeat answering that the job is no
//! longer held (the asset was deleted, or the lease was lost) stops the work; when the asset
//! is gone, everything written for it is removed.
//!
//! Transcoding runs on blocking threads, never on the async runtime; `[worker] concurrency`
//! jobs run at once, each claiming task with a worker id of its own. Idle tasks look for due
//! jobs every [`POLL_INTERVAL`], so an asset starts within a second of being created.
//!
//! One more claiming task takes the `asset.transcribe` jobs of assets that asked for generated
//! subtitles ([`transcription`]), one at a time, so recognising speech never holds up the
//! transcoding of other assets.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};
use sluice_media::VideoCodec;
use sluice_storage::layout;
use sluice_storage::{
    Asset, AssetId, AssetInput, AssetSettings, AssetStatus, Db, EventType, InvalidKey, Job,
    ObjectStore, StoreError, ASSET_JOB_KIND, TRANSCRIBE_JOB_KIND,
};
use sluice_transcoder::{probe, EncoderSettings, FileTranscode, Ladder, ProbeReport, VodError};
use sluice_transcribe::Speech;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::WorkerConfig;
use crate::events::AssetEvents;
use crate::import::{ImportError, Importer};
use crate::package::{package, write_pictures, PackageObserver, SegmentPlan, StoreOutput};

mod transcription;

/// How often an idle claiming task looks for a due job.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the worker looks for preparing assets whose jobs have all ended.
const ABANDONED_SWEEP: Duration = Duration::from_secs(30);
/// Longest wait between heartbeats (shorter leases get a heartbeat every third of the lease).
const MAX_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// Segment duration of on-demand renditions (Apple's recommendation, HLS Authoring Spec
/// §1.10), after short first segments.
const SEGMENT_TARGET: Duration = Duration::from_secs(6);
/// How long stopped work may take to wind down before it is dropped.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Why an attempt stopped when its worker shut down.
const INTERRUPTED: &str = "the worker stopped";
/// Delay before a failed attempt is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Codecs this worker encodes.
/// Share of the progress given to fetching and probing the source, then to transcoding;
/// the pictures take the rest.
const PROGRESS_SOURCE: u8 = 5;
const PROGRESS_TRANSCODED: u8 = 95;

/// Why preparing an asset stopped.
#[derive(Debug)]
enum Failure {
    /// The input cannot be made into an asset: the reason is for a person.
    Input(String),
    /// A failure that may pass; the attempt is retried.
    Transient(String),
    /// The worker is shutting down; the attempt is retried at once.
    Interrupted,
    /// The job is no longer this worker's (the asset was deleted or the lease lost).
    Stopped,
}

impl Failure {
    /// Why `job` failed for good, for a person, when this failure ends it (a bad input, or
    /// any failure on its last attempt): `what` failed (`the asset could not be prepared`),
    /// then the cause. `None` when the job is retried.
    fn final_reason(&self, job: &Job, what: &str) -> Option<String> {
        let last_attempt = job.attempts >= job.max_attempts;
        let cause = match self {
            Failure::Input(reason) => return Some(reason.clone()),
            Failure::Transient(reason) if last_attempt => reason.as_str(),
            Failure::Interrupted if last_attempt => INTERRUPTED,
            _ => return None,
        };
        Some(format!("{what} after {} attempts: {cause}", job.attempts))
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Transient(format!("object store: {error}"))
    }
}

/// Everything a claiming task needs; shared by the tasks of one worker.
pub struct Worker {
    db: Db,
    store: Arc<dyn ObjectStore>,
    events: AssetEvents,
    settings: WorkerConfig,
    importer: Importer,
    scratch: PathBuf,
    speech: Arc<Speech>,
}

impl Worker {
    /// A worker processing assets of `db` whose objects are in `store`, publishing on
    /// `events`; sources are copied into working directories under `scratch`. Generated
    /// subtitles are recognised with `speech`.
    pub fn new(
        db: Db,
        store: Arc<dyn ObjectStore>,
        events: AssetEvents,
        settings: WorkerConfig,
        importer: Importer,
        scratch: PathBuf,
        speech: Arc<Speech>,
    ) -> Self {
        Worker {
            db,
            store,
            events,
            settings,
            importer,
            scratch,
            speech,
        }
    }

    /// Runs `[worker] concurrency` claiming tasks until `stopping` turns true. A job in
    /// progress then is stopped, its output removed and the job queued again at once.
    pub async fn run(self, stopping: watch::Receiver<bool>) {
        let worker = Arc::new(self);
        let prefix = worker_id_prefix();
        info!(
            concurrency = worker.settings.concurrency,
            worker = %prefix,
            "Asset worker started."
        );
        let mut tasks = JoinSet::new();
        for slot in 0..worker.settings.concurrency {
            let worker_id = format!("{prefix}-{slot}");
            tasks.spawn(
                worker
                    .clone()
                    .claim_loop(worker_id, ASSET_JOB_KIND, stopping.clone()),
            );
        }
        tasks.spawn(worker.clone().claim_loop(
            format!("{prefix}-speech"),
            TRANSCRIBE_JOB_KIND,
            stopping.clone(),
        ));
        tasks.spawn(worker.clone().abandoned_loop(stopping.clone()));
        while tasks.join_next().await.is_some() {}
        info!("Asset worker stopped.");
    }

    /// Claims and processes jobs of `kind` one after the other until shutdown.
    async fn claim_loop(
        self: Arc<Self>,
        worker_id: String,
        kind: &'static str,
        mut stopping: watch::Receiver<bool>,
    ) {
        while !*stopping.borrow() {
            let claimed = self
                .db
                .claim_job(&worker_id, &[kind], self.settings.lease())
                .await;
            match claimed {
                Ok(Some(job)) if kind == TRANSCRIBE_JOB_KIND => {
                    self.transcribe(&worker_id, job, &mut stopping).await
                }
                Ok(Some(job)) => self.process(&worker_id, job, &mut stopping).await,
                Ok(None) => {
                    tokio::select! {
                        () = tokio::time::sleep(POLL_INTERVAL) => {}
                        _ = stopping.changed() => {}
                    }
                }
                Err(e) => {
                    warn!(worker = %worker_id, error = %e, "Cannot claim asset jobs.");
                    tokio::select! {
                        () = tokio::time::sleep(MAX_HEARTBEAT_INTERVAL) => {}
                        _ = stopping.changed() => {}
                    }
                }
            }
        }
    }

    /// Every [`ABANDONED_SWEEP`], errors the preparing assets no job will prepare any more: a
    /// job whose worker died on its last attempt is failed by the next claim, which cannot
    /// tell the asset (another worker may be the one to notice).
    async fn abandoned_loop(self: Arc<Self>, mut stopping: watch::Receiver<bool>) {
        while !*stopping.borrow() {
            match self.db.abandoned_assets().await {
                Ok(abandoned) => {
                    for (asset, last_error) in abandoned {
                        let reason = format!(
                            "the asset could not be prepared: {}",
                            last_error.as_deref().unwrap_or(INTERRUPTED)
                        );
                        warn!(asset_id = %asset.id, reason = %reason, "Asset errored.");
                        match self.db.set_asset_errored(&asset.id, &reason).await {
                            Ok(Some(errored)) => {
                                self.publish(EventType::AssetErrored, &errored).await
                            }
                            Ok(None) => {}
                            Err(e) => {
                                warn!(asset_id = %asset.id, error = %e, "Cannot record the asset's error.")
                            }
                        }
                    }
                }
                Err(e) => warn!(error = %e, "Cannot look for abandoned assets."),
            }
            tokio::select! {
                () = tokio::time::sleep(ABANDONED_SWEEP) => {}
                _ = stopping.changed() => {}
            }
        }
    }

    /// Processes one claimed job to its end, recording the outcome.
    async fn process(&self, worker_id: &str, job: Job, stopping: &mut watch::Receiver<bool>) {
        let Ok(asset_id) = AssetId::parse(&job.subject_id) else {
            // A job that names no asset has nothing to prepare.
            self.settle(&job, worker_id, Ok(json!({"skipped": true})))
                .await;
            return;
        };
        let asset = match self.db.get_asset(&asset_id).await {
            Ok(Some(asset)) if asset.status == AssetStatus::Preparing => asset,
            Ok(_) => {
                // Deleted, or already settled by an earlier attempt that could not record it.
                self.settle(&job, worker_id, Ok(json!({"skipped": true})))
                    .await;
                return;
            }
            Err(e) => {
                self.settle(&job, worker_id, Err(Failure::Transient(e.to_string())))
                    .await;
                return;
            }
        };
        info!(asset_id = %asset.id, job_id = %job.id, attempt = job.attempts, "Preparing an asset.");
        let work = self.claim_directory(&asset.id, &job).await;
        let progress = Arc::new(AtomicU8::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let outcome = {
            let prepare = self.prepare(&asset, &work, &progress, &stop);
            let heartbeat = self.heartbeat(
                &job,
                &asset.id,
                worker_id,
                Progress::OfAsset(&progress),
                &stop,
                stopping,
            );
            tokio::pin!(prepare);
            tokio::select! {
                outcome = &mut prepare => outcome,
                // The job is no longer held, or the worker is stopping: the work stops
                // whatever it reached. Transcoding sees `stop` and ends within a packet; a
                // download still running after the grace period is dropped.
                () = heartbeat => {
                    let _ = tokio::time::timeout(STOP_GRACE, &mut prepare).await;
                    Err(Failure::Stopped)
                }
            }
        };
        remove_directory(&work).await;
        match outcome {
            Ok(renditions) => self.finish_ready(&job, worker_id, &asset, renditions).await,
            Err(Failure::Stopped) => self.finish_stopped(&job, worker_id, &asset, stopping).await,
            Err(failure) => self.finish_failed(&job, worker_id, &asset, failure).await,
        }
    }

    /// The working directory of one claim of `job`, with what earlier attempts left removed.
    /// One directory per claim: an attempt that outlived its lease never touches the files of
    /// the attempt that took the job over, which removes what earlier attempts left (a killed
    /// worker's files).
    async fn claim_directory(&self, asset_id: &AssetId, job: &Job) -> PathBuf {
        let name = |attempt| format!("{asset_id}-{}-{attempt}", job.id);
        for attempt in 1..job.attempts {
            remove_directory(&self.scratch.join(name(attempt))).await;
        }
        self.scratch.join(name(job.attempts))
    }

    /// Renews the lease and records progress until the job is lost or the worker stops; then
    /// sets `stop` and returns.
    async fn heartbeat(
        &self,
        job: &Job,
        asset_id: &AssetId,
        worker_id: &str,
        progress: Progress<'_>,
        stop: &AtomicBool,
        stopping: &mut watch::Receiver<bool>,
    ) {
        let (progress, of_asset) = match progress {
            Progress::OfAsset(progress) => (progress, true),
            Progress::OfTranscripts(progress) => (progress, false),
        };
        let lease = self.settings.lease();
        let mut ticks = tokio::time::interval((lease / 3).min(MAX_HEARTBEAT_INTERVAL));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recorded = None;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopping.changed() => {}
            }
            if *stopping.borrow() {
                break;
            }
            let done = progress.load(Ordering::Relaxed);
            match self
                .db
                .heartbeat_job(&job.id, worker_id, lease, Some(done))
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    info!(job_id = %job.id, asset_id = %asset_id, "The asset job is no longer held; stopping.");
                    break;
                }
                // The lease outlives a few missed heartbeats.
                Err(e) => warn!(job_id = %job.id, error = %e, "Heartbeat failed."),
            }
            if recorded != Some(done) {
                let recording = match of_asset {
                    true => self.db.set_asset_progress(asset_id, done).await,
                    false => self.db.set_transcripts_progress(asset_id, done).await,
                };
                match recording {
                    Ok(()) => recorded = Some(done),
                    Err(e) => {
                        warn!(asset_id = %asset_id, error = %e, "Cannot record progress.")
                    }
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
    }

    /// Steps 1 to 5 of the module documentation; returns the renditions in API form.
    async fn prepare(
        &self,
        asset: &Asset,
        work: &Path,
        progress: &Arc<AtomicU8>,
        stop: &Arc<AtomicBool>,
    ) -> Result<Value, Failure> {
        let [hls, images] = layout::asset_outputs(&asset.id)?;
        self.store.delete_prefix(&hls).await?;
        self.store.delete_prefix(&images).await?;
        self.db
            .reset_asset_output(&asset.id)
            .await
            .map_err(|e| Failure::Transient(e.to_string()))?;
        match tokio::fs::remove_dir_all(work).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Failure::Transient(format!(
                    "cannot clear {}: {e}",
                    work.display()
                )))
            }
            _ => {}
        }
        tokio::fs::create_dir_all(work)
            .await
            .map_err(|e| Failure::Transient(format!("cannot create {}: {e}", work.display())))?;

        let source = work.join("source");
        self.fetch_source(asset, &source).await?;
        let limits = self.settings.probe_limits();
        let report = blocking({
            let source = source.clone();
            let limits = limits.clone();
            move || probe(&source, &limits).map_err(|e| Failure::Input(describe_probe(&e)))
        })
        .await?;
        let (tracks, metadata) = describe_source(&report);
        let duration_ms = report
            .duration
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.db
            .set_asset_probed(&asset.id, duration_ms, &tracks, &metadata)
            .await
            .map_err(|e| Failure::Transient(e.to_string()))?;
        progress.store(PROGRESS_SOURCE, Ordering::Relaxed);
        if stop.load(Ordering::Relaxed) {
            return Err(Failure::Stopped);
        }

        let (ladder, codecs) = ladder_of(asset.settings.as_ref());
        let segments = SegmentPlan::new(SEGMENT_TARGET);
        let encoder = EncoderSettings {
            preset: self.settings.preset,
            keyframe_interval: segments.keyframe_interval(),
            // Rungs run in parallel already; x264 picks its own thread count per rung.
            threads_per_rung: 0,
            codecs,
            ..EncoderSettings::default()
        };
        let runtime = Handle::current();
        let mut observer = Observer {
            db: self.db.clone(),
            runtime: runtime.clone(),
            asset_id: asset.id.clone(),
            duration: report.duration,
            progress: progress.clone(),
            stop: stop.clone(),
        };
        let mut output = StoreOutput::new(self.store.clone(), runtime.clone(), hls);
        let transcoding = blocking({
            let source = source.clone();
            let limits = limits.clone();
            let stop = stop.clone();
            move || {
                let (transcode, events) = FileTranscode::start(&source, &ladder, encoder, &limits)
                    .map_err(|e| Failure::Input(describe_transcode(&e)))?;
                package(transcode, events, segments, &mut output, &mut observer).map_err(|e| {
                    if stop.load(Ordering::Relaxed) {
                        Failure::Stopped
                    } else {
                        classify_packaging(&e)
                    }
                })
            }
        });
        // The poster and storyboard decode the source on their own thread while the ladder
        // encodes (the rungs leave part of the machine idle), rather than after it. Both are
        // awaited whatever happens, so nothing is written once this returns.
        let pictures = async {
            let Some(video) = &report.video else {
                return Ok(());
            };
            let width = video.width;
            let with_storyboard = report.duration.is_some();
            let mut output = StoreOutput::new(self.store.clone(), runtime, images);
            blocking_at_low_priority(move || {
                write_pictures(&source, &limits, width, with_storyboard, &mut output)
                    .map_err(|e| classify_packaging(&e))
            })
            .await
        };
        let (packaged, pictures) = tokio::join!(transcoding, pictures);
        let packaged = packaged?;
        pictures?;
        progress.store(100, Ordering::Relaxed);
        if stop.load(Ordering::Relaxed) {
            return Err(Failure::Stopped);
        }
        serde_json::to_value(&packaged.renditions)
            .map_err(|e| Failure::Transient(format!("cannot record the renditions: {e}")))
    }

    /// Puts the asset's source at `path`: an upload from the store; a URL from the copy an
    /// earlier attempt kept, else imported and kept in the store.
    async fn fetch_source(&self, asset: &Asset, path: &Path) -> Result<(), Failure> {
        let key = asset
            .source_key()
            .map_err(|e| Failure::Input(format!("the asset's source cannot be named: {e}")))?;
        match self.store.get_to_file(&key, path).await {
            Ok(_) => return Ok(()),
            Err(e) if !e.is_not_found() => return Err(e.into()),
            Err(_) => {}
        }
        let url = match &asset.input {
            AssetInput::Url { url } => url,
            AssetInput::Upload { .. } => {
                return Err(Failure::Input("the uploaded file is missing".to_owned()))
            }
            AssetInput::LiveStream { .. } => {
                return Err(Failure::Input("the asset has no input".to_owned()))
            }
        };
        self.importer
            .download(url, path)
            .await
            .map_err(|e| match e {
                ImportError::Refused(message) => Failure::Input(message),
                ImportError::Transient(message) => Failure::Transient(message),
            })?;
        self.store.put_file(&key, path).await?;
        Ok(())
    }

    async fn finish_ready(&self, job: &Job, worker_id: &str, asset: &Asset, renditions: Value) {
        match self.db.set_asset_ready(&asset.id, &renditions).await {
            Ok(Some(ready)) => {
                info!(asset_id = %asset.id, "Asset ready.");
                self.publish(EventType::AssetReady, &ready).await;
                self.settle(
                    job,
                    worker_id,
                    Ok(json!({"renditions": renditions.as_array().map_or(0, Vec::len)})),
                )
                .await;
            }
            Ok(None) => {
                self.remove_deleted(asset).await;
                self.settle(job, worker_id, Ok(json!({"skipped": true})))
                    .await;
            }
            Err(e) => {
                self.settle(job, worker_id, Err(Failure::Transient(e.to_string())))
                    .await;
            }
        }
    }

    async fn finish_stopped(
        &self,
        job: &Job,
        worker_id: &str,
        asset: &Asset,
        stopping: &watch::Receiver<bool>,
    ) {
        match self.db.get_asset(&asset.id).await {
            Ok(None) => self.remove_deleted(asset).await,
            // Shutting down: the job goes back to the queue, due at once (on its last attempt
            // it fails, and the asset errors rather than waiting for a job that is gone).
            Ok(Some(_)) if *stopping.borrow() => {
                self.finish_failed(job, worker_id, asset, Failure::Interrupted)
                    .await;
            }
            // The lease was taken over by another worker: the output is now its own.
            _ => {}
        }
    }

    async fn finish_failed(&self, job: &Job, worker_id: &str, asset: &Asset, failure: Failure) {
        let reason = failure.final_reason(job, "the asset could not be prepared");
        // Only the attempt that still holds the job speaks for the asset: one that outlived its
        // lease (its files possibly gone) must not error an asset another attempt prepares.
        if !self.settle(job, worker_id, Err(failure)).await {
            return;
        }
        self.remove_outputs(asset).await;
        if let Some(reason) = reason {
            warn!(asset_id = %asset.id, reason = %reason, "Asset errored.");
            match self.db.set_asset_errored(&asset.id, &reason).await {
                Ok(Some(errored)) => self.publish(EventType::AssetErrored, &errored).await,
                Ok(None) => {}
                Err(e) => {
                    warn!(asset_id = %asset.id, error = %e, "Cannot record the asset's error.")
                }
            }
        }
    }

    /// Records the job's outcome: done, failed for good (a bad input) or retried (at once
    /// when the worker stopped, later otherwise).
    /// `false` when the outcome could not be recorded under this worker's claim.
    async fn settle(&self, job: &Job, worker_id: &str, outcome: Result<Value, Failure>) -> bool {
        let recorded = match &outcome {
            Ok(result) => self.db.complete_job(&job.id, worker_id, result).await,
            Err(Failure::Input(reason)) => self.db.fail_job(&job.id, worker_id, reason, None).await,
            Err(Failure::Transient(reason)) => {
                warn!(job_id = %job.id, reason = %reason, "Asset job attempt failed.");
                self.db
                    .fail_job(&job.id, worker_id, reason, Some(RETRY_AFTER))
                    .await
            }
            Err(Failure::Interrupted) => {
                self.db
                    .fail_job(&job.id, worker_id, INTERRUPTED, Some(Duration::ZERO))
                    .await
            }
            Err(Failure::Stopped) => return false,
        };
        match recorded {
            Ok(held) => held,
            Err(e) => {
                warn!(job_id = %job.id, error = %e, "Cannot record the outcome of an asset job.");
                false
            }
        }
    }

    /// Removes every object of an asset deleted while it was prepared: the deletion removed
    /// what existed then, and what the worker wrote since is its own to remove.
    async fn remove_deleted(&self, asset: &Asset) {
        info!(asset_id = %asset.id, "The asset was deleted while being prepared; its objects are removed.");
        let removed = match asset.objects_prefix() {
            Ok(prefix) => self
                .store
                .delete_prefix(&prefix)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = removed {
            warn!(asset_id = %asset.id, error = %e, "Cannot remove a deleted asset's objects.");
        }
    }

    /// Removes what processing writes (not the kept source); a preparing asset is no longer
    /// playable.
    async fn remove_outputs(&self, asset: &Asset) {
        if let Err(e) = self.db.reset_asset_output(&asset.id).await {
            warn!(asset_id = %asset.id, error = %e, "Cannot reset the asset's progress.");
        }
        let outputs = match layout::asset_outputs(&asset.id) {
            Ok(outputs) => outputs,
            Err(e) => {
                warn!(asset_id = %asset.id, error = %e, "Cannot remove an asset's output.");
                return;
            }
        };
        for key in outputs {
            let removed = self.store.delete_prefix(&key).await;
            if let Err(e) = removed {
                warn!(asset_id = %asset.id, error = %e, "Cannot remove an asset's output.");
            }
        }
    }

    async fn publish(&self, event_type: EventType, asset: &Asset) {
        self.events.publish(event_type, asset).await
    }
}

/// Where a job's heartbeat records its progress besides the job: the asset's own `progress`
/// while it is prepared, its preparing transcripts' while its speech is recognised.
enum Progress<'a> {
    OfAsset(&'a AtomicU8),
    OfTranscripts(&'a AtomicU8),
}

/// Removes a working directory and what it holds; a failure is logged.
async fn remove_directory(path: &Path) {
    if let Err(e) = tokio::fs::remove_dir_all(path).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            warn!(path = %path.display(), error = %e, "Cannot remove a working directory.");
        }
    }
}

/// Reports packaging to the job: progress for the heartbeat, the playable flag at once, and
/// whether to go on.
struct Observer {
    db: Db,
    runtime: Handle,
    asset_id: AssetId,
    duration: Option<Duration>,
    progress: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
}

impl PackageObserver for Observer {
    fn progress(&mut self, done: Duration) -> bool {
        if let Some(total) = self.duration.filter(|total| !total.is_zero()) {
            let share = (done.as_secs_f64() / total.as_secs_f64()).clamp(0.0, 1.0);
            let span = f64::from(PROGRESS_TRANSCODED - PROGRESS_SOURCE);
            let percent = PROGRESS_SOURCE + (share * span) as u8;
            self.progress.store(percent, Ordering::Relaxed);
        }
        !self.stop.load(Ordering::Relaxed)
    }

    fn playable(&mut self) {
        if let Err(e) = self
            .runtime
            .block_on(self.db.set_asset_playable(&self.asset_id))
        {
            warn!(asset_id = %self.asset_id, error = %e, "Cannot mark the asset playable.");
        }
    }
}

/// Runs blocking work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(Failure::Transient(format!(
            "the transcode thread failed: {e}"
        )))
    })
}

/// How much lower than the ladder the pictures thread runs (a nice increment).
const PICTURES_NICENESS: libc::c_int = 10;

/// Runs `work` on a thread of its own at a lower CPU priority: the poster and storyboard then
/// use the CPU the ladder leaves idle instead of slowing it. (A thread of the blocking pool could
/// not be given its priority back without privileges, so the thread ends with the work.)
async fn blocking_at_low_priority<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sluice-pictures".to_owned())
        .spawn(move || {
            // SAFETY: gettid and get/setpriority take plain integers and act on this thread
            // only (Linux keeps a nice value per thread; threads it starts inherit it).
            unsafe {
                let thread = libc::gettid() as libc::id_t;
                let nice = libc::getpriority(libc::PRIO_PROCESS, thread);
                libc::setpriority(libc::PRIO_PROCESS, thread, nice + PICTURES_NICENESS);
            }
            let _ = sender.send(work());
        })
        .map_err(|e| Failure::Transient(format!("cannot start the pictures thread: {e}")))?;
    receiver
        .await
        .unwrap_or_else(|_| Err(Failure::Transient("the pictures thread failed".to_owned())))
}

impl From<InvalidKey> for Failure {
    fn from(error: InvalidKey) -> Self {
        Failure::Input(format!("the asset's objects cannot be named: {error}"))
    }
}

/// A host-, process- and run-unique prefix for the ids of this worker's claiming tasks.
fn worker_id_prefix() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "sluice".to_owned());
    let suffix: u32 = rand::thread_rng().gen();
    format!("{host}-{}-{suffix:08x}", std::process::id())
}

/// The ladder and video codecs of the asset's settings (`h264`, and `av1` for AV1 twins of
/// the rungs); the default ladder in H.264 for an asset made without settings.
fn ladder_of(settings: Option<&AssetSettings>) -> (Ladder, Vec<VideoCodec>) {
    match settings {
        Some(settings) => (
            settings.ladder.clone(),
            settings
                .codecs
                .iter()
                .copied()
                .map(VideoCodec::from)
                .collect(),
        ),
        None => (Ladder::DEFAULT, vec![VideoCodec::H264]),
    }
}

/// A probe refusal, for a person (the path of the working copy means nothing to them).
fn describe_probe(error: &sluice_transcoder::ProbeError) -> String {
    match error {
        sluice_transcoder::ProbeError::Read { source, .. } => {
            format!("the source file cannot be read: {source}")
        }
        other => format!("the source file cannot be used: {other}"),
    }
}

fn describe_transcode(error: &VodError) -> String {
    match error {
        VodError::Probe(probe) => describe_probe(probe),
        other => format!("the source file cannot be transcoded: {other}"),
    }
}

/// A packaging failure: the store's is transient, anything else comes from the input.
fn classify_packaging(error: &anyhow::Error) -> Failure {
    if error.chain().any(|cause| cause.is::<StoreError>()) {
        return Failure::Transient(format!("{error:#}"));
    }
    match error.downcast_ref::<VodError>() {
        Some(vod) => Failure::Input(describe_transcode(vod)),
        None => Failure::Input(format!("the source file cannot be transcoded: {error:#}")),
    }
}

/// The source's tracks and container, in API form.
fn describe_source(report: &ProbeReport) -> (Value, Value) {
    let mut tracks = Vec::new();
    if let Some(video) = &report.video {
        tracks.push(json!({
            "type": "video",
            "codec": video.codec,
            "width": video.width,
            "height": video.height,
            "frame_rate": video.frame_rate,
            "rotation": video.rotation,
        }));
    }
    if let Some(audio) = &report.audio {
        tracks.push(json!({
            "type": "audio",
            "codec": audio.codec,
            "channels": audio.channels,
            "sample_rate": audio.sample_rate,
        }));
    }
    let metadata = json!({
        "container": report.container,
        "size": report.file_size,
        "streams": report.stream_count,
    });
    (Value::Array(tracks), metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_media::fixtures::ffmpeg_clip;
    use sluice_storage::test_support::TestDatabase;
    use sluice_storage::{
        EventBus, GeneratedSubtitles, JobStatus, LadderCodec, LocalStore, NewAsset, PlaybackId,
        PlaybackPolicy, Transcript, TranscriptStatus, UploadId,
    };

    /// Why the test worker recognises no speech.
    const NO_SPEECH: &str = "speech recognition is turned off for this test";

    /// The API's own asset form, as the server plugs it in.
    struct ApiViews;

    impl crate::AssetViews for ApiViews {
        fn asset(
            &self,
            asset: &Asset,
            playback_ids: &[PlaybackId],
            tracks: &[Transcript],
        ) -> Value {
            sluice_api::assets::asset_json(asset, playback_ids, tracks, "http://sluice.test")
        }

        fn track(&self, track: &Transcript) -> Value {
            sluice_api::assets::track_json(track)
        }
    }

    /// A worker on a fresh database and a local store, both in temporary directories.
    struct Harness {
        _database: TestDatabase,
        dir: tempfile::TempDir,
        db: Db,
        store: Arc<dyn ObjectStore>,
        stop: watch::Sender<bool>,
        running: tokio::task::JoinHandle<()>,
    }

    impl Harness {
        async fn start(allow_hosts: &[&str]) -> Self {
            let database = TestDatabase::new();
            let db = Db::connect(database.url()).await.unwrap();
            db.migrate().await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path().join("objects")));
            let settings = WorkerConfig {
                preset: sluice_transcoder::Preset::Ultrafast,
                lease_seconds: 3.0,
                ..WorkerConfig::default()
            };
            let allow: Vec<String> = allow_hosts.iter().map(|s| (*s).to_owned()).collect();
            let importer = Importer::new(
                &allow,
                settings.max_file_size,
                Duration::from_secs(60),
                Duration::from_secs(5),
            )
            .unwrap();
            let worker = Worker::new(
                db.clone(),
                store.clone(),
                AssetEvents::new(db.clone(), EventBus::new(db.clone()), Arc::new(ApiViews)),
                settings,
                importer,
                dir.path().join("work"),
                Arc::new(Speech::unavailable(NO_SPEECH.to_owned())),
            );
            let (stop, stopping) = watch::channel(false);
            let running = tokio::spawn(worker.run(stopping));
            Harness {
                _database: database,
                dir,
                db,
                store,
                stop,
                running,
            }
        }

        async fn create(&self, input: AssetInput) -> Asset {
            self.create_with_subtitles(input, Vec::new()).await
        }

        async fn create_with_subtitles(
            &self,
            input: AssetInput,
            generated_subtitles: Vec<GeneratedSubtitles>,
        ) -> Asset {
            let ladder = json!([{"name": "180p", "height": 180, "bitrate_kbps": 300}]);
            self.db
                .create_asset(&NewAsset {
                    input,
                    settings: Some(AssetSettings {
                        playback_policy: vec![PlaybackPolicy::Public],
                        ladder: Ladder::from_request(&ladder).unwrap(),
                        codecs: vec![LadderCodec::H264],
                        passthrough: None,
                        generated_subtitles,
                    }),
                    playback_policies: vec![PlaybackPolicy::Public],
                })
                .await
                .unwrap()
        }

        /// An asset whose upload `upload_id` holds the file at `source`.
        async fn create_uploaded(&self, upload_id: &str, source: &Path) -> Asset {
            let key = layout::upload_source(upload_id).unwrap();
            self.store.put_file(&key, source).await.unwrap();
            self.create(AssetInput::Upload {
                upload_id: UploadId::parse(upload_id).unwrap(),
            })
            .await
        }

        /// Waits until the asset is no longer preparing.
        async fn settled(&self, id: &AssetId) -> Asset {
            for _ in 0..1_200 {
                let asset = self.db.get_asset(id).await.unwrap().expect("the asset");
                if asset.status != AssetStatus::Preparing {
                    return asset;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("asset {id} is still preparing");
        }

        async fn object(&self, key: &str) -> Option<bytes::Bytes> {
            self.store
                .get(&sluice_storage::ObjectKey::parse(key).unwrap())
                .await
                .ok()
        }

        async fn event_types(&self, id: &str) -> Vec<String> {
            self.db
                .list_events(100, None)
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|event| event.object.id == id)
                .map(|event| event.event_type)
                .collect()
        }

        /// Entries left in the working directory.
        fn work_entries(&self) -> Vec<std::ffi::OsString> {
            match std::fs::read_dir(self.dir.path().join("work")) {
                Ok(entries) => entries.map(|e| e.unwrap().file_name()).collect(),
                Err(_) => Vec::new(),
            }
        }

        async fn stop(self) {
            let _ = self.stop.send(true);
            self.running.await.unwrap();
        }
    }

    fn clip(dir: &Path, seconds: &str) -> PathBuf {
        ffmpeg_clip(
            dir,
            "clip.mp4",
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=25",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
                "-t",
                seconds,
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
            ],
        )
    }

    fn media(bytes: &[u8]) -> m3u8_rs::MediaPlaylist {
        match m3u8_rs::parse_playlist_res(bytes) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(playlist)) => playlist,
            other => panic!("not a media playlist: {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_uploaded_asset_becomes_ready_with_its_renditions_and_pictures() {
        let harness = Harness::start(&[]).await;
        let source_dir = tempfile::tempdir().unwrap();
        let source = clip(source_dir.path(), "5");
        let asset = harness.create_uploaded("upload_test1", &source).await;

        let ready = harness.settled(&asset.id).await;
        assert_eq!(ready.status, AssetStatus::Ready, "{:?}", ready.error);
        assert!(ready.playable);
        assert_eq!(ready.progress, 100);
        assert_eq!(ready.duration_ms.map(|ms| ms / 100), Some(50));
        assert_eq!(ready.tracks[0]["type"], "video");
        assert_eq!(ready.tracks[0]["width"], 320);
        assert_eq!(ready.tracks[1]["codec"], "aac");
        assert!(ready.source_metadata["container"]
            .as_str()
            .unwrap()
            .contains("mp4"));
        let renditions = ready.renditions.as_array().unwrap();
        assert_eq!(renditions.len(), 2);
        assert_eq!(renditions[0]["name"], "180p");
        assert_eq!(renditions[0]["codec"], "h264");
        assert_eq!(renditions[0]["height"], 180);
        assert_eq!(renditions[0]["uri"], "v0/index.m3u8");
        assert!(renditions[0]["bandwidth"].as_u64().unwrap() > 0);
        assert_eq!(renditions[1]["codec"], "aac");

        let prefix = format!("assets/{}", asset.id);
        let master = harness
            .object(&format!("{prefix}/hls/master.m3u8"))
            .await
            .expect("the master playlist");
        let master = String::from_utf8(master.to_vec()).unwrap();
        assert!(master.contains("v0/index.m3u8"), "{master}");
        assert!(master.contains("#EXT-X-I-FRAME-STREAM-INF:"), "{master}");
        for playlist in ["v0/index.m3u8", "v0/iframes.m3u8", "a0/index.m3u8"] {
            let bytes = harness
                .object(&format!("{prefix}/hls/{playlist}"))
                .await
                .unwrap_or_else(|| panic!("{playlist}"));
            let playlist = media(&bytes);
            assert!(playlist.end_list);
            for segment in &playlist.segments {
                let dir = if segment.uri.ends_with(".m4a") {
                    "a0"
                } else {
                    "v0"
                };
                assert!(harness
                    .object(&format!("{prefix}/hls/{dir}/{}", segment.uri))
                    .await
                    .is_some());
            }
        }
        for image in ["poster.jpg", "storyboard.jpg", "storyboard.vtt"] {
            assert!(
                harness
                    .object(&format!("{prefix}/images/{image}"))
                    .await
                    .is_some(),
                "{image}"
            );
        }
        assert_eq!(harness.event_types(&asset.id).await, ["asset.ready"]);
        let event = harness.db.list_events(100, None).await.unwrap().items;
        let ready_event = event
            .iter()
            .find(|e| e.event_type == "asset.ready")
            .unwrap();
        assert_eq!(ready_event.data["id"], asset.id.as_str());
        assert_eq!(ready_event.data["status"], "ready");
        assert_eq!(ready_event.data["playback_ids"][0]["policy"], "public");
        let jobs = harness.db.jobs_for_subject(&asset.id).await.unwrap();
        assert_eq!(jobs[0].status, JobStatus::Succeeded);
        assert!(
            harness.work_entries().is_empty(),
            "working files are removed"
        );
        harness.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn subtitles_asked_of_a_worker_without_speech_error_with_the_reason_and_the_asset_stays_ready(
    ) {
        let harness = Harness::start(&[]).await;
        let source_dir = tempfile::tempdir().unwrap();
        let source = clip(source_dir.path(), "2");
        let key = layout::upload_source("upload_speech").unwrap();
        harness.store.put_file(&key, &source).await.unwrap();
        let english = GeneratedSubtitles {
            language_code: "en".into(),
            name: "English (generated)".into(),
        };
        let asset = harness
            .create_with_subtitles(
                AssetInput::Upload {
                    upload_id: UploadId::parse("upload_speech").unwrap(),
                },
                vec![english],
            )
            .await;
        let ready = harness.settled(&asset.id).await;
        assert_eq!(ready.status, AssetStatus::Ready, "{:?}", ready.error);
        let mut track: Option<Transcript> = None;
        for _ in 0..600 {
            let tracks = harness.db.transcripts_of(&asset.id).await.unwrap();
            track = tracks
                .into_iter()
                .find(|track| track.status != TranscriptStatus::Preparing);
            if track.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let track = track.expect("the text track settles");
        assert_eq!(track.status, TranscriptStatus::Errored);
        assert_eq!(track.error.as_deref(), Some(NO_SPEECH));
        assert!(harness
            .event_types(&asset.id)
            .await
            .contains(&"asset.track.errored".to_owned()));
        let master = harness
            .object(&format!("assets/{}/hls/master.m3u8", asset.id))
            .await
            .unwrap();
        assert!(!String::from_utf8_lossy(&master).contains("SUBTITLES"));
        assert_eq!(
            harness
                .db
                .get_asset(&asset.id)
                .await
                .unwrap()
                .unwrap()
                .status,
            AssetStatus::Ready
        );
        harness.stop().await;
    }

    #[tokio::test]
    async fn a_text_file_errors_the_asset_at_once_and_leaves_nothing_behind() {
        let harness = Harness::start(&[]).await;
        let source_dir = tempfile::tempdir().unwrap();
        let text = source_dir.path().join("notes.txt");
        std::fs::write(&text, "These are meeting notes, not a video.\n".repeat(20)).unwrap();
        let asset = harness.create_uploaded("upload_text", &text).await;

        let errored = harness.settled(&asset.id).await;
        assert_eq!(errored.status, AssetStatus::Errored);
        assert_eq!(
            errored.error.as_deref(),
            Some("the source file cannot be used: not a media file: no known container format recognised")
        );
        assert!(!errored.playable);
        assert_eq!(harness.event_types(&asset.id).await, ["asset.errored"]);
        let jobs = harness.db.jobs_for_subject(&asset.id).await.unwrap();
        assert_eq!(jobs[0].status, JobStatus::Failed);
        assert_eq!(jobs[0].attempts, 1, "a bad input is not retried");
        assert!(
            harness.work_entries().is_empty(),
            "working files are removed"
        );
        assert!(harness
            .object(&format!("assets/{}/hls/master.m3u8", asset.id))
            .await
            .is_none());
        harness.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_url_is_imported_and_kept_and_a_private_one_is_refused() {
        let source_dir = tempfile::tempdir().unwrap();
        let source = clip(source_dir.path(), "3");
        let body: &'static [u8] = Vec::leak(std::fs::read(&source).unwrap());
        let app =
            axum::Router::new().route("/clip.mp4", axum::routing::get(move || async move { body }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let url = format!("http://{address}/clip.mp4");

        let refusing = Harness::start(&[]).await;
        let refused = refusing.create(AssetInput::Url { url: url.clone() }).await;
        let refused = refusing.settled(&refused.id).await;
        assert_eq!(
            refused.error.as_deref(),
            Some("the input URL resolves to a loopback address (127.0.0.1), which is not allowed")
        );
        refusing.stop().await;

        let allowing = Harness::start(&["127.0.0.1"]).await;
        let asset = allowing.create(AssetInput::Url { url }).await;
        let ready = allowing.settled(&asset.id).await;
        assert_eq!(ready.status, AssetStatus::Ready, "{:?}", ready.error);
        let kept = allowing
            .object(&format!("assets/{}/source", asset.id))
            .await
            .expect("the imported source is kept");
        assert_eq!(kept.len(), body.len());
        allowing.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deleting_an_asset_while_it_is_prepared_stops_the_work_and_removes_its_objects() {
        let harness = Harness::start(&[]).await;
        let source_dir = tempfile::tempdir().unwrap();
        let source = clip(source_dir.path(), "60");
        let asset = harness.create_uploaded("upload_long", &source).await;
        // Playable early: the master playlist exists long before the end.
        for _ in 0..600 {
            let now = harness.db.get_asset(&asset.id).await.unwrap().unwrap();
            if now.playable {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let playable = harness.db.get_asset(&asset.id).await.unwrap().unwrap();
        assert!(playable.playable);
        assert_eq!(playable.status, AssetStatus::Preparing);
        let master = harness
            .object(&format!("assets/{}/hls/master.m3u8", asset.id))
            .await
            .expect("the early master playlist");
        assert!(!master.is_empty());
        let v0 = harness
            .object(&format!("assets/{}/hls/v0/index.m3u8", asset.id))
            .await
            .unwrap();
        assert_eq!(
            media(&v0).playlist_type,
            Some(m3u8_rs::MediaPlaylistType::Event)
        );

        assert!(harness.db.delete_asset(&asset.id).await.unwrap());
        let objects = harness
            .dir
            .path()
            .join("objects/assets")
            .join(asset.id.as_str());
        for _ in 0..200 {
            if !objects.exists() && harness.work_entries().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(!objects.exists(), "the deleted asset's objects are removed");
        assert!(
            harness.work_entries().is_empty(),
            "working files are removed"
        );
        assert!(harness.event_types(&asset.id).await.is_empty());
        harness.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_shutting_down_puts_its_job_back_and_removes_its_output() {
        let harness = Harness::start(&[]).await;
        let source_dir = tempfile::tempdir().unwrap();
        let source = clip(source_dir.path(), "60");
        let asset = harness.create_uploaded("upload_stop", &source).await;
        for _ in 0..600 {
            if harness
                .db
                .get_asset(&asset.id)
                .await
                .unwrap()
                .unwrap()
                .playable
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let db = harness.db.clone();
        let objects = harness
            .dir
            .path()
            .join("objects/assets")
            .join(asset.id.as_str());
        let work = harness.dir.path().join("work");
        let _dir = harness.dir.path().to_owned();
        let Harness {
            _database,
            dir,
            stop,
            running,
            ..
        } = harness;
        stop.send(true).unwrap();
        running.await.unwrap();

        let stopped = db.get_asset(&asset.id).await.unwrap().unwrap();
        assert_eq!(stopped.status, AssetStatus::Preparing);
        assert!(!stopped.playable, "its playlists are gone");
        assert!(!objects.join("hls").exists());
        assert!(std::fs::read_dir(&work).map_or(true, |mut e| e.next().is_none()));
        let jobs = db.jobs_for_subject(&asset.id).await.unwrap();
        assert_eq!(
            jobs[0].status,
            JobStatus::Queued,
            "queued again, due at once"
        );
        assert_eq!(jobs[0].last_error.as_deref(), Some(INTERRUPTED));
        assert!(jobs[0].run_after <= chrono::Utc::now());
        drop(dir);
    }
}
