//! `Gateway` (networking.istio.io): the ports, protocols, hosts and TLS a
//! gateway workload (ingress/egress) serves. Routing on those servers is
//! done by VirtualServices that name the Gateway.
//!
//! Validation follows Istio's `ValidateGateway`/`validateServer`, plus two
//! checks Istio only applies when it merges servers at run time: servers
//! sharing a port must have compatible protocols, and server names should
//! be unique.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::diag::Code;
use crate::networking::virtual_service::check_gateway_host;
use crate::networking::{Protocol, ServerTlsMode, ServerTlsSettings, TlsProtocol};
use crate::validate::{Validate, Validator, check_port, check_selector_labels};

#[cfg(test)]
mod tests;

/// `Gateway` spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Gateway {
    /// The servers (port, protocol, hosts, TLS) exposed; at least one.
    pub servers: Vec<Server>,
    /// Labels of the gateway pods that run this Gateway.
    pub selector: BTreeMap<String, String>,
}

/// `Server`: one port the gateway listens on and what it serves there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Server {
    /// Port number, protocol and name (required).
    pub port: Option<ServerPort>,
    /// IP address or `unix://` socket to bind to (default: all addresses).
    pub bind: String,
    /// Hosts served: `[namespace/]host`, namespace `*`, `.` or a name; host
    /// a full DNS name, `*`, a `*.`-wildcard or an IP (at least one).
    pub hosts: Vec<String>,
    /// TLS settings; required for HTTPS and TLS, and only `httpsRedirect`
    /// on HTTP.
    pub tls: Option<ServerTlsSettings>,
    /// Loopback endpoint or unix socket to forward to (unused by gateways).
    pub default_endpoint: String,
    /// Name of the server, for stats and Gateway API section names.
    pub name: String,
}

/// `Port` of a Gateway server.
pub type ServerPort = super::Port;

/// The prefix of a unix domain socket `bind`.
const UNIX_PREFIX: &str = "unix://";

/// Protocols a Gateway server can declare, as Istio's error lists them.
const SERVER_PROTOCOLS: &[&str] = &[
    "HTTP", "HTTPS", "HTTP2", "GRPC", "GRPC-WEB", "MONGO", "REDIS", "MYSQL", "TCP", "TLS",
];

impl Validate for Gateway {
    fn validate(&self, v: &mut Validator) {
        if self.servers.is_empty() {
            v.field("servers", |v| {
                v.report(Code::RequiredField, "gateway must have at least one server")
                    .hint("add `servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\"]}]`");
            });
        }
        v.field("selector", |v| check_selector_labels(v, &self.selector));
        v.each("servers", &self.servers, check_server);
        v.field("servers", |v| check_across_servers(v, &self.servers));
    }
}

fn check_server(v: &mut Validator, s: &Server) {
    if s.hosts.is_empty() {
        v.field("hosts", |v| {
            v.report(
                Code::RequiredField,
                "server config must contain at least one host",
            )
            .hint("list the hosts served, e.g. `hosts: [\"*.example.com\"]` or `[\"*\"]`");
        });
    }
    v.field("hosts", |v| {
        for (i, h) in s.hosts.iter().enumerate() {
            v.index(i, |v| check_gateway_host(v, h));
        }
    });
    let unix = s.bind.starts_with(UNIX_PREFIX);
    let protocol = match &s.port {
        None => {
            v.required("port")
                .hint("port is required: `port: {number: 443, name: https, protocol: HTTPS}`");
            None
        }
        Some(p) => v.field("port", |v| check_server_port(v, p, unix)),
    };
    check_bind(v, &s.bind);
    v.nested("tls", &s.tls);
    if let Some(tls) = &s.tls {
        v.field("tls", |v| check_tls_extras(v, tls, protocol));
    }
    if let Some(p) = protocol {
        match &s.tls {
            None if p.is_tls() => {
                v.field("tls", |v| {
                    v.report(
                        Code::RequiredField,
                        "server must have TLS settings for HTTPS/TLS protocols",
                    )
                    .hint("add `tls: {mode: SIMPLE, credentialName: <secret>}` or `tls: {mode: PASSTHROUGH}`");
                });
            }
            Some(tls) if !p.is_tls() => {
                if p.is_http() {
                    let passthrough = matches!(
                        tls.mode,
                        ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
                    );
                    if !passthrough
                        || !tls.ca_certificates.is_empty()
                        || !tls.private_key.is_empty()
                        || !tls.server_certificate.is_empty()
                    {
                        v.field("tls", |v| {
                            v.error("server cannot have TLS settings for plain text HTTP ports")
                                .hint("on an HTTP server, tls may only set `httpsRedirect: true`; use protocol HTTPS to terminate TLS");
                        });
                    }
                } else {
                    v.field("tls", |v| {
                        v.error("server cannot have TLS settings for non HTTPS/TLS ports")
                            .hint("use protocol HTTPS or TLS, or remove tls");
                    });
                }
            }
            _ => {}
        }
        if !p.is_http() && s.tls.as_ref().is_some_and(|t| t.https_redirect) {
            v.field("tls", |v| {
                v.field("httpsRedirect", |v| {
                    v.warn("tls.httpsRedirect should only be used with http servers")
                        .hint("put httpsRedirect on the plain HTTP server that should redirect");
                });
            });
        }
    }
    if !s.default_endpoint.is_empty() {
        v.field("defaultEndpoint", |v| {
            v.report(
                Code::NotSupported,
                "defaultEndpoint has no effect on Gateways",
            );
        });
    }
}

/// Checks a server port; returns its protocol when it is a known one.
fn check_server_port(v: &mut Validator, p: &ServerPort, unix: bool) -> Option<Protocol> {
    let protocol = p.protocol();
    if p.protocol.is_empty() {
        v.field("protocol", |v| {
            v.report(Code::RequiredField, "protocol is required")
                .hint(format!("use one of {}", SERVER_PROTOCOLS.join(", ")));
        });
    } else if protocol.is_unsupported() {
        v.field("protocol", |v| {
            let e = v.error(format!(
                "invalid protocol {:?}, supported protocols are {}",
                p.protocol,
                SERVER_PROTOCOLS.join(", ")
            ));
            if let Some(s) = crate::de::suggest(&p.protocol, SERVER_PROTOCOLS) {
                e.hint(format!("did you mean {s:?}?"));
            }
        });
    } else if protocol == Protocol::Udp {
        v.field("protocol", |v| {
            v.report(
                Code::NotSupported,
                "UDP servers are not proxied by gateways",
            );
        });
    }
    if unix {
        if p.number != 0 {
            v.field("number", |v| {
                v.error(format!(
                    "port number must be 0 for unix domain socket: {}",
                    p.number
                ))
                .hint("a server bound to a unix:// socket has no port number");
            });
        }
    } else {
        v.field("number", |v| check_port(v, p.number));
    }
    if p.target_port > 0 {
        v.field("targetPort", |v| {
            v.error("targetPort has no impact on Gateways")
                .hint("remove targetPort; a Gateway listens on `number` itself");
        });
    }
    if p.name.is_empty() {
        v.field("name", |v| {
            v.report(Code::RequiredField, "port name must be set")
                .hint("name the port, e.g. \"https-443\"");
        });
    }
    (!protocol.is_unsupported()).then_some(protocol)
}

fn check_bind(v: &mut Validator, bind: &str) {
    if let Some(path) = bind.strip_prefix(UNIX_PREFIX) {
        let ok = path.starts_with('@') || (path.starts_with('/') && !path.ends_with('/'));
        if !ok {
            v.field("bind", |v| {
                v.error(format!("{path} is not an absolute path to a file"))
                    .hint("write unix:///path/to/socket, or unix://@name for an abstract socket");
            });
        }
    } else if !bind.is_empty() && bind.parse::<std::net::IpAddr>().is_err() {
        v.field("bind", |v| {
            v.error(format!("{bind} is not a valid IP"))
                .hint("bind is an IP address (e.g. 0.0.0.0) or unix:///path");
        });
    }
}

/// TLS rules Istio applies to Gateway servers beyond those every
/// `ServerTlsSettings` has (see `networking/common.rs`).
fn check_tls_extras(v: &mut Validator, tls: &ServerTlsSettings, protocol: Option<Protocol>) {
    if tls.mode == ServerTlsMode::IstioMutual {
        let fields = [
            (
                "serverCertificate",
                !tls.server_certificate.is_empty(),
                "server certificate",
            ),
            ("privateKey", !tls.private_key.is_empty(), "private key"),
            (
                "caCertificates",
                !tls.ca_certificates.is_empty(),
                "CA bundle",
            ),
            (
                "tlsCertificates",
                !tls.tls_certificates.is_empty(),
                "tlsCertificates",
            ),
            (
                "credentialName",
                !tls.credential_name.is_empty(),
                "credentialName",
            ),
            (
                "credentialNames",
                !tls.credential_names.is_empty(),
                "credentialNames",
            ),
        ];
        for (field, set, what) in fields {
            if set {
                v.field(field, |v| {
                    v.conflict(format!("ISTIO_MUTUAL TLS cannot have associated {what}"))
                        .hint("ISTIO_MUTUAL uses the workload certificate; use MUTUAL to bring your own");
                });
            }
        }
        return;
    }
    let has_material = !tls.ca_crl.is_empty()
        || !tls.server_certificate.is_empty()
        || !tls.private_key.is_empty()
        || !tls.ca_certificates.is_empty()
        || !tls.tls_certificates.is_empty()
        || !tls.credential_name.is_empty()
        || !tls.credential_names.is_empty();
    let passthrough = matches!(
        tls.mode,
        ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
    );
    if passthrough && has_material && !protocol.is_some_and(Protocol::is_http) {
        v.field("mode", |v| {
            v.warn(format!(
                "{} mode does not use certificates, they will be ignored",
                if tls.mode == ServerTlsMode::Passthrough {
                    "PASSTHROUGH"
                } else {
                    "AUTO_PASSTHROUGH"
                }
            ))
            .hint("set mode SIMPLE or MUTUAL to terminate TLS with them");
        });
    }
    let has_files = !tls.server_certificate.is_empty() || !tls.private_key.is_empty();
    if has_files && !tls.tls_certificates.is_empty() {
        v.field("tlsCertificates", |v| {
            v.conflict("only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified");
        });
    }
    if !tls.ca_crl.is_empty() {
        if !tls.credential_name.is_empty() {
            v.field("caCrl", |v| {
                v.conflict("CRL is not supported with credentialName. CRL has to be specified in the credential")
                    .hint("put the CRL in the secret (key `ca.crl`)");
            });
        }
        if tls.mode == ServerTlsMode::Simple {
            v.field("caCrl", |v| {
                v.error("CRL is not supported with SIMPLE TLS")
                    .hint("a CRL checks client certificates: use mode MUTUAL");
            });
        }
    }
    if matches!(
        tls.min_protocol_version,
        TlsProtocol::TlsV1_0 | TlsProtocol::TlsV1_1
    ) && tls.cipher_suites.is_empty()
    {
        v.field("minProtocolVersion", |v| {
            v.warn("TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.")
                .hint("list cipherSuites that TLS 1.0/1.1 clients support");
        });
    }
    for (i, c) in tls.cipher_suites.iter().enumerate() {
        if tls.cipher_suites[..i].contains(c) {
            v.field("cipherSuites", |v| {
                v.index(i, |v| {
                    v.warn(format!("ignoring duplicate cipher suite {c}"));
                });
            });
        }
    }
}

/// Rules between servers: unique port names, unique server names, and
/// compatible protocols on a shared port.
fn check_across_servers(v: &mut Validator, servers: &[Server]) {
    for (j, s) in servers.iter().enumerate() {
        v.index(j, |v| {
            let earlier = &servers[..j];
            if let Some(p) = &s.port {
                if !p.name.is_empty()
                    && earlier
                        .iter()
                        .any(|o| o.port.as_ref().is_some_and(|q| q.name == p.name))
                {
                    v.field("port", |v| {
                        v.field("name", |v| {
                            v.error(format!(
                                "port names in servers must be unique: duplicate name {}",
                                p.name
                            ))
                            .hint("give each server's port its own name");
                        });
                    });
                }
                check_port_sharing(v, s, p, earlier);
            }
            if !s.name.is_empty() && earlier.iter().any(|o| o.name == s.name) {
                v.field("name", |v| {
                    v.warn(format!(
                        "server name {:?} is used by another server",
                        s.name
                    ))
                    .hint("server names identify servers in stats and Gateway API references");
                });
            }
        });
    }
}

/// Servers on one port (and bind) are merged: they must all be HTTP
/// (HTTP, HTTP2, GRPC, GRPC-WEB) or all TLS (HTTPS, TLS); two opaque TCP
/// servers cannot share a port.
fn check_port_sharing(v: &mut Validator, s: &Server, p: &ServerPort, earlier: &[Server]) {
    let mine = p.protocol();
    if mine.is_unsupported() {
        return;
    }
    for (i, o) in earlier.iter().enumerate() {
        let Some(q) = &o.port else { continue };
        let theirs = q.protocol();
        if q.number != p.number || o.bind != s.bind || theirs.is_unsupported() {
            continue;
        }
        let compatible = (mine.is_http() && theirs.is_http()) || (mine.is_tls() && theirs.is_tls());
        if compatible {
            continue;
        }
        let at = if p.number == 0 {
            format!("bind {}", s.bind)
        } else {
            format!("port {}", p.number)
        };
        v.field("port", |v| {
            if mine == theirs {
                v.conflict(format!(
                    "{at} is already used by servers[{i}] ({theirs}): only one {mine} server can use a port"
                ))
                .hint("merge the hosts into one server, or use another port");
            } else {
                v.conflict(format!(
                    "{at} is already used by servers[{i}] with protocol {theirs}: servers sharing a port must all be HTTP (HTTP, HTTP2, GRPC) or all TLS (HTTPS, TLS)"
                ))
                .hint("use another port for this server");
            }
        });
        return;
    }
}
