//! The HTTP side of the metrics: the middleware timing every request into the server's
//! [`Metrics`] and `GET /metrics` serving them in the OpenMetrics text format (the series are
//! listed in `sluice_storage::metrics`).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sluice_storage::Metrics;

use crate::AppState;

/// Content type of the OpenMetrics text format `prometheus-client` writes.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Route label of requests no route matched (the 404 fallback): one series for all of them.
const UNMATCHED_ROUTE: &str = "unmatched";

/// Middleware timing every request. It runs inside routing, so the matched route template is
/// known; requests that matched no route share one series.
pub(crate) async fn record_http(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    metrics.observe_request(
        method.as_str(),
        route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Prometheus metrics in the OpenMetrics text format. Unauthenticated, like most exporters:
/// keep the HTTP port off the public internet or filter `/metrics` at the proxy.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Every series in the OpenMetrics text format",
        content_type = "application/openmetrics-text", body = String)))]
pub(crate) async fn serve(State(state): State<AppState>) -> Response {
    let (live_streams, assets) = state.viewers.totals(std::time::Instant::now());
    state.metrics.viewers(live_streams, assets);
    let mut response = state.metrics.encode().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
    );
    response
}
