//! The well-known names of Envoy extensions both sides use: the control
//! plane writes them into resources, the proxy and the CLI look for them.
//! Spelled once here so the two can't drift.

/// The HTTP connection manager network filter.
pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
/// The TCP proxy network filter.
pub const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";
/// The router HTTP filter (always last).
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";
/// The fault-injection HTTP filter (per-route config under this name).
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// The CORS HTTP filter (per-route config under this name).
pub const CORS_FILTER: &str = "envoy.filters.http.cors";
/// The TLS inspector listener filter (SNI, ALPN).
pub const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
/// The HTTP inspector listener filter (HTTP/1 or h2 detection).
pub const HTTP_INSPECTOR: &str = "envoy.filters.listener.http_inspector";
/// The original-destination listener filter.
pub const ORIGINAL_DST: &str = "envoy.filters.listener.original_dst";
/// The TLS transport socket.
pub const TLS_SOCKET: &str = "envoy.transport_sockets.tls";
/// The plaintext transport socket.
pub const RAW_BUFFER_SOCKET: &str = "envoy.transport_sockets.raw_buffer";
/// Where a cluster's HTTP settings are (`typed_extension_protocol_options`).
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// The `Node.client_features` entry by which a delta client asks for its
/// route configurations' virtual hosts through VHDS (Weft's own opt-in).
pub const VHDS_FEATURE: &str = "weft.vhds";

/// The VHDS resource name of virtual host `vhost` of route configuration
/// `route`: `<route>/<vhost>`.
pub fn vhost_resource(route: &str, vhost: &str) -> String {
    format!("{route}/{vhost}")
}

/// The route configuration a VHDS resource name (`<route>/<vhost>`) is of:
/// everything before the first `/` (route configuration names have none;
/// virtual host names may).
pub fn vhost_route(resource: &str) -> &str {
    resource
        .split_once('/')
        .map_or(resource, |(route, _)| route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhost_names_split_at_the_first_slash() {
        let n = vhost_resource("9080", "reviews.default.svc.cluster.local:9080");
        assert_eq!(n, "9080/reviews.default.svc.cluster.local:9080");
        assert_eq!(vhost_route(&n), "9080");
        assert_eq!(vhost_route("80/a/b"), "80");
        assert_eq!(vhost_route("80"), "80");
    }
}
