//! WebSocket echo on `/ws`: the RFC 6455 upgrade over HTTP/1.1 on the HTTP
//! port, then every text and binary message is sent back as it came, until
//! the client closes (pings are answered by tungstenite).

use futures_util::{SinkExt, StreamExt};
use http::header::{CONNECTION, HeaderMap, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY};
use http::header::{SEC_WEBSOCKET_VERSION, UPGRADE};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::body::{self, Body};
use crate::http::plain;

/// Largest message (and frame) accepted; larger ones end the connection.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Whether a comma-separated header (`Connection: keep-alive, Upgrade`)
/// holds `token`, in any case.
fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Answers a request for `/ws`: `101 Switching Protocols` and an echo task
/// for a valid upgrade, 400 or 426 for anything else.
pub(crate) fn upgrade(mut req: Request<Incoming>) -> Response<Body> {
    let headers = req.headers();
    if req.method() != Method::GET
        || req.version() != Version::HTTP_11
        || !has_token(headers, CONNECTION, "upgrade")
        || !has_token(headers, UPGRADE, "websocket")
    {
        return plain(
            StatusCode::BAD_REQUEST,
            "/ws is a WebSocket echo: send GET /ws with Connection: Upgrade and Upgrade: websocket over HTTP/1.1",
        );
    }
    if headers
        .get(SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut resp = plain(
            StatusCode::UPGRADE_REQUIRED,
            "only WebSocket version 13 is spoken",
        );
        resp.headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return resp;
    }
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return plain(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing");
    };
    let accept = derive_accept_key(key.as_bytes());
    let Ok(accept) = HeaderValue::from_str(&accept) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot make Sec-WebSocket-Accept",
        );
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .max_message_size(Some(MAX_MESSAGE))
                    .max_frame_size(Some(MAX_MESSAGE));
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                echo(ws).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    resp
}

/// Sends back every text and binary message until the stream ends.
async fn echo<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(message) = ws.next().await {
        match message {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                if let Err(e) = ws.send(message).await {
                    tracing::debug!(error = %e, "websocket send failed");
                    break;
                }
            }
            // Pings are answered, and a close is confirmed, by tungstenite
            // itself; the stream then ends.
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "websocket ended");
                break;
            }
        }
    }
}
