//! The HTTP listener: HTTP/1.1 and h2c (prior knowledge) on one port,
//! told apart by hyper-util's auto builder, with WebSocket upgrades.
//!
//! | path | reply |
//! | --- | --- |
//! | `/status/NNN` (200–599) | the echo, with status NNN |
//! | `/delay/MS` (≤ 10 000) | the echo, after MS milliseconds |
//! | `/bytes/N` (≤ 100 MiB) | N bytes of `abc…xyz0…9\n` |
//! | `/ws` | WebSocket echo (Upgrade over HTTP/1.1) |
//! | anything else | the echo ([`crate::echo`]); `?format=json` for JSON |
//!
//! Every reply carries `x-sample-name` and `x-sample-version`. With
//! `--call`, echo replies come after the calls and list their results; a
//! call that got no reply turns a 200 into 502. With `--fail-first N`
//! the first N requests answer 503, and with `--stall-first N` the next N
//! answer after `--stall-ms` ([`crate::Flaky`]; for retry tests).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{self, Body, Repeat};
use crate::call::Caller;
use crate::echo::Echo;
use crate::flaky::{Counter, Turn};
use crate::{Config, DRAIN_TIMEOUT, Error, stopped, ws};

/// Longest `/delay/MS`.
const MAX_DELAY_MS: u64 = 10_000;
/// Largest `/bytes/N`.
const MAX_BYTES: u64 = 100 * 1024 * 1024;
/// Largest request body counted (it is read and dropped, never buffered).
const MAX_REQUEST_BODY: u64 = 1024 * 1024 * 1024;
/// Time a client has to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

const X_SAMPLE_NAME: HeaderName = HeaderName::from_static("x-sample-name");
const X_SAMPLE_VERSION: HeaderName = HeaderName::from_static("x-sample-version");

/// The name and version as header values, checked once at start-up.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    name: HeaderValue,
    version: HeaderValue,
}

impl Identity {
    /// Fails if either can't be sent as a header value.
    pub(crate) fn new(name: &str, version: &str) -> Result<Self, Error> {
        let value = |what, value: &str| {
            HeaderValue::from_str(value).map_err(|_| Error::BadLabel {
                what,
                value: value.to_string(),
            })
        };
        Ok(Identity {
            name: value("name", name)?,
            version: value("version", version)?,
        })
    }
}

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct State {
    config: Arc<Config>,
    identity: Identity,
    caller: Caller,
    flaky: Counter,
}

impl State {
    pub(crate) fn new(config: &Arc<Config>) -> Result<Arc<Self>, Error> {
        let identity = Identity::new(&config.name, &config.version)?;
        let user_agent =
            HeaderValue::from_str(&format!("weft-sample/{}", config.name)).map_err(|_| {
                Error::BadLabel {
                    what: "name",
                    value: config.name.clone(),
                }
            })?;
        let caller = Caller::new(
            config.calls.clone(),
            config.proxy.clone(),
            config.call_timeout,
            user_agent,
        );
        Ok(Arc::new(State {
            config: config.clone(),
            identity,
            caller,
            flaky: Counter::new(config.flaky),
        }))
    }
}

/// Accepts connections until `stop`, then lets open ones finish (up to
/// [`DRAIN_TIMEOUT`]). Upgraded WebSocket connections are not waited for.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(512)
        .max_header_list_size(64 * 1024);
    let graceful = GracefulShutdown::new();
    let stop = stopped(stop);
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |req| handle(state.clone(), peer, req));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("http: connections still open after the drain timeout");
    }
    Ok(())
}

/// Answers one request; never fails (errors become statuses).
async fn handle(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let mut resp = respond(&state, peer, req).await;
    let headers = resp.headers_mut();
    headers.insert(X_SAMPLE_NAME, state.identity.name.clone());
    headers.insert(X_SAMPLE_VERSION, state.identity.version.clone());
    tracing::debug!(%peer, %method, path, status = resp.status().as_u16(), "request");
    Ok(resp)
}

async fn respond(state: &State, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    if req.uri().path() == "/ws" {
        return ws::upgrade(req);
    }
    let route = match Route::parse(req.uri().path()) {
        Ok(route) => route,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e),
    };
    match state.flaky.next() {
        Turn::Fail => {
            let _ = count(req.into_body()).await;
            return plain(StatusCode::SERVICE_UNAVAILABLE, "flaky: failing on purpose");
        }
        Turn::Stall(d) => tokio::time::sleep(d).await,
        Turn::Serve => {}
    }
    let json = wants_json(req.uri().query());
    let (parts, body) = req.into_parts();
    let body_length = match count(body).await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let status = match route {
        Route::Bytes(n) => {
            let mut resp = Response::new(Repeat::new(n).boxed());
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            return resp;
        }
        Route::Delay(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK
        }
        Route::Status(status) => status,
        Route::Echo => StatusCode::OK,
    };
    let calls = if state.caller.is_empty() {
        Vec::new()
    } else {
        state.caller.call_all(&parts.headers).await
    };
    let status = if status == StatusCode::OK && calls.iter().any(|c| c.outcome.is_err()) {
        StatusCode::BAD_GATEWAY
    } else {
        status
    };
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = status;
        return resp;
    }
    let echo = Echo {
        name: &state.config.name,
        version: &state.config.version,
        method: &parts.method,
        uri: &parts.uri,
        http_version: parts.version,
        headers: &parts.headers,
        peer,
        body_length,
        calls: &calls,
    };
    let (text, content_type) = if json {
        (echo.json(), "application/json")
    } else {
        (echo.text(), "text/plain; charset=utf-8")
    };
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if parts.method == Method::HEAD {
        *resp.body_mut() = body::empty();
    }
    resp
}

/// A plain-text reply: `message` and a newline.
pub(crate) fn plain(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut text = message.into();
    text.push('\n');
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Reads the request body to its end, counting bytes without keeping them.
async fn count(mut body: Incoming) -> Result<u64, Response<Body>> {
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            plain(
                StatusCode::BAD_REQUEST,
                format!("reading the request body: {e}"),
            )
        })?;
        if let Some(data) = frame.data_ref() {
            n += data.len() as u64;
            if n > MAX_REQUEST_BODY {
                return Err(plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request bodies are limited to {MAX_REQUEST_BODY} bytes"),
                ));
            }
        }
    }
    Ok(n)
}

/// Whether the query asks for JSON (`format=json`).
fn wants_json(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|kv| kv == "format=json"))
}

/// What a path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Echo,
    Status(StatusCode),
    Delay(Duration),
    Bytes(u64),
}

impl Route {
    fn parse(path: &str) -> Result<Route, String> {
        let number = |rest: &str, what: &str| {
            rest.parse::<u64>()
                .map_err(|_| format!("{what} must be a whole number, not {rest:?}"))
        };
        if let Some(rest) = path.strip_prefix("/status/") {
            let code = number(rest, "the status")?;
            return u16::try_from(code)
                .ok()
                .filter(|c| (200..=599).contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok())
                .map(Route::Status)
                .ok_or_else(|| format!("the status must be 200 to 599, not {code}"));
        }
        if let Some(rest) = path.strip_prefix("/delay/") {
            let ms = number(rest, "the delay")?;
            if ms > MAX_DELAY_MS {
                return Err(format!("the delay is at most {MAX_DELAY_MS} ms, not {ms}"));
            }
            return Ok(Route::Delay(Duration::from_millis(ms)));
        }
        if let Some(rest) = path.strip_prefix("/bytes/") {
            let n = number(rest, "the byte count")?;
            if n > MAX_BYTES {
                return Err(format!(
                    "at most {MAX_BYTES} bytes can be asked for, not {n}"
                ));
            }
            return Ok(Route::Bytes(n));
        }
        Ok(Route::Echo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_and_bound_their_numbers() {
        assert_eq!(Route::parse("/"), Ok(Route::Echo));
        assert_eq!(Route::parse("/statusx/1"), Ok(Route::Echo));
        assert_eq!(
            Route::parse("/status/503"),
            Ok(Route::Status(StatusCode::SERVICE_UNAVAILABLE))
        );
        assert!(Route::parse("/status/101").is_err());
        assert!(Route::parse("/status/600").is_err());
        assert!(Route::parse("/status/70000").is_err());
        assert!(Route::parse("/status/").is_err());
        assert!(Route::parse("/status/5x").is_err());
        assert_eq!(
            Route::parse("/delay/250"),
            Ok(Route::Delay(Duration::from_millis(250)))
        );
        assert!(Route::parse("/delay/10001").is_err());
        assert!(Route::parse("/delay/-1").is_err());
        assert_eq!(Route::parse("/bytes/0"), Ok(Route::Bytes(0)));
        assert!(Route::parse(&format!("/bytes/{}", MAX_BYTES + 1)).is_err());
        assert!(Route::parse("/bytes/99999999999999999999999").is_err());
    }

    #[test]
    fn json_is_asked_for_by_a_query_parameter() {
        assert!(wants_json(Some("format=json")));
        assert!(wants_json(Some("a=1&format=json")));
        assert!(!wants_json(Some("format=jsonx")));
        assert!(!wants_json(None));
    }

    #[test]
    fn names_must_be_header_values() {
        assert!(Identity::new("reviews", "v2").is_ok());
        assert!(Identity::new("bad\nname", "v1").is_err());
    }
}
