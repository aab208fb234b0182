//! Video on demand on the server side: packaging a file transcode into an HLS tree
//! ([`package`]), written to a local directory or the object store, and importing a source
//! from a URL without reaching into private networks ([`import`]).

pub mod import;
pub mod package;
