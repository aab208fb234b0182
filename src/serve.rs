//! `sluice serve`: opens the database and object store, makes sure an API key exists, and runs
//! the HTTP server, the RTMP listener, the webhook dispatcher, the sweeper timing out expired
//! uploads, the trimmer handing freed memory back ([`crate::memory`]) and (unless
//! `[worker] enabled = false`) the asset worker until SIGINT/SIGTERM; with
//! `--role api|ingest|worker` only that part (docs/DEPLOYMENT.md), beside other processes on
//! the same database and object store whose events it follows. On
//! shutdown, live sessions end first (their playlists get `#EXT-X-ENDLIST`, their session rows
//! an end time) and the worker puts the jobs it was running back on the queue, then event
//! streams and the webhook dispatcher, then HTTP.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use sluice_storage::{
    redact_database_url, Db, EventBus, LocalStore, ObjectStore, Permission, S3Store, SecretBox,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use sluice_assets::recording::Recorder;
use sluice_assets::worker::Worker;
use sluice_assets::AssetEvents;
use sluice_live::address_policy::AddressPolicy;
use sluice_live::whip::WhipService;
use sluice_live::LiveService;
use sluice_transcribe::{Moonshine, Speech, SpeechEngine};

use crate::config::{Config, Role};
use crate::event_views::{ApiAssetViews, ApiEventViews};
use crate::low_latency::{LiveLowLatency, RemoteLowLatency, RoutedLowLatency};
use crate::webhooks::WebhookDispatcher;

/// The master key sealing API key secrets: SLUICE_MASTER_KEY, else `data_dir/master.key`
/// (created at first start).
fn master_key(config: &Config) -> anyhow::Result<SecretBox> {
    match &config.master_key {
        Some(key) => SecretBox::from_base64(key).context("SLUICE_MASTER_KEY"),
        None => {
            let path = config.data_dir.join("master.key");
            SecretBox::load_or_create(&path)
                .with_context(|| format!("master key file {}", path.display()))
        }
    }
}

/// Opens and migrates the database in the data directory, sealing API key secrets with the
/// master key, and checks that this master key opens the secrets already stored.
pub async fn open_database(config: &Config) -> anyhow::Result<Db> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let secret_box = master_key(config)?;
    let database_url = config.database_url();
    let shown_url = redact_database_url(&database_url);
    let db = Db::connect(&database_url)
        .await
        .with_context(|| format!("opening database {shown_url}"))?
        .with_secret_box(secret_box);
    info!(backend = %db.engine().name(), url = %shown_url, "Metadata database opened.");
    db.migrate().await.context("migrating the database")?;
    db.check_master_key().await.context(
        "the master key (SLUICE_MASTER_KEY or master.key in the data directory) is not the one \
         the stored API key secrets were sealed with",
    )?;
    Ok(db)
}

/// Opens the object store: the S3 bucket of `[storage]`/`--storage`, after a health check
/// that fails with a message naming the problem (missing bucket, denied credentials,
/// unreachable endpoint), or the files under `data_dir/objects`.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let Some(s3) = config.storage.s3()? else {
        let root = config.data_dir.join("objects");
        info!(root = %root.display(), "Objects are stored as local files.");
        return Ok(Arc::new(LocalStore::new(root)));
    };
    let (bucket, prefix) = (s3.bucket.clone(), s3.prefix.clone());
    let store = S3Store::connect(s3).await?;
    store
        .check()
        .await
        .context("the object store cannot be used")?;
    info!(bucket = %bucket, prefix = prefix.as_ref().map_or("", |p| p.as_str()),
        playback = ?config.storage.playback, "Objects are stored in S3.");
    Ok(Arc::new(store))
}

/// Whether a process without the API (roles `ingest` and `worker`) listens for HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationsHttp {
    /// It serves `/healthz`, `/readyz` and `/metrics` on the HTTP address.
    Serve,
    /// It opens no HTTP port (`sluice worker`, which shares the configuration of a `serve`
    /// on the same machine and so its HTTP address).
    Off,
}

/// Runs the parts of the server that `config.role` names until a shutdown signal arrives.
pub async fn run(config: Config, operations_http: OperationsHttp) -> anyhow::Result<()> {
    let role = config.role;
    let db = open_database(&config).await?;
    // Only a process running everything knows that no other process holds live sessions.
    if role == Role::All {
        let stale = db.reset_stale_active_streams().await?;
        if stale > 0 {
            info!(
                streams = stale,
                "Marked live streams left active by an earlier run as idle."
            );
        }
    }
    let store = open_store(&config).await?;
    if role.serves_api() {
        bootstrap_api_key(&config, &db).await?;
    }
    let events = EventBus::new(db.clone());
    let follower = events
        .follow_other_processes()
        .await
        .context("following the events of other processes")?;
    let metrics = sluice_storage::Metrics::new();

    let http = match role.serves_api() || operations_http == OperationsHttp::Serve {
        true => Some(
            TcpListener::bind(config.http)
                .await
                .with_context(|| format!("binding HTTP to {}", config.http))?,
        ),
        false => None,
    };
    let rtmp = match role.ingests() {
        true => Some(
            TcpListener::bind(config.rtmp)
                .await
                .with_context(|| format!("binding RTMP to {}", config.rtmp))?,
        ),
        false => None,
    };
    info!(
        role = role.name(),
        http = %http.as_ref().map_or("off".to_owned(), |_| config.http.to_string()),
        rtmp = %rtmp.as_ref().map_or("off".to_owned(), |_| config.rtmp.to_string()),
        public_url = %config.public_url(),
        "Sluice is running."
    );

    let asset_events = AssetEvents::new(
        db.clone(),
        events.clone(),
        Arc::new(ApiAssetViews {
            public_url: config.public_url(),
        }),
    );
    let restream_settings = config.restream.settings()?;
    let simulcast_url_validator = simulcast_url_validator(restream_settings.addresses.clone());
    let speech_unavailable: Option<Arc<str>> = config.transcription.unavailable().map(Arc::from);
    if let Some(reason) = &speech_unavailable {
        warn!("Generated subtitles and live captions are off: {reason}");
    }
    let speech = Arc::new(match &speech_unavailable {
        Some(reason) => Speech::unavailable(reason.to_string()),
        None => {
            let library_dir = config.transcription.library_dir.clone();
            Speech::new(move || {
                let engine = Moonshine::load(&library_dir).map_err(|e| {
                    error!(error = %e, "Speech recognition cannot be loaded; generated subtitles and live captions error.");
                    e.to_string()
                })?;
                info!(library_dir = %library_dir.display(), "Speech recognition loaded.");
                Ok(Arc::new(engine) as Arc<dyn SpeechEngine>)
            })
        }
    });
    let (stop, stopping) = watch::channel(false);
    let packager_url = config.internal_url();
    if role == Role::Ingest && packager_url.is_none() {
        warn!("No internal_url (SLUICE_INTERNAL_URL) and the HTTP address binds every interface: api nodes cannot reach this node, so they serve its low-latency streams as regular HLS.");
    }
    let live = role.ingests().then(|| {
        LiveService::new(
            db.clone(),
            store.clone(),
            events.clone(),
            metrics.clone(),
            config.live.clone(),
            restream_settings,
            Arc::new(ApiEventViews {
                db: db.clone(),
                rtmp_url: config.rtmp_public_url(),
                public_url: config.public_url(),
            }),
            Arc::new(Recorder {
                db: db.clone(),
                store: store.clone(),
                events: asset_events.clone(),
            }),
            stopping.clone(),
            packager_url,
            speech.clone(),
        )
    });
    if let Some(live) = &live {
        live.recover(role == Role::All).await;
    }
    // WHIP offers arrive over HTTP and their media joins this process's live sessions: only a
    // process that both serves the API and ingests takes them (others answer 503).
    let whip = match (&live, config.whip.enabled && role.serves_api()) {
        (Some(live), true) => Some(
            WhipService::start(
                live.clone(),
                &config.whip,
                config.whip_udp_addr(),
                stopping.clone(),
            )
            .await?,
        ),
        _ => None,
    };
    // Rooms signal over the API's WebSocket: only a process that serves the API runs them.
    let rooms = if config.rooms.enabled && role.serves_api() {
        let bind = config.rooms_udp_addr();
        let socket = tokio::net::UdpSocket::bind(bind).await.map_err(|e| {
            anyhow::anyhow!("binding room media UDP to {bind} ([rooms] udp_port): {e}")
        })?;
        let settings = sluice_rooms::RoomsSettings {
            auto_create: config.rooms.auto_create,
            candidate: sluice_live::whip::announced_address(
                config.rooms.public_ip,
                socket.local_addr()?,
            ),
            max_participants: config.rooms.max_participants,
            node_url: config.internal_url().unwrap_or_else(|| config.public_url()),
        };
        Some(
            sluice_rooms::Rooms::start(
                db.clone(),
                events.clone(),
                socket,
                settings,
                live.clone(),
                speech.clone(),
                stopping.clone(),
            )
            .await?,
        )
    } else {
        None
    };
    let packaged_here = live.as_ref().map(|live| LiveLowLatency(live.low_latency()));
    let node_token: Option<Arc<str>> = db.node_token().map(Arc::from);
    let state = sluice_api::AppState {
        db: db.clone(),
        store: store.clone(),
        events: events.clone(),
        public_url: config.public_url(),
        rtmp_url: config.rtmp_public_url(),
        simulcast_url_validator,
        metrics: metrics.clone(),
        jwt_audience: config.auth.jwt_audience.clone(),
        jwt_max_lifetime_s: config.auth.jwt_max_lifetime_s,
        uploads: sluice_api::Uploads::new(config.uploads.settings(&config.data_dir)),
        images: Some(crate::images::images(&config.data_dir)),
        whip: whip
            .clone()
            .map(|whip| whip as Arc<dyn sluice_ingest::whip::WhipIngest>),
        low_latency: match (role.serves_api(), &node_token) {
            (true, Some(node_token)) => Some(Arc::new(RoutedLowLatency {
                local: packaged_here.clone(),
                remote: RemoteLowLatency::new(db.clone(), node_token.clone())?,
            }) as Arc<dyn sluice_api::LowLatencyHls>),
            _ => packaged_here
                .clone()
                .map(|local| Arc::new(local) as Arc<dyn sluice_api::LowLatencyHls>),
        },
        packaged_here: packaged_here
            .map(|local| Arc::new(local) as Arc<dyn sluice_api::LowLatencyHls>),
        node_token,
        playback_ids: sluice_api::PlaybackIds::default(),
        viewers: sluice_api::Viewers::default(),
        speech_unavailable: speech_unavailable.clone(),
        rooms: rooms.map(|rooms| rooms as Arc<dyn sluice_rooms::RoomControl>),
        // Room clients connect over WebSocket to the public URL: http becomes ws, https wss.
        rooms_ws_url: {
            let public_url = config.public_url();
            match public_url.strip_prefix("https://") {
                Some(rest) => format!("wss://{rest}"),
                None => format!(
                    "ws://{}",
                    public_url.strip_prefix("http://").unwrap_or(&public_url)
                ),
            }
        },
    };
    crate::memory::spawn_trimmer();
    let upload_sweeper = role
        .serves_api()
        .then(|| sluice_api::spawn_upload_sweeper(state.clone(), stopping.clone()));
    let webhooks = match role.serves_api() {
        true => Some(tokio::spawn(
            WebhookDispatcher::new(
                db.clone(),
                events.clone(),
                config.webhooks.clone(),
                metrics.clone(),
                stopping.clone(),
            )
            .context("building the webhook HTTP client")?
            .run(),
        )),
        false => None,
    };
    let worker = match role.runs_worker(&config.worker) {
        true => {
            let importer = config.import.importer(config.worker.max_file_size)?;
            let worker = Worker::new(
                db.clone(),
                store.clone(),
                asset_events.clone(),
                config.worker.clone(),
                importer,
                config.data_dir.join("work"),
                speech.clone(),
            );
            Some(tokio::spawn(worker.run(stopping.clone())))
        }
        false => None,
    };
    let live = live
        .zip(rtmp)
        .map(|(live, rtmp)| tokio::spawn(live.run(rtmp)));
    let app = match role.serves_api() {
        true => sluice_api::router(state),
        false => sluice_api::operations_router(state),
    };
    let mut http_server = http.map(|http| {
        tokio::spawn(crate::http_server::serve(
            http,
            app,
            config.http_server.clone(),
            stopping,
        ))
    });
    let http_ended = async {
        match &mut http_server {
            Some(server) => server.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = shutdown_signal() => {}
        result = http_ended => {
            result.context("HTTP server task")?;
            anyhow::bail!("the HTTP server stopped on its own");
        }
    }
    // Live sessions end their playlists and session rows first (their events still reach the
    // outbox), then event streams close so HTTP can stop.
    let _ = stop.send(true);
    if let Some(live) = live {
        live.await.context("RTMP listener task")?;
    }
    if let Some(whip) = whip {
        whip.finish().await;
    }
    if let Some(worker) = worker {
        worker.await.context("asset worker task")?;
    }
    if let Some(upload_sweeper) = upload_sweeper {
        upload_sweeper.await.context("upload sweeper task")?;
    }
    events.close();
    follower.await.context("event follower task")?;
    if let Some(webhooks) = webhooks {
        webhooks.await.context("webhook dispatcher task")?;
    }
    if let Some(http_server) = http_server {
        http_server.await.context("HTTP server task")?;
    }
    info!("Sluice stopped.");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                error!(error = %e, "Cannot listen for SIGTERM.");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    info!("Shutting down.");
}

/// Makes sure an API key exists: the one from the environment, or a new one printed once.
async fn bootstrap_api_key(config: &Config, db: &Db) -> anyhow::Result<()> {
    if let Some((key, secret)) = &config.api_key {
        let api_key = db
            .insert_api_key(key, secret, "from SLUICE_API_KEY")
            .await?;
        match api_key.revoked_at {
            None => info!(api_key = %key, "Using the API key from SLUICE_API_KEY."),
            Some(revoked_at) => warn!(
                api_key = %key,
                revoked_at = %revoked_at.to_rfc3339(),
                "The API key in SLUICE_API_KEY is revoked and stays revoked: requests with it \
                 are refused. Configure another key, or create one with `sluice keys create`."
            ),
        }
        return Ok(());
    }
    let key_file = config.data_dir.join("api-key.txt");
    if db.count_api_keys().await? > 0 {
        info!(file = %key_file.display(), "API keys exist; the first one was stored at first start.");
        return Ok(());
    }
    let (api_key, secret) = db.create_api_key("first key", &[Permission::Admin]).await?;
    let key = api_key.id;
    let public_url = config.public_url();
    let rtmp_url = config.rtmp_public_url();
    let text = format!("SLUICE_API_KEY={key}\nSLUICE_API_SECRET={secret}\n");
    write_private_file(&key_file, &text)?;
    println!(
        "\n\
         ==================================================================\n \
         Sluice created your API key (stored in {file}):\n\n   \
           key:    {key}\n   \
           secret: {secret}\n\n \
         Create a live stream:\n\n   \
           curl -u {key}:{secret} -H 'content-type: application/json' \\\n     \
             -d '{{\"name\": \"my first stream\"}}' {public_url}/v1/live-streams\n\n \
         OBS: Settings > Stream > Service: Custom\n   \
           Server:     {rtmp_url}\n   \
           Stream key: the \"stream_key\" of the live stream created above\n\
         ==================================================================\n",
        file = key_file.display(),
    );
    Ok(())
}

fn write_private_file(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// The API's check of simulcast target URLs: the restreamer's own resolution of the target
/// under `addresses` (`[restream] allow_hosts`).
fn simulcast_url_validator(addresses: AddressPolicy) -> sluice_api::SimulcastUrlValidator {
    let addresses = Arc::new(addresses);
    Arc::new(move |url: String| {
        let addresses = addresses.clone();
        Box::pin(async move {
            sluice_live::restream::resolve_target(&addresses, &url)
                .await
                .map(drop)
        })
    })
}
