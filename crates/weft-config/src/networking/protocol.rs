//! Port protocols as Istio names them, and how a port's protocol is found:
//! a Gateway/ServiceEntry `protocol:` field, a Kubernetes port name
//! (`http-api`, `grpc`, `tcp-db`) or its `appProtocol`.
//!
//! Used by Gateway validation, and later by the proxy (listener protocol
//! selection) and ServiceEntry/Service ports.

use std::fmt;

use serde::{Serialize, Serializer};

/// gRPC status code names, indexed by code (`UNAVAILABLE` is 14).
pub const GRPC_STATUS_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A port's application protocol (Istio's `protocol.Instance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// HTTP/1.1 (`HTTP`).
    Http,
    /// HTTP over TLS (`HTTPS`).
    Https,
    /// gRPC over HTTP/2 (`GRPC`).
    Grpc,
    /// gRPC-Web (`GRPC-Web`).
    GrpcWeb,
    /// HTTP/2 (`HTTP2`).
    Http2,
    /// A generic outbound HTTP proxy port (`HTTP_PROXY`, Sidecar egress only).
    HttpProxy,
    /// MongoDB (`Mongo`).
    Mongo,
    /// MySQL (`MySQL`).
    MySql,
    /// Redis (`Redis`).
    Redis,
    /// Opaque TCP (`TCP`).
    Tcp,
    /// TLS with SNI, not terminated (`TLS`).
    Tls,
    /// UDP (`UDP`; not proxied).
    Udp,
    /// Anything else: not a protocol Istio knows.
    Unsupported,
}

/// Ports Istio treats as TCP when their name names no protocol (SMTP, DNS,
/// MySQL, MongoDB): sniffing would break their server-first protocols.
const WELL_KNOWN_TCP_PORTS: [u32; 4] = [25, 53, 3306, 27017];

impl Protocol {
    /// Every known protocol (not `Unsupported`), in Istio's order.
    pub const KNOWN: [Protocol; 12] = [
        Protocol::Http,
        Protocol::Https,
        Protocol::Grpc,
        Protocol::GrpcWeb,
        Protocol::Http2,
        Protocol::HttpProxy,
        Protocol::Mongo,
        Protocol::MySql,
        Protocol::Redis,
        Protocol::Tcp,
        Protocol::Tls,
        Protocol::Udp,
    ];

    /// Istio's spelling (`HTTP`, `GRPC-Web`, `MySQL`, `UnsupportedProtocol`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Grpc => "GRPC",
            Protocol::GrpcWeb => "GRPC-Web",
            Protocol::Http2 => "HTTP2",
            Protocol::HttpProxy => "HTTP_PROXY",
            Protocol::Mongo => "Mongo",
            Protocol::MySql => "MySQL",
            Protocol::Redis => "Redis",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
            Protocol::Udp => "UDP",
            Protocol::Unsupported => "UnsupportedProtocol",
        }
    }

    /// Parses a `protocol:` value, ignoring case (`http`, `GRPC-WEB`);
    /// anything else (including `""`) is [`Protocol::Unsupported`].
    pub fn parse(s: &str) -> Protocol {
        Protocol::KNOWN
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .unwrap_or(Protocol::Unsupported)
    }

    /// The protocol a Kubernetes port name declares by Istio's naming
    /// convention: `<protocol>[-<suffix>]` (`http-api`, `grpc`, `tcp-db`,
    /// `grpc-web-ui`); [`Protocol::Unsupported`] when the prefix names no
    /// protocol (Istio then sniffs the traffic).
    pub fn from_port_name(name: &str) -> Protocol {
        const GRPC_WEB: &str = "grpc-web";
        if name
            .get(..GRPC_WEB.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(GRPC_WEB))
        {
            return Protocol::GrpcWeb;
        }
        let prefix = name.split_once('-').map_or(name, |(p, _)| p);
        Protocol::parse(prefix)
    }

    /// The protocol a Kubernetes `appProtocol` declares: the standard
    /// `kubernetes.io/h2c` (HTTP2), `kubernetes.io/ws` (HTTP) and
    /// `kubernetes.io/wss` (HTTPS), otherwise read like a port name.
    pub fn from_app_protocol(app_protocol: &str) -> Protocol {
        match app_protocol {
            "kubernetes.io/h2c" => Protocol::Http2,
            "kubernetes.io/ws" => Protocol::Http,
            "kubernetes.io/wss" => Protocol::Https,
            other => Protocol::from_port_name(other),
        }
    }

    /// The protocol of a Kubernetes Service port, as Istio decides it:
    /// UDP ports are UDP; otherwise `appProtocol` if set, else the port
    /// name; an unknown name on a well-known server-first port (25, 53,
    /// 3306, 27017) is TCP. A name prefix of `udp` on a TCP port does not
    /// make it UDP.
    pub fn for_service_port(
        number: u32,
        name: &str,
        app_protocol: Option<&str>,
        udp: bool,
    ) -> Protocol {
        if udp {
            return Protocol::Udp;
        }
        let p = match app_protocol {
            Some(app) => Protocol::from_app_protocol(app),
            None => Protocol::from_port_name(name),
        };
        match p {
            Protocol::Udp => Protocol::Tcp,
            Protocol::Unsupported if WELL_KNOWN_TCP_PORTS.contains(&number) => Protocol::Tcp,
            p => p,
        }
    }

    /// Parses a protocol name; `None` if Istio does not know it.
    pub fn parse_known(s: &str) -> Option<Protocol> {
        Some(Protocol::parse(s)).filter(|p| !p.is_unsupported())
    }

    /// Whether HTTP is the transport (HTTP, HTTP2, HTTP_PROXY, gRPC, gRPC-Web).
    pub const fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http
                | Protocol::Http2
                | Protocol::HttpProxy
                | Protocol::Grpc
                | Protocol::GrpcWeb
        )
    }

    /// Whether HTTP/2 is the transport (HTTP2, gRPC, gRPC-Web).
    pub const fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc | Protocol::GrpcWeb)
    }

    /// Whether it is gRPC (GRPC, GRPC-Web).
    pub const fn is_grpc(self) -> bool {
        matches!(self, Protocol::Grpc | Protocol::GrpcWeb)
    }

    /// Whether it is carried as opaque TCP by the proxy (TCP, HTTPS, TLS,
    /// Mongo, Redis, MySQL).
    pub const fn is_tcp(self) -> bool {
        matches!(
            self,
            Protocol::Tcp
                | Protocol::Https
                | Protocol::Tls
                | Protocol::Mongo
                | Protocol::Redis
                | Protocol::MySql
        )
    }

    /// Whether it runs over TLS (HTTPS, TLS).
    pub const fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }

    /// Whether it is HTTPS.
    pub const fn is_https(self) -> bool {
        matches!(self, Protocol::Https)
    }

    /// Whether it is not a protocol Istio knows.
    pub const fn is_unsupported(self) -> bool {
        matches!(self, Protocol::Unsupported)
    }

    /// The protocol left once TLS is terminated: HTTPS → HTTP, TLS → TCP.
    pub const fn after_tls_termination(self) -> Protocol {
        match self {
            Protocol::Https => Protocol::Http,
            Protocol::Tls => Protocol::Tcp,
            p => p,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively() {
        assert_eq!(Protocol::parse("http"), Protocol::Http);
        assert_eq!(Protocol::parse("HTTPS"), Protocol::Https);
        assert_eq!(Protocol::parse("grpc-web"), Protocol::GrpcWeb);
        assert_eq!(Protocol::parse("GRPC-WEB"), Protocol::GrpcWeb);
        assert_eq!(Protocol::parse("Mysql"), Protocol::MySql);
        assert_eq!(Protocol::parse("mongo"), Protocol::Mongo);
        assert_eq!(Protocol::parse("http_proxy"), Protocol::HttpProxy);
        assert_eq!(Protocol::parse(""), Protocol::Unsupported);
        assert_eq!(Protocol::parse("h2"), Protocol::Unsupported);
        for p in Protocol::KNOWN {
            assert_eq!(Protocol::parse(p.as_str()), p);
        }
    }

    #[test]
    fn port_names_follow_istio_convention() {
        assert_eq!(Protocol::from_port_name("http"), Protocol::Http);
        assert_eq!(Protocol::from_port_name("http-api"), Protocol::Http);
        assert_eq!(Protocol::from_port_name("http2-x"), Protocol::Http2);
        assert_eq!(Protocol::from_port_name("grpc"), Protocol::Grpc);
        assert_eq!(Protocol::from_port_name("grpc-web"), Protocol::GrpcWeb);
        assert_eq!(Protocol::from_port_name("grpc-web-ui"), Protocol::GrpcWeb);
        assert_eq!(Protocol::from_port_name("GRPC-Web"), Protocol::GrpcWeb);
        assert_eq!(Protocol::from_port_name("tcp-db"), Protocol::Tcp);
        assert_eq!(Protocol::from_port_name("https-admin"), Protocol::Https);
        assert_eq!(Protocol::from_port_name("web"), Protocol::Unsupported);
        assert_eq!(Protocol::from_port_name("httpx"), Protocol::Unsupported);
        assert_eq!(Protocol::from_port_name(""), Protocol::Unsupported);
    }

    #[test]
    fn app_protocol_and_service_ports() {
        assert_eq!(
            Protocol::from_app_protocol("kubernetes.io/h2c"),
            Protocol::Http2
        );
        assert_eq!(
            Protocol::from_app_protocol("kubernetes.io/ws"),
            Protocol::Http
        );
        assert_eq!(
            Protocol::from_app_protocol("kubernetes.io/wss"),
            Protocol::Https
        );
        assert_eq!(Protocol::from_app_protocol("grpc"), Protocol::Grpc);
        // appProtocol wins over the name.
        assert_eq!(
            Protocol::for_service_port(80, "tcp-x", Some("http"), false),
            Protocol::Http
        );
        assert_eq!(
            Protocol::for_service_port(80, "http", None, true),
            Protocol::Udp
        );
        assert_eq!(
            Protocol::for_service_port(80, "udp-x", None, false),
            Protocol::Tcp
        );
        assert_eq!(
            Protocol::for_service_port(3306, "db", None, false),
            Protocol::Tcp
        );
        assert_eq!(
            Protocol::for_service_port(8080, "db", None, false),
            Protocol::Unsupported
        );
    }

    #[test]
    fn families() {
        assert!(Protocol::Grpc.is_http() && Protocol::Grpc.is_http2() && Protocol::Grpc.is_grpc());
        assert!(Protocol::Https.is_tls() && Protocol::Https.is_tcp() && !Protocol::Https.is_http());
        assert!(Protocol::Tls.is_tls() && !Protocol::Tcp.is_tls());
        assert_eq!(Protocol::Https.after_tls_termination(), Protocol::Http);
        assert_eq!(Protocol::Tls.after_tls_termination(), Protocol::Tcp);
        assert_eq!(Protocol::Grpc.after_tls_termination(), Protocol::Grpc);
        assert!(Protocol::Unsupported.is_unsupported());
        assert_eq!(Protocol::GrpcWeb.to_string(), "GRPC-Web");
    }
}
