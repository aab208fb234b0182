//! The web console and the player page: static files from the repository's `console/` folder,
//! embedded in the binary (release builds; debug builds read the folder at request time, so
//! the pages can be edited without rebuilding).
//!
//! - `/`: the console, a single page that signs in with an API key and calls the public `/v1`
//!   API with it, so it can do nothing the key cannot;
//! - `/console/{path}`: its scripts, styles and the vendored hls.js;
//! - `/play/{playback_id}`: the player page, embeddable in any site's iframe;
//! - `/rooms/{id}/join`: the room join page, on the vendored `livekit-client`.
//!
//! Files are revalidated on every load (`no-cache` with an `ETag` from the embedded file's
//! hash, so an unchanged file costs a `304`): their names carry no version, and a new binary
//! must never leave a browser running an old script against a new API. The pages load from
//! this server only, except the media their players fetch from the object store's origin when
//! it plays back from a public base URL or presigned redirects. The console's pages may not be
//! framed by other sites (`frame-ancestors 'none'`), the player's may.

use std::borrow::Cow;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rust_embed::RustEmbed;
use sluice_storage::{ObjectKey, ObjectStore};

use crate::error::ApiError;
use crate::AppState;

#[derive(RustEmbed)]
#[folder = "../console"]
struct ConsoleFiles;

/// Who may frame a page: nobody for the console (it holds an API key), anyone for the player.
#[derive(Clone, Copy)]
enum Framing {
    Nobody,
    Anyone,
}

/// What is served: a page (with what its content security policy needs: who may frame it, and
/// the media origins its players may fetch from besides this server) or a file a page loads.
#[derive(Clone, Copy)]
enum Page<'a> {
    Html(Framing, &'a str),
    Asset,
}

/// The console's single page.
#[utoipa::path(get, path = "/", tag = "console",
    responses((status = 200, description = "The web console", content_type = "text/html")))]
pub async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let media = media_origins(&*state.store).await;
    serve_file("index.html", &headers, Page::Html(Framing::Nobody, &media))
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
    serve_file(&path, &headers, Page::Asset)
}

/// The player page of a playback id; it passes a `?token=` on to every request it makes.
#[utoipa::path(get, path = "/play/{playback_id}", tag = "console",
    params(
        ("playback_id" = String, Path, description = "Playback id of a live stream or asset"),
        ("token" = Option<String>, Query, description = "Playback token, for a `signed` playback id"),
    ),
    responses((status = 200, description = "The player page", content_type = "text/html")))]
pub async fn player(
    State(state): State<AppState>,
    Path(_playback_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let media = media_origins(&*state.store).await;
    serve_file("play.html", &headers, Page::Html(Framing::Anyone, &media))
}

/// The room join page: joins with LiveKit's client SDK (vendored) using the `?token=` given,
/// or asks for one.
#[utoipa::path(get, path = "/rooms/{room_id}/join", tag = "console",
    params(
        ("room_id" = String, Path, description = "The room's id"),
        ("token" = Option<String>, Query, description = "A room access token (`POST /v1/rooms/{id}/tokens`)"),
    ),
    responses((status = 200, description = "The join page", content_type = "text/html")))]
pub async fn room_join(Path(_room_id): Path<String>, headers: HeaderMap) -> Response {
    serve_file("join.html", &headers, Page::Html(Framing::Anyone, ""))
}

/// The origins besides this server's that players fetch media from, each after a space: the
/// object store's public base URL (a CDN) or the endpoint its presigned redirects point at;
/// empty when segments are proxied. Worked out from a made-up key; presigning computes, it
/// asks no server.
async fn media_origins(store: &dyn ObjectStore) -> String {
    let Ok(probe) = ObjectKey::parse("console/probe") else {
        return String::new();
    };
    let redirect = store.redirect_url(&probe).await.ok().flatten();
    [store.public_url(&probe), redirect]
        .into_iter()
        .flatten()
        .filter_map(|url| url::Url::parse(&url).ok())
        .map(|url| url.origin().ascii_serialization())
        .filter(|origin| origin != "null")
        .map(|origin| format!(" {origin}"))
        .collect()
}

fn serve_file(path: &str, request: &HeaderMap, page: Page) -> Response {
    let Some(file) = ConsoleFiles::get(path) else {
        return ApiError::NotFound("not found").into_response();
    };
    // Weak: the same file may go out gzipped or not.
    let etag = format!("W/\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = match file.data {
            Cow::Borrowed(embedded) => Bytes::from_static(embedded),
            Cow::Owned(read) => Bytes::from(read),
        };
        ([(header::CONTENT_TYPE, content_type(path))], body).into_response()
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
    if let Page::Html(framing, media) = page {
        if let Ok(security) = HeaderValue::try_from(content_security(framing, media)) {
            headers.insert(header::CONTENT_SECURITY_POLICY, security);
        }
    }
    response
}

/// A page's content security policy: this server only, and `media` (origins, each after a
/// space) for what its players fetch.
fn content_security(framing: Framing, media: &str) -> String {
    let frame_ancestors = match framing {
        Framing::Nobody => "'none'",
        Framing::Anyone => "*",
    };
    format!(
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:{media}; \
         worker-src 'self' blob:; style-src 'self'; script-src 'self'; \
         connect-src 'self'{media}; base-uri 'none'; form-action 'self'; \
         frame-ancestors {frame_ancestors}"
    )
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
        let page = Page::Html(Framing::Nobody, "");
        let first = serve_file("index.html", &HeaderMap::new(), page);
        let etag = first.headers()[header::ETAG].clone();
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, etag);
        let again = serve_file("index.html", &request, page);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    #[test]
    fn only_the_player_may_be_framed_by_other_sites() {
        assert!(content_security(Framing::Nobody, "").ends_with("frame-ancestors 'none'"));
        assert!(content_security(Framing::Anyone, "").ends_with("frame-ancestors *"));
    }

    #[test]
    fn players_may_fetch_media_from_the_stores_origin_and_nowhere_else() {
        let policy = content_security(Framing::Anyone, " https://cdn.example");
        assert!(
            policy.contains("connect-src 'self' https://cdn.example;"),
            "{policy}"
        );
        assert!(
            policy.contains("media-src 'self' blob: https://cdn.example;"),
            "{policy}"
        );
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(policy.contains("default-src 'self';"), "{policy}");
    }

    #[test]
    fn only_pages_carry_a_content_security_policy() {
        let script = serve_file("app.js", &HeaderMap::new(), Page::Asset);
        assert!(script
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .is_none());
        let page = serve_file(
            "index.html",
            &HeaderMap::new(),
            Page::Html(Framing::Nobody, ""),
        );
        assert!(page
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .is_some());
    }
}
