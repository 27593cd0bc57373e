//! `VirtualService` (networking.istio.io): how requests and connections
//! addressed to a host are routed — HTTP routes with matches, weights,
//! rewrites, redirects, direct responses, retries, timeouts, faults,
//! mirroring and CORS; TLS routes by SNI; opaque TCP routes.
//!
//! Field names and JSON spellings are Istio's (`istio.networking.v1alpha3`);
//! the validation rules, which follow Istio's admission webhook, live in
//! [`checks`] and the modules it uses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::networking::PortSelector;

mod checks;
mod hosts;
mod http;
mod policies;
#[cfg(test)]
mod tests;

pub(crate) use hosts::check_gateway_host;

/// `VirtualService` spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VirtualService {
    /// Hosts the routes apply to (DNS names, `*.`-wildcards or IPs); empty
    /// only in a delegate VirtualService.
    pub hosts: Vec<String>,
    /// Gateways (`name`, `namespace/name`) and/or `mesh` (all sidecars);
    /// empty means `mesh`.
    pub gateways: Vec<String>,
    /// Ordered HTTP routes; the first that matches is used.
    pub http: Vec<HttpRoute>,
    /// Ordered routes for unterminated TLS, matched by SNI.
    pub tls: Vec<TlsRoute>,
    /// Ordered routes for opaque TCP.
    pub tcp: Vec<TcpRoute>,
    /// Namespaces it is visible to (`.`, `*` or names); empty means all.
    pub export_to: Vec<String>,
}

/// `Destination`: a service (and optionally subset and port) to send to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Destination {
    /// Service host from the registry; short names resolve in the
    /// VirtualService's namespace.
    pub host: String,
    /// Subset name defined by a DestinationRule for the host.
    pub subset: String,
    /// Port of the host; needed only when the service has several.
    pub port: Option<PortSelector>,
}

/// `HTTPRoute`: match conditions and the action for HTTP/1.1, HTTP/2 and
/// gRPC requests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRoute {
    /// Name for access logs and stats (joined with the match's name).
    pub name: String,
    /// Conditions, OR-ed; the conditions inside one match are AND-ed.
    /// Empty matches every request.
    #[serde(rename = "match")]
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations to forward to.
    pub route: Vec<HttpRouteDestination>,
    /// Answer with a redirect instead of forwarding.
    pub redirect: Option<HttpRedirect>,
    /// Answer with a fixed response instead of forwarding.
    pub direct_response: Option<HttpDirectResponse>,
    /// Hand the request to the routes of another (delegate) VirtualService.
    pub delegate: Option<Delegate>,
    /// Rewrite the path and/or authority before forwarding.
    pub rewrite: Option<HttpRewrite>,
    /// Request timeout (default: none).
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retries: Option<HttpRetry>,
    /// Faults to inject (delays and aborts).
    pub fault: Option<HttpFaultInjection>,
    /// Send a copy of each request to this destination too (fire and forget).
    pub mirror: Option<Destination>,
    /// Several mirror destinations, each with its own percentage.
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Deprecated integer percentage of requests to mirror; use
    /// `mirrorPercentage`.
    pub mirror_percent: Option<u32>,
    /// Percentage of requests sent to `mirror` (default 100).
    pub mirror_percentage: Option<Percent>,
    /// Cross-origin resource sharing policy.
    pub cors_policy: Option<CorsPolicy>,
    /// Request and response header changes for all destinations.
    pub headers: Option<Headers>,
}

/// `Delegate`: the VirtualService whose HTTP routes a root route hands to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Delegate {
    /// Name of the delegate VirtualService.
    pub name: String,
    /// Its namespace (default: the root's).
    pub namespace: String,
}

/// `Headers`: header manipulation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Headers {
    /// Changes to the request before it is forwarded.
    pub request: Option<HeaderOperations>,
    /// Changes to the response before it is returned.
    pub response: Option<HeaderOperations>,
}

/// `Headers.HeaderOperations`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeaderOperations {
    /// Headers to overwrite.
    pub set: BTreeMap<String, String>,
    /// Headers to append to (comma-joined with existing values).
    pub add: BTreeMap<String, String>,
    /// Headers to remove.
    pub remove: Vec<String>,
}

/// `TLSRoute`: routes unterminated TLS by SNI.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TlsRoute {
    /// Conditions, OR-ed (required).
    #[serde(rename = "match")]
    pub matches: Vec<TlsMatchAttributes>,
    /// Weighted destinations to forward the connection to.
    pub route: Vec<RouteDestination>,
}

/// `TCPRoute`: routes opaque TCP connections.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpRoute {
    /// Conditions, OR-ed; empty matches every connection.
    #[serde(rename = "match")]
    pub matches: Vec<L4MatchAttributes>,
    /// Weighted destinations to forward the connection to.
    pub route: Vec<RouteDestination>,
}

/// `HTTPMatchRequest`: conditions on one request, all of which must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpMatchRequest {
    /// Name for access logs (joined with the route's name).
    pub name: String,
    /// The path (without query string).
    pub uri: Option<StringMatch>,
    /// The URI scheme (`http`, `https`).
    pub scheme: Option<StringMatch>,
    /// The HTTP method (case-sensitive).
    pub method: Option<StringMatch>,
    /// The authority (Host) header.
    pub authority: Option<StringMatch>,
    /// Request headers (lowercase names); an empty match means "present".
    /// `@request.auth.claims.<claim>` keys match JWT claims (gateways only).
    pub headers: BTreeMap<String, StringMatch>,
    /// The destination port.
    pub port: u32,
    /// Labels the client workload must carry (sidecars only).
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this match is restricted to (overrides the top-level list).
    pub gateways: Vec<String>,
    /// Query parameters; an empty match means "present".
    pub query_params: BTreeMap<String, StringMatch>,
    /// Match `uri` case-insensitively.
    pub ignore_uri_case: bool,
    /// Headers that must NOT match; `regex: "*"` means "absent".
    pub without_headers: BTreeMap<String, StringMatch>,
    /// Namespace the client workload must run in (sidecars only).
    pub source_namespace: String,
    /// Prefix for the route's stats (`route.<statPrefix>`).
    pub stat_prefix: String,
}

/// `StringMatch`: exactly one of exact, prefix or regex (RE2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StringMatch {
    /// Exact value.
    pub exact: Option<String>,
    /// Value prefix.
    pub prefix: Option<String>,
    /// RE2 regular expression, matched against the whole value.
    pub regex: Option<String>,
}

/// `HTTPRouteDestination`: a weighted destination of an HTTP route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRouteDestination {
    /// Where to send (required).
    pub destination: Option<Destination>,
    /// Share of the traffic, 0..=100; with several destinations they add
    /// up to 100.
    pub weight: i32,
    /// Header changes for requests to and responses from this destination.
    pub headers: Option<Headers>,
}

/// `RouteDestination`: a weighted destination of a TLS or TCP route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RouteDestination {
    /// Where to send (required).
    pub destination: Option<Destination>,
    /// Share of the connections, 0..=100; with several destinations they
    /// add up to 100.
    pub weight: i32,
}

/// `L4MatchAttributes`: conditions on a TCP connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct L4MatchAttributes {
    /// Destination IPs or CIDR blocks.
    pub destination_subnets: Vec<String>,
    /// Destination port.
    pub port: u32,
    /// Source IP or CIDR block (undocumented in Istio).
    pub source_subnet: String,
    /// Labels the client workload must carry.
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this match is restricted to.
    pub gateways: Vec<String>,
    /// Namespace the client workload must run in.
    pub source_namespace: String,
}

/// `TLSMatchAttributes`: conditions on a TLS connection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TlsMatchAttributes {
    /// SNI names to match (required; wildcards allowed); each must fall
    /// within the VirtualService's hosts.
    pub sni_hosts: Vec<String>,
    /// Destination IPs or CIDR blocks.
    pub destination_subnets: Vec<String>,
    /// Destination port.
    pub port: u32,
    /// Labels the client workload must carry.
    pub source_labels: BTreeMap<String, String>,
    /// Gateways this match is restricted to.
    pub gateways: Vec<String>,
    /// Namespace the client workload must run in.
    pub source_namespace: String,
}

/// `HTTPRedirect`: answer with a 3xx redirect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRedirect {
    /// Replace the whole path with this.
    pub uri: String,
    /// Replace the authority (host) with this.
    pub authority: String,
    /// Redirect to this port (one of `port`/`derivePort`).
    pub port: Option<u32>,
    /// Derive the port from the scheme or the request (one of
    /// `port`/`derivePort`).
    pub derive_port: Option<RedirectPortSelection>,
    /// Replace the scheme (`http` or `https`).
    pub scheme: String,
    /// Status code (default 301).
    pub redirect_code: u32,
}

/// `HTTPRedirect.RedirectPortSelection`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedirectPortSelection {
    /// 80 for http, 443 for https.
    #[default]
    FromProtocolDefault,
    /// The port the request came in on.
    FromRequestPort,
}

/// `HTTPDirectResponse`: answer with a fixed status and body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpDirectResponse {
    /// Status code, 200..=599 (required).
    pub status: u32,
    /// Body (at most 1 MiB).
    pub body: Option<HttpBody>,
}

/// `HTTPBody`: exactly one of a text or base64 body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpBody {
    /// Text body.
    pub string: Option<String>,
    /// Binary body, base64-encoded (protobuf JSON `bytes`).
    pub bytes: Option<String>,
}

/// `HTTPRewrite`: rewrite before forwarding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRewrite {
    /// Replace the matched `uri` prefix (or the exact path) with this.
    pub uri: String,
    /// Replace the authority (Host) header with this.
    pub authority: String,
    /// Rewrite the path with a regex substitution (instead of `uri`).
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// `RegexRewrite`: a regex substitution on the path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegexRewrite {
    /// RE2 regex to match.
    #[serde(rename = "match")]
    pub matches: String,
    /// Replacement (`\1` for capture groups).
    pub rewrite: String,
}

/// `HTTPRetry`: retry policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRetry {
    /// Number of retries (0 disables retries).
    pub attempts: i32,
    /// Timeout of each attempt, ≥ 1ms (default: the route timeout).
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated Envoy retry conditions (`5xx`, `reset`,
    /// `connect-failure`, gRPC codes like `unavailable`, or status codes).
    pub retry_on: String,
    /// Retry on endpoints in other localities.
    pub retry_remote_localities: Option<bool>,
    /// Avoid endpoints already tried.
    pub retry_ignore_previous_hosts: Option<bool>,
    /// Base interval of the exponential backoff between retries (default 25ms).
    pub backoff: Option<Duration>,
}

/// `CorsPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CorsPolicy {
    /// Deprecated exact origins; use `allowOrigins`.
    pub allow_origin: Vec<String>,
    /// Origins allowed to make CORS requests.
    pub allow_origins: Vec<StringMatch>,
    /// Allowed methods (`Access-Control-Allow-Methods`).
    pub allow_methods: Vec<String>,
    /// Allowed request headers (`Access-Control-Allow-Headers`).
    pub allow_headers: Vec<String>,
    /// Headers browsers may read (`Access-Control-Expose-Headers`).
    pub expose_headers: Vec<String>,
    /// How long a preflight result may be cached (whole seconds).
    pub max_age: Option<Duration>,
    /// Whether credentials may be sent (`Access-Control-Allow-Credentials`).
    pub allow_credentials: Option<bool>,
    /// What to do with preflight requests whose origin matches no rule.
    pub unmatched_preflights: UnmatchedPreflights,
}

/// `CorsPolicy.UnmatchedPreflights`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnmatchedPreflights {
    /// Default: forward to the upstream.
    #[default]
    Unspecified,
    /// Forward to the upstream.
    Forward,
    /// Answer them without forwarding and without CORS headers.
    Ignore,
}

/// `HTTPFaultInjection`: at least one of delay and abort.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpFaultInjection {
    /// Delay some requests.
    pub delay: Option<FaultDelay>,
    /// Abort some requests with an error.
    pub abort: Option<FaultAbort>,
}

/// `HTTPFaultInjection.Delay`: one of fixedDelay/exponentialDelay.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultDelay {
    /// Deprecated integer percentage; use `percentage`.
    pub percent: i32,
    /// Fixed delay, ≥ 1ms.
    pub fixed_delay: Option<Duration>,
    /// Exponential delay (not supported by Istio).
    pub exponential_delay: Option<Duration>,
    /// Percentage of requests to delay (default 100).
    pub percentage: Option<Percent>,
}

/// `HTTPFaultInjection.Abort`: one of httpStatus/grpcStatus/http2Error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultAbort {
    /// HTTP status to answer with (200..=599).
    pub http_status: Option<i32>,
    /// gRPC status name to answer with (`UNAVAILABLE`, `NOT_FOUND`, ...).
    pub grpc_status: Option<String>,
    /// HTTP/2 error (not supported by Istio).
    pub http2_error: Option<String>,
    /// Percentage of requests to abort (default 100).
    pub percentage: Option<Percent>,
}

/// `HTTPMirrorPolicy`: one mirror destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpMirrorPolicy {
    /// Where to send the copies (required).
    pub destination: Option<Destination>,
    /// Percentage of requests to mirror (default 100).
    pub percentage: Option<Percent>,
}

/// `Percent`: a percentage as a double, 0.0..=100.0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Percent {
    /// The percentage.
    pub value: f64,
}
