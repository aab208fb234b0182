//! sluice-assets: video on demand, the asset side of the server. Packaging a file transcode
//! into an HLS tree ([`package`]), written to a local directory or the object store;
//! importing a source from a URL without reaching into private networks ([`import`]); the
//! worker that turns assets into HLS renditions, a poster and a storyboard ([`worker`]), run
//! inside `sluice serve` (roles `all` and `worker`) or alone as `sluice worker`; and making
//! assets of recorded live sessions ([`recording`], the live core's
//! [`sluice_live::Recordings`]).
//!
//! Its `asset.*` events show the asset in the API's form through [`AssetViews`], which the
//! binary fills in; the asset side never depends on the HTTP crate.

pub mod config;
mod events;
pub mod import;
pub mod package;
pub mod recording;
pub mod worker;

pub use events::{AssetEvents, AssetViews};
