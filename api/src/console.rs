//! The web console and the player page: static files from the repository's `console/` folder,
//! embedded in the binary (release builds; debug builds read the folder at request time, so
//! the pages can be edited without rebuilding).
//!
//! - `/`: the console, a single page that signs in with an API key and calls the public `/v1`
//!   API with it, so it can do nothing the key cannot;
//! - `/console/{path}`: its scripts, styles and the vendored hls.js;
//! - `/play/{playback_id}`: the player page, embeddable in any site's iframe.
//!
//! Files are revalidated on every load (`no-cache` with an `ETag` from the embedded file's
//! hash, so an unchanged file costs a `304`): their names carry no version, and a new binary
//! must never leave a browser running an old script against a new API. The console's pages
//! may not be framed by other sites (`frame-ancestors 'none'`), the player's may.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::ApiError;

#[derive(RustEmbed)]
#[folder = "../console"]
struct ConsoleFiles;

/// Where the pages may load from: this server only (hls.js runs its transmuxer in a worker
/// made from a `blob:` URL and feeds media through `blob:` object URLs).
const CONTENT_SECURITY: &str = "default-src 'self'; img-src 'self' data: blob:; \
    media-src 'self' blob:; worker-src 'self' blob:; style-src 'self'; script-src 'self'; \
    connect-src 'self'; base-uri 'none'; form-action 'self'";

/// Who may frame a page: nobody for the console (it holds an API key), anyone for the player.
#[derive(Clone, Copy)]
enum Framing {
    Nobody,
    Anyone,
}

/// The console's single page.
#[utoipa::path(get, path = "/", tag = "console",
    responses((status = 200, description = "The web console", content_type = "text/html")))]
pub async fn index(headers: HeaderMap) -> Response {
    serve_file("index.html", &headers, Framing::Nobody)
}

/// A script, style sheet or other file of the console.
#[utoipa::path(get, path = "/console/{*path}", tag = "console",
    params(("path" = String, Path, description = "A file of the console, e.g. `app.js`")),
    responses(
        (status = 200, description = "The file"),
        (status = 304, description = "The copy the browser has is current"),
        (status = 404, description = "No such file", body = crate::error::ErrorBody),
    ))]
pub async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    // The pages themselves are served at their own routes, with their framing rules.
    if path.ends_with(".html") {
        return ApiError::NotFound("not found").into_response();
    }
    serve_file(&path, &headers, Framing::Nobody)
}

/// The player page of a playback id; it passes a `?token=` on to every request it makes.
#[utoipa::path(get, path = "/play/{playback_id}", tag = "console",
    params(
        ("playback_id" = String, Path, description = "Playback id of a live stream or asset"),
        ("token" = Option<String>, Query, description = "Playback token, for a `signed` playback id"),
    ),
    responses((status = 200, description = "The player page", content_type = "text/html")))]
pub async fn player(Path(_playback_id): Path<String>, headers: HeaderMap) -> Response {
    serve_file("play.html", &headers, Framing::Anyone)
}

fn serve_file(path: &str, request: &HeaderMap, framing: Framing) -> Response {
    let Some(file) = ConsoleFiles::get(path) else {
        return ApiError::NotFound("not found").into_response();
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, content_type(path))],
            file.data.into_owned(),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(etag) = HeaderValue::try_from(etag) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    let frame_ancestors = match framing {
        Framing::Nobody => "'none'",
        Framing::Anyone => "*",
    };
    if let Ok(security) = HeaderValue::try_from(format!(
        "{CONTENT_SECURITY}; frame-ancestors {frame_ancestors}"
    )) {
        headers.insert(header::CONTENT_SECURITY_POLICY, security);
    }
    response
}

/// The media type of a console file, from its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("md" | "txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_file_has_a_known_media_type() {
        for path in ConsoleFiles::iter() {
            if path.ends_with("README.md") {
                continue;
            }
            assert_ne!(
                content_type(&path),
                "application/octet-stream",
                "{path} has no media type"
            );
        }
    }

    #[test]
    fn the_console_and_player_pages_are_embedded() {
        assert!(ConsoleFiles::get("index.html").is_some());
        assert!(ConsoleFiles::get("play.html").is_some());
    }

    #[test]
    fn an_unchanged_file_is_answered_not_modified() {
        let first = serve_file("index.html", &HeaderMap::new(), Framing::Nobody);
        let etag = first.headers()[header::ETAG].clone();
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, etag);
        let again = serve_file("index.html", &request, Framing::Nobody);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn only_the_player_may_be_framed_by_other_sites() {
        let console = serve_file("index.html", &HeaderMap::new(), Framing::Nobody);
        let player = serve_file("play.html", &HeaderMap::new(), Framing::Anyone);
        let policy = |response: &Response| {
            response.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .to_owned()
        };
        assert!(policy(&console).ends_with("frame-ancestors 'none'"));
        assert!(policy(&player).ends_with("frame-ancestors *"));
    }
}
