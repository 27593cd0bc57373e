//! The echo: what the sample saw of a request, as plain text or JSON.
//!
//! Text (one item a line, so tests and people can grep it):
//!
//! ```text
//! reviews v2
//! request: GET /reviews/0?x=1 HTTP/1.1
//! authority: reviews:9080
//! peer: 127.0.0.1:50522
//! body-length: 0
//! header: host: reviews:9080
//! header: x-request-id: 4b1c…
//! call: http://ratings:9080/ratings/0 -> 200 HTTP/1.1 | ratings v1
//! ```
//!
//! The first line names the service and version, so a caller's `call:`
//! line (which quotes the first line of the reply) shows who answered.
//! JSON (`?format=json`) has the same facts on one line.

use std::fmt::Write as _;
use std::net::SocketAddr;

use http::{HeaderMap, Method, Uri, Version};
use serde::Serialize;

use crate::call::CallResult;

/// What the sample saw of one request.
#[derive(Debug)]
pub(crate) struct Echo<'a> {
    pub(crate) name: &'a str,
    pub(crate) version: &'a str,
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) http_version: Version,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) peer: SocketAddr,
    pub(crate) body_length: u64,
    pub(crate) calls: &'a [CallResult],
}

/// The JSON form of an [`Echo`].
#[derive(Debug, Serialize)]
struct EchoJson<'a> {
    name: &'a str,
    version: &'a str,
    method: &'a str,
    /// The request target as received: origin-form (`/p?q`), or
    /// absolute-form (`http://host/p?q`) when sent as to a proxy.
    target: String,
    /// Path and query alone.
    path: &'a str,
    http_version: String,
    authority: Option<String>,
    peer: String,
    body_length: u64,
    /// Repeated headers are joined with `, `.
    headers: serde_json::Map<String, serde_json::Value>,
    calls: Vec<CallJson<'a>>,
}

#[derive(Debug, Serialize)]
struct CallJson<'a> {
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_line: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl Echo<'_> {
    /// The request target as received. HTTP/2 has no request line, so
    /// there it is the path and query, as HTTP/1.1 origin-form would be.
    fn target(&self) -> String {
        if self.http_version == Version::HTTP_2 {
            self.path().to_string()
        } else {
            self.uri.to_string()
        }
    }

    fn path(&self) -> &str {
        self.uri.path_and_query().map_or("/", |pq| pq.as_str())
    }

    /// `:authority` for HTTP/2 and absolute-form targets, else `Host`.
    fn authority(&self) -> Option<String> {
        self.uri.authority().map(|a| a.to_string()).or_else(|| {
            self.headers
                .get(http::header::HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        })
    }

    /// The plain-text echo.
    pub(crate) fn text(&self) -> String {
        let mut out = String::with_capacity(512);
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{} {}", self.name, self.version);
        let _ = writeln!(
            out,
            "request: {} {} {:?}",
            self.method,
            self.target(),
            self.http_version
        );
        if let Some(authority) = self.authority() {
            let _ = writeln!(out, "authority: {authority}");
        }
        let _ = writeln!(out, "peer: {}", self.peer);
        let _ = writeln!(out, "body-length: {}", self.body_length);
        for (name, value) in self.headers {
            let _ = writeln!(
                out,
                "header: {name}: {}",
                String::from_utf8_lossy(value.as_bytes())
            );
        }
        for call in self.calls {
            match &call.outcome {
                Ok(reply) => {
                    let _ = writeln!(
                        out,
                        "call: {} -> {} {:?} | {}",
                        call.url,
                        reply.status.as_u16(),
                        reply.version,
                        reply.first_line
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "call: {} -> error: {e}", call.url);
                }
            }
        }
        out
    }

    /// The JSON echo, on one line with a final newline.
    pub(crate) fn json(&self) -> String {
        let mut headers = serde_json::Map::new();
        for name in self.headers.keys() {
            let joined = self
                .headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()))
                .collect::<Vec<_>>()
                .join(", ");
            headers.insert(name.to_string(), joined.into());
        }
        let calls = self
            .calls
            .iter()
            .map(|call| match &call.outcome {
                Ok(reply) => CallJson {
                    url: &call.url,
                    status: Some(reply.status.as_u16()),
                    http_version: Some(format!("{:?}", reply.version)),
                    first_line: Some(&reply.first_line),
                    error: None,
                },
                Err(e) => CallJson {
                    url: &call.url,
                    status: None,
                    http_version: None,
                    first_line: None,
                    error: Some(e),
                },
            })
            .collect();
        let json = EchoJson {
            name: self.name,
            version: self.version,
            method: self.method.as_str(),
            target: self.target(),
            path: self.path(),
            http_version: format!("{:?}", self.http_version),
            authority: self.authority(),
            peer: self.peer.to_string(),
            body_length: self.body_length,
            headers,
            calls,
        };
        let mut text = serde_json::to_string(&json).unwrap_or_else(|e| {
            // Only strings and numbers go in: serialization cannot fail.
            format!("{{\"error\":\"{e}\"}}")
        });
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::CallReply;
    use http::{HeaderValue, StatusCode};

    fn headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("reviews:9080"));
        h.append("x-tag", HeaderValue::from_static("a"));
        h.append("x-tag", HeaderValue::from_static("b"));
        h
    }

    fn calls() -> Vec<CallResult> {
        vec![
            CallResult {
                url: "http://ratings:9080/".into(),
                outcome: Ok(CallReply {
                    status: StatusCode::OK,
                    version: Version::HTTP_11,
                    first_line: "ratings v1".into(),
                }),
            },
            CallResult {
                url: "http://details:9080/".into(),
                outcome: Err("connection refused".into()),
            },
        ]
    }

    #[test]
    fn text_names_service_request_headers_and_calls() {
        let (headers, calls, uri) = (headers(), calls(), "/r?x=1".parse().unwrap());
        let echo = Echo {
            name: "reviews",
            version: "v2",
            method: &Method::POST,
            uri: &uri,
            http_version: Version::HTTP_11,
            headers: &headers,
            peer: "127.0.0.1:5000".parse().unwrap(),
            body_length: 12,
            calls: &calls,
        };
        assert_eq!(
            echo.text(),
            "reviews v2\nrequest: POST /r?x=1 HTTP/1.1\nauthority: reviews:9080\n\
             peer: 127.0.0.1:5000\nbody-length: 12\nheader: host: reviews:9080\n\
             header: x-tag: a\nheader: x-tag: b\n\
             call: http://ratings:9080/ -> 200 HTTP/1.1 | ratings v1\n\
             call: http://details:9080/ -> error: connection refused\n"
        );
    }

    #[test]
    fn json_is_one_line_and_h2_targets_are_paths() {
        let (headers, calls) = (headers(), calls());
        let uri: Uri = "http://reviews:9080/r?x=1".parse().unwrap();
        let echo = Echo {
            name: "reviews",
            version: "v2",
            method: &Method::GET,
            uri: &uri,
            http_version: Version::HTTP_2,
            headers: &headers,
            peer: "[::1]:5000".parse().unwrap(),
            body_length: 0,
            calls: &calls,
        };
        let text = echo.json();
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["target"], "/r?x=1");
        assert_eq!(v["path"], "/r?x=1");
        assert_eq!(v["http_version"], "HTTP/2.0");
        assert_eq!(v["authority"], "reviews:9080");
        assert_eq!(v["peer"], "[::1]:5000");
        assert_eq!(v["headers"]["x-tag"], "a, b");
        assert_eq!(v["calls"][0]["status"], 200);
        assert_eq!(v["calls"][0]["first_line"], "ratings v1");
        assert_eq!(v["calls"][1]["error"], "connection refused");
        assert!(v["calls"][1].get("status").is_none());
    }
}
