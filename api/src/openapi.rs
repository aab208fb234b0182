//! The parts of the OpenAPI document that no route carries: title, version, servers and the
//! security schemes. Paths and schemas come from each handler's `#[utoipa::path]`.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};

/// Security scheme names; routes refer to them as `security(("api_key" = []), ("jwt" = []))`.
const API_KEY_AUTH: &str = "api_key";
const JWT_AUTH: &str = "jwt";
/// Between nodes: HMAC-SHA256 of a fixed label under the shared master key, as a Bearer token.
const NODE_TOKEN_AUTH: &str = "node_token";

/// The document every route is merged into.
pub fn base() -> OpenApi {
    let mut spec = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Sluice API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Live streams, sessions, playback and events of a Sluice server. \
                     Authenticate with HTTP Basic `key_id:secret` or a Bearer JWT signed \
                     HS256 with the key's secret; each route needs one permission of the key \
                     (`admin`, `live:read`, `live:write`, `assets:read`, `assets:write`, \
                     `events:read`, `rooms:read`, `rooms:write`), else 403.",
                ))
                .build(),
        )
        .build();
    let components = spec.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        API_KEY_AUTH,
        SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
    );
    components.add_security_scheme(
        JWT_AUTH,
        SecurityScheme::Http(
            utoipa::openapi::security::HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    components.add_security_scheme(
        NODE_TOKEN_AUTH,
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    spec
}
