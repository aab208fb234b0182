//! Video on demand on the server side: packaging a file transcode into an HLS tree
//! ([`package`]), written to a local directory or the object store; importing a source from
//! a URL without reaching into private networks ([`import`]); and the worker that turns
//! assets into HLS renditions, a poster and a storyboard ([`worker`]), run inside
//! `sluice serve` (roles `all` and `worker`) or alone as `sluice worker`; and making assets of
//! recorded live sessions ([`recording`]).

pub mod import;
pub mod package;
pub mod recording;
pub mod worker;

use std::sync::Arc;

use sluice_storage::{Db, EventBus, ObjectStore};

use crate::config::Config;

/// The asset worker of `config`, on `db`, `store` and `events`: working copies go under
/// `<data_dir>/work`.
pub fn worker(
    config: &Config,
    db: Db,
    store: Arc<dyn ObjectStore>,
    events: EventBus,
) -> anyhow::Result<worker::Worker> {
    let importer = config.import.importer(config.worker.max_file_size)?;
    Ok(worker::Worker::new(
        db,
        store,
        events,
        config.worker.clone(),
        importer,
        config.data_dir.join("work"),
        config.public_url(),
    ))
}
