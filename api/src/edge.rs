//! The server's edge: what every request passes through before its route, in one tower
//! layer: its request id (the caller's `X-Request-Id`, else one made here) on the request
//! and the response, a tracing span that carries the id, the request metrics (count and
//! latency by method, route family and status), the headers a browser may read, and an
//! error line for every server error.
//!
//! One layer in place of five (tower-http's request-id pair and trace layer, and two axum
//! closures): each of those cloned and boxed its part of the stack per request, and the
//! trace layer entered its span at every poll of the body too; the create load spent
//! ≈ 13% of the server's CPU in them (docs/BENCHMARKS.md, "2026-12-04, evening").

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::response::Response;
use metrics::{counter, histogram};
use tower::{Layer, Service};
use tracing::Instrument;

/// The request id header (set when absent, echoed back).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// `Access-Control-Expose-Headers`, listed with ", " between names: the Parse JS SDK
/// splits the value on ", " and passes each piece to `Headers.has`, which throws on a
/// name with a comma in it (tower-http's CORS layer joins with a bare ","), failing every
/// successful request.
const EXPOSE_HEADERS: &str = "x-ledger-seq, x-request-id, location";

/// The edge, as a layer for the router.
#[derive(Clone, Default)]
pub(crate) struct EdgeLayer {
    ids: RequestIds,
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            ids: self.ids.clone(),
        }
    }
}

/// The edge around one service (see the module doc).
#[derive(Clone)]
pub(crate) struct Edge<S> {
    inner: S,
    ids: RequestIds,
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let start = Instant::now();
        let method = method_label(req.method());
        let family = route_family(req.uri().path());
        let id = match req.headers().get(REQUEST_ID_HEADER) {
            Some(id) => id.clone(),
            None => {
                let id = self.ids.next();
                req.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
                id
            }
        };
        let span = tracing::info_span!(
            "request",
            id = id.to_str().unwrap_or("-"),
            method = req.method().as_str(),
            path = req.uri().path()
        );
        // The service that was made ready is the one called; a clone waits for next time.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let answer = inner.call(req).instrument(span.clone());
        Box::pin(async move {
            let Ok(mut resp) = answer.await;
            let status = resp.status();
            let latency = start.elapsed();
            if status.is_server_error() {
                span.in_scope(|| {
                    tracing::error!(
                        status = status.as_u16(),
                        latency_ms = latency.as_secs_f64() * 1e3,
                        "request failed"
                    )
                });
            }
            counter!("http_requests_total", "method" => method, "route" => family, "status" => status.as_str().to_string())
                .increment(1);
            histogram!("http_request_duration_seconds", "method" => method, "route" => family)
                .record(latency.as_secs_f64());
            let headers = resp.headers_mut();
            if !headers.contains_key(REQUEST_ID_HEADER) {
                headers.insert(REQUEST_ID_HEADER, id);
            }
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
            Ok(resp)
        })
    }
}

/// Request ids: a per-process random prefix and a counter.
#[derive(Clone, Default)]
struct RequestIds(Arc<AtomicU64>);

impl RequestIds {
    fn next(&self) -> HeaderValue {
        static PREFIX: OnceLock<String> = OnceLock::new();
        let prefix = PREFIX.get_or_init(|| {
            let mut b = [0u8; 4];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
            hex::encode(b)
        });
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        // Hex digits, a dash and decimal digits: always a valid header value.
        HeaderValue::from_str(&format!("{prefix}-{n}"))
            .unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

/// A bounded label for a method: an extension method a client made up is `other`, so that
/// requests cannot add series to the metrics at will.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A bounded label for a path: `/parse/classes/X/id` → `parse/classes`.
fn route_family(path: &str) -> &'static str {
    let mut parts = path.split('/').filter(|s| !s.is_empty());
    match (parts.next(), parts.next()) {
        (Some("parse"), Some("classes")) => "parse/classes",
        (Some("parse"), Some("users")) => "parse/users",
        (Some("parse"), Some("login")) => "parse/login",
        (Some("parse"), Some("logout")) => "parse/logout",
        (Some("parse"), Some("batch")) => "parse/batch",
        (Some("parse"), Some("schemas")) => "parse/schemas",
        (Some("parse"), _) => "parse/other",
        (Some("ledger"), _) => "ledger",
        (Some("health"), _) => "health",
        (Some("metrics"), _) => "metrics",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_labels_are_bounded() {
        assert_eq!(method_label(&Method::POST), "POST");
        let made_up = Method::from_bytes(b"BREW").expect("an extension method");
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(
            route_family("/parse/classes/ValidationLog/x1"),
            "parse/classes"
        );
        assert_eq!(route_family("/anything/else"), "other");
    }

    #[test]
    fn request_ids_are_distinct_valid_header_values() {
        let ids = RequestIds::default();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert!(a.to_str().is_ok_and(|s| s.contains('-')), "{a:?}");
    }
}
