//! The request headers Envoy's HTTP connection manager sets before routing
//! (`ConnectionManagerUtility::mutateRequestHeaders`), from the HCM fields
//! the control plane sends: `x-forwarded-for`, `x-forwarded-proto`,
//! `x-envoy-internal`, `x-envoy-external-address`, `x-request-id`,
//! `x-forwarded-client-cert`, and the `x-envoy-*` control headers an
//! external request may not set.
//!
//! - **Trusted client address.** With `use_remote_address` (Istio:
//!   gateways), the `xff_num_trusted_hops`-th address from the right of
//!   the client's `x-forwarded-for`, else the peer's address; then the
//!   peer's address is appended (the proxy's own IP when the peer is on
//!   loopback) unless `skip_xff_append`, and `x-forwarded-proto` is
//!   overwritten unless a trusted hop set it. Without it (Istio: sidecars)
//!   `x-forwarded-for` is left alone and the address is the
//!   `(xff_num_trusted_hops + 1)`-th from its right.
//! - **Internal.** A request is internal when that address is internal
//!   (`internal_address_config`'s CIDRs, else Envoy's default: RFC 1918,
//!   loopback, IPv6 ULA) and it is trustworthy: with `use_remote_address`,
//!   the client sent no `x-forwarded-for`; without it, the header holds
//!   exactly one address. Internal requests get `x-envoy-internal: true`;
//!   others lose the `x-envoy-*` retry and timeout controls, and, at the
//!   edge (`use_remote_address` and external), get
//!   `x-envoy-external-address` and a new `x-request-id` (unless
//!   `preserve_external_request_id`).
//! - **XFCC.** Weft's connections carry no client certificate yet, so, as
//!   Envoy does on a connection without mTLS, `x-forwarded-client-cert` is
//!   removed unless `forward_client_cert_details` is `ALWAYS_FORWARD_ONLY`.

use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::ForwardClientCertDetails,
};

/// `x-forwarded-for`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-envoy-internal`.
pub const X_ENVOY_INTERNAL: HeaderName = HeaderName::from_static("x-envoy-internal");
/// `x-envoy-external-address`.
pub const X_ENVOY_EXTERNAL_ADDRESS: HeaderName =
    HeaderName::from_static("x-envoy-external-address");
/// `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_CLIENT_CERT: HeaderName = HeaderName::from_static("x-forwarded-client-cert");
/// Longest request `x-request-id` kept as it is (longer ones are replaced).
const MAX_REQUEST_ID: usize = 128;

/// Headers an external request may not set (Envoy's `cleanInternalHeaders`).
const INTERNAL_ONLY: [&str; 14] = [
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-alt-stat-name",
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-ip-tags",
    "x-envoy-original-url",
    "x-envoy-hedge-on-per-try-timeout",
];
/// Also removed from edge requests.
const EDGE_ONLY: [&str; 3] = [
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
];

/// What `x-forwarded-client-cert` does (`forward_client_cert_details`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum ClientCert {
    /// `SANITIZE` (Envoy's default): removed.
    #[default]
    Sanitize,
    /// `FORWARD_ONLY`: passed on over mTLS.
    ForwardOnly,
    /// `APPEND_FORWARD`: this hop's details appended over mTLS.
    AppendForward,
    /// `SANITIZE_SET`: replaced by this hop's details over mTLS.
    SanitizeSet,
    /// `ALWAYS_FORWARD_ONLY`: always passed on.
    AlwaysForwardOnly,
}

/// An HTTP connection manager's header settings.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Config {
    /// `use_remote_address` (default false).
    pub use_remote_address: bool,
    /// `xff_num_trusted_hops`.
    pub xff_num_trusted_hops: u32,
    /// `skip_xff_append`.
    pub skip_xff_append: bool,
    /// `generate_request_id` (default true).
    pub generate_request_id: bool,
    /// `preserve_external_request_id`.
    pub preserve_external_request_id: bool,
    /// `internal_address_config.cidr_ranges`; `None` (or empty): Envoy's
    /// default internal ranges.
    pub internal_ranges: Option<Vec<IpNet>>,
    /// `forward_client_cert_details`.
    pub client_cert: ClientCert,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            use_remote_address: false,
            xff_num_trusted_hops: 0,
            skip_xff_append: false,
            generate_request_id: true,
            preserve_external_request_id: false,
            internal_ranges: None,
            client_cert: ClientCert::Sanitize,
        }
    }
}

impl TryFrom<&HttpConnectionManager> for Config {
    type Error = String;

    fn try_from(h: &HttpConnectionManager) -> Result<Self, String> {
        let internal_ranges = match &h.internal_address_config {
            Some(c) if !c.cidr_ranges.is_empty() => Some(
                c.cidr_ranges
                    .iter()
                    .map(|r| {
                        let ip: IpAddr = r.address_prefix.parse().map_err(|_| {
                            format!(
                                "internal_address_config: bad address {:?}",
                                r.address_prefix
                            )
                        })?;
                        let len = r
                            .prefix_len
                            .map_or(if ip.is_ipv4() { 32 } else { 128 }, |p| p.value);
                        let len = u8::try_from(len).map_err(|_| {
                            format!("internal_address_config: bad prefix length {len}")
                        })?;
                        IpNet::new(ip, len)
                            .map(|n| n.trunc())
                            .map_err(|e| format!("internal_address_config: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            _ => None,
        };
        let client_cert = match ForwardClientCertDetails::try_from(h.forward_client_cert_details) {
            Ok(ForwardClientCertDetails::Sanitize) => ClientCert::Sanitize,
            Ok(ForwardClientCertDetails::ForwardOnly) => ClientCert::ForwardOnly,
            Ok(ForwardClientCertDetails::AppendForward) => ClientCert::AppendForward,
            Ok(ForwardClientCertDetails::SanitizeSet) => ClientCert::SanitizeSet,
            Ok(ForwardClientCertDetails::AlwaysForwardOnly) => ClientCert::AlwaysForwardOnly,
            Err(_) => {
                return Err(format!(
                    "forward_client_cert_details {} is unknown",
                    h.forward_client_cert_details
                ));
            }
        };
        Ok(Config {
            use_remote_address: h.use_remote_address.is_some_and(|b| b.value),
            xff_num_trusted_hops: h.xff_num_trusted_hops,
            skip_xff_append: h.skip_xff_append,
            generate_request_id: h.generate_request_id.is_none_or(|b| b.value),
            preserve_external_request_id: h.preserve_external_request_id,
            internal_ranges,
            client_cert,
        })
    }
}

impl Config {
    /// Whether `ip` is internal.
    pub fn is_internal(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match &self.internal_ranges {
            Some(ranges) => ranges.iter().any(|r| r.contains(&ip)),
            None => match ip {
                IpAddr::V4(v4) => v4.is_private() || v4.is_loopback(),
                IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
            },
        }
    }
}

/// The downstream connection a request came on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Downstream {
    /// Its peer.
    pub peer: Option<SocketAddr>,
    /// The proxy's own IP (the node's), appended to `x-forwarded-for` for
    /// a peer on loopback, as Envoy appends its local address.
    pub local_ip: Option<IpAddr>,
    /// `http` or `https`.
    pub scheme: &'static str,
}

/// What the headers say about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// It came from an internal address (`x-envoy-internal: true`).
    pub internal: bool,
    /// It entered the mesh here (`use_remote_address` and not internal).
    pub edge: bool,
    /// The trusted client address (the peer's if none was found).
    pub client: Option<IpAddr>,
}

/// Applies the connection manager's header rules (see the module docs)
/// to a request's headers.
pub fn apply(c: &Config, d: &Downstream, h: &mut HeaderMap) -> Verdict {
    let peer = d.peer.map(|p| p.ip().to_canonical());
    // One pass over the names (no hashing): most requests carry none of
    // these, and then nothing below looks them up.
    let mut seen = Seen::of(h);
    let xff = if seen.xff { joined(h) } else { None };
    let (mut client, trustworthy) = if c.use_remote_address {
        let trustworthy = xff.is_none();
        let from_xff = match c.xff_num_trusted_hops {
            0 => None,
            n => xff.as_deref().and_then(|x| from_right(x, n - 1).0),
        };
        if !c.skip_xff_append
            && let Some(p) = peer
        {
            let hop = if p.is_loopback() {
                d.local_ip.unwrap_or(p)
            } else {
                p
            };
            let value = match &xff {
                Some(x) => format!("{x},{hop}"),
                None => hop.to_string(),
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(X_FORWARDED_FOR, v);
            }
        }
        if c.xff_num_trusted_hops == 0 || !seen.xfp {
            h.insert(X_FORWARDED_PROTO, HeaderValue::from_static(d.scheme));
            seen.xfp = true;
        }
        (from_xff.or(peer), trustworthy)
    } else {
        match xff.as_deref() {
            Some(x) => from_right(x, c.xff_num_trusted_hops),
            None => (None, false),
        }
    };
    if !seen.xfp {
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static(d.scheme));
    }
    let internal = trustworthy && client.is_some_and(|ip| c.is_internal(ip));
    client = client.or(peer);
    let edge = !internal && c.use_remote_address;
    if internal {
        h.insert(X_ENVOY_INTERNAL, HeaderValue::from_static("true"));
    } else if seen.envoy {
        h.remove(&X_ENVOY_INTERNAL);
        for name in INTERNAL_ONLY {
            h.remove(name);
        }
        if edge {
            for name in EDGE_ONLY {
                h.remove(name);
            }
        }
    }
    if edge && let Some(ip) = client {
        h.insert(X_ENVOY_EXTERNAL_ADDRESS, ip_value(ip));
    }
    if c.generate_request_id {
        let force = edge && !c.preserve_external_request_id;
        if force || !(seen.xrid && h.get(&X_REQUEST_ID).is_some_and(valid_request_id)) {
            h.insert(X_REQUEST_ID, crate::forward::request_id());
        }
    }
    if seen.xfcc && c.client_cert != ClientCert::AlwaysForwardOnly {
        // No downstream connection presents a client certificate yet.
        h.remove(&X_FORWARDED_CLIENT_CERT);
    }
    Verdict {
        internal,
        edge,
        client,
    }
}

/// Which of the headers [`apply`] reads or removes a request carries.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    xff: bool,
    xfp: bool,
    xfcc: bool,
    envoy: bool,
    xrid: bool,
}

impl Seen {
    fn of(h: &HeaderMap) -> Seen {
        let mut s = Seen::default();
        for k in h.keys() {
            let k = k.as_str();
            if k.starts_with("x-envoy-") {
                s.envoy = true;
            } else if k.starts_with("x-forwarded-") {
                s.xff |= k == X_FORWARDED_FOR.as_str();
                s.xfp |= k == X_FORWARDED_PROTO.as_str();
                s.xfcc |= k == X_FORWARDED_CLIENT_CERT.as_str();
            } else if k == X_REQUEST_ID.as_str() {
                s.xrid = true;
            }
        }
        s
    }
}

fn ip_value(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Every `x-forwarded-for` value, joined with `,` (as Envoy coalesces them).
fn joined(h: &HeaderMap) -> Option<String> {
    let mut values = h
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let first = values.next()?.to_string();
    Some(values.fold(first, |mut all, v| {
        all.push(',');
        all.push_str(v);
        all
    }))
}

/// The address `skip` entries from the right of an `x-forwarded-for`
/// list (Envoy's `getLastAddressFromXFF`), and whether the list holds one
/// address only. An entry that is not an IP gives `None`.
fn from_right(xff: &str, skip: u32) -> (Option<IpAddr>, bool) {
    let entries: Vec<&str> = xff
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let single = entries.len() == 1;
    let skip = usize::try_from(skip).unwrap_or(usize::MAX);
    let ip = entries
        .len()
        .checked_sub(skip.saturating_add(1))
        .and_then(|i| entries[i].parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical());
    (ip, single)
}

/// Whether a request's `x-request-id` is kept: not empty, visible ASCII,
/// at most [`MAX_REQUEST_ID`] bytes (others are replaced by a new UUID).
pub fn valid_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty() && b.len() <= MAX_REQUEST_ID && b.iter().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests;
