//! Video on demand on the server side: packaging a file transcode into an HLS tree
//! ([`package`]), written to a local directory or the object store.

pub mod package;
