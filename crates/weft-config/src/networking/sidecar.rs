//! `Sidecar`: narrows what a workload's proxy listens on (ingress), which
//! services it can reach (egress), and what it does with unknown
//! destinations.
//!
//! Checks follow Istio's `ValidateSidecar`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::Protocol;
use super::service_entry::check_protocol;
use super::workload_entry::{check_unix_path, fqdn_error, is_name_label};
use super::{ConnectionPoolSettings, ServerTlsMode, ServerTlsSettings, WorkloadSelector};
use crate::validate::{Validate, Validator, check_host, check_port, is_dns1123_label};

/// `Sidecar` spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Sidecar {
    /// The workloads it applies to (default: every workload in the namespace).
    pub workload_selector: Option<WorkloadSelector>,
    /// Inbound listeners (default: from the workload's service ports).
    pub ingress: Vec<IstioIngressListener>,
    /// Outbound listeners and the services they import (default: all visible).
    pub egress: Vec<IstioEgressListener>,
    /// Connection pool for inbound traffic on every port.
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    /// What to do with traffic to destinations outside the registry.
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// `IstioIngressListener`: an inbound listener.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IstioIngressListener {
    /// The port to listen on; required.
    pub port: Option<SidecarPort>,
    /// IP address to bind (default: the workload's).
    pub bind: String,
    /// How traffic reaches the listener.
    pub capture_mode: CaptureMode,
    /// Where the application listens: `127.0.0.1:PORT`, `0.0.0.0:PORT`,
    /// `[::1]:PORT`, `[::]:PORT` or `unix:///path`.
    pub default_endpoint: String,
    /// TLS terminated by the listener.
    pub tls: Option<ServerTlsSettings>,
    /// Connection pool of this port (overrides `inboundConnectionPool`).
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// `IstioEgressListener`: an outbound listener.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IstioEgressListener {
    /// The port (number 0 with a `unix://` bind); none: a catch-all listener.
    pub port: Option<SidecarPort>,
    /// IP address or `unix://` socket to bind.
    pub bind: String,
    /// How traffic reaches the listener.
    pub capture_mode: CaptureMode,
    /// Services exposed, as `namespace/dnsName` (`*/`, `./`, `~/` allowed); required.
    pub hosts: Vec<String>,
}

/// `SidecarPort`: a listener port.
pub type SidecarPort = super::Port;

/// `CaptureMode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    /// The environment's default.
    #[default]
    Default,
    /// Redirected by iptables.
    Iptables,
    /// Not captured: the application connects to the listener itself.
    None,
}

/// `OutboundTrafficPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OutboundTrafficPolicy {
    /// Allow or block unknown destinations (default `REGISTRY_ONLY`).
    pub mode: OutboundTrafficMode,
    /// Send unknown destinations' traffic to this service (ALLOW_ANY only).
    pub egress_proxy: Option<EgressProxy>,
}

/// `OutboundTrafficPolicy.Mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficMode {
    /// Only services in the registry are reachable.
    #[default]
    RegistryOnly,
    /// Unknown destinations are passed through.
    AllowAny,
}

/// The `egressProxy` destination: `{host, subset, port: {number}}`.
pub type EgressProxy = super::Destination;

impl Validate for Sidecar {
    fn validate(&self, v: &mut Validator) {
        if self.workload_selector.is_none()
            && self.ingress.is_empty()
            && self.egress.is_empty()
            && self.inbound_connection_pool.is_none()
            && self.outbound_traffic_policy.is_none()
        {
            v.error("sidecar: empty configuration provided")
                .hint("a Sidecar needs at least one of egress, ingress, outboundTrafficPolicy or inboundConnectionPool");
        }
        if let Some(sel) = &self.workload_selector {
            v.field("workloadSelector", |v| {
                sel.validate(v);
                if sel.labels.is_empty() {
                    v.warn("workload selector specified without labels: the Sidecar applies to every workload in the namespace");
                }
            });
        }
        let mut ports = BTreeMap::new();
        v.field("ingress", |v| {
            for (i, l) in self.ingress.iter().enumerate() {
                v.index(i, |v| l.check(v, i, &mut ports));
            }
        });
        v.nested("inboundConnectionPool", &self.inbound_connection_pool);
        self.check_egress(v);
        v.nested("outboundTrafficPolicy", &self.outbound_traffic_policy);
    }
}

impl Sidecar {
    fn check_egress(&self, v: &mut Validator) {
        let mut ports = BTreeMap::new();
        let mut sockets: BTreeMap<&str, usize> = BTreeMap::new();
        let mut catch_all = None;
        let last = self.egress.len().saturating_sub(1);
        let own_ns = v.namespace().to_string();
        v.field("egress", |v| {
            for (i, l) in self.egress.iter().enumerate() {
                v.index(i, |v| {
                    match &l.port {
                        None => match catch_all {
                            Some(j) => {
                                v.error(format!(
                                    "sidecar: egress can have only one listener with empty port (egress[{j}] has none either)"
                                ));
                            }
                            None => {
                                catch_all = Some(i);
                                if i != last {
                                    v.error("sidecar: the egress listener with empty port should be the last listener in the list")
                                        .hint("move the catch-all listener to the end of egress");
                                }
                            }
                        },
                        Some(p) => {
                            v.field("port", |v| check_sidecar_port(v, p));
                            if p.number == 0 {
                                check_socket_bind(v, l);
                                if let Some(j) = sockets.insert(l.bind.as_str(), i) {
                                    v.field("bind", |v| {
                                        v.error(format!(
                                            "sidecar: unix domain socket values for listeners must be unique (egress[{j}] binds it too)"
                                        ));
                                    });
                                }
                            } else {
                                check_ip_bind(v, &l.bind);
                                unique_port(v, &mut ports, p.number, i, "egress");
                            }
                        }
                    }
                    if l.hosts.is_empty() {
                        v.required("hosts")
                            .hint("import services as namespace/host, e.g. \"./*\" or \"istio-system/*\"");
                    }
                    v.each("hosts", &l.hosts, |v, h| check_egress_host(v, h));
                    check_duplicate_hosts(v, &l.hosts, &own_ns);
                });
            }
        });
    }
}

impl IstioIngressListener {
    fn check(&self, v: &mut Validator, i: usize, ports: &mut BTreeMap<u32, usize>) {
        let Some(port) = &self.port else {
            v.required("port")
                .hint("an ingress listener names its port: port: {number: 9080, protocol: HTTP, name: http}");
            return;
        };
        v.field("port", |v| check_sidecar_port(v, port));
        if port.number == 0 {
            v.field("port", |v| {
                v.field("number", |v| {
                    v.error(
                        "port number 0 is invalid: ingress listeners need a port between 1-65535",
                    );
                });
            });
        } else {
            unique_port(v, ports, port.number, i, "ingress");
        }
        check_ip_bind(v, &self.bind);
        if !self.default_endpoint.is_empty() {
            v.field("defaultEndpoint", |v| {
                check_default_endpoint(v, &self.default_endpoint)
            });
        }
        if let Some(tls) = &self.tls {
            v.field("tls", |v| {
                tls.validate(v);
                if !tls.subject_alt_names.is_empty() {
                    v.field("subjectAltNames", |v| {
                        v.error("sidecar: subjectAltNames is not supported in ingress tls");
                    });
                }
                if tls.https_redirect {
                    v.field("httpsRedirect", |v| {
                        v.error("sidecar: httpsRedirect is not supported");
                    });
                }
                if !tls.credential_name.is_empty() || !tls.credential_names.is_empty() {
                    v.error("sidecar: credentialName is not currently supported")
                        .hint("use serverCertificate, privateKey and caCertificates file paths");
                }
                if matches!(tls.mode, ServerTlsMode::IstioMutual | ServerTlsMode::AutoPassthrough) {
                    v.field("mode", |v| {
                        v.error(format!(
                            "configuration is invalid: cannot set mode to {} in sidecar ingress tls",
                            if tls.mode == ServerTlsMode::IstioMutual { "ISTIO_MUTUAL" } else { "AUTO_PASSTHROUGH" }
                        ))
                        .hint("mesh mTLS on inbound traffic is configured with PeerAuthentication");
                    });
                }
            });
        }
        v.nested("connectionPool", &self.connection_pool);
        let http = Protocol::parse_known(&port.protocol).is_some_and(Protocol::is_http);
        if self
            .connection_pool
            .as_ref()
            .is_some_and(|c| c.http.is_some())
            && !http
        {
            v.field("connectionPool", |v| {
                v.field("http", |v| {
                    v.warn(format!(
                        "sidecar: HTTP connection pool settings are configured for port {} ({:?}) but its protocol is not HTTP ({:?}); only TCP settings will apply",
                        port.number, port.name, port.protocol
                    ));
                });
            });
        }
    }
}

/// Checks a listener port's name, protocol and (non-zero) number.
fn check_sidecar_port(v: &mut Validator, p: &SidecarPort) {
    if p.target_port > 0 {
        v.field("targetPort", |v| {
            v.error("targetPort has no impact on Sidecars")
                .hint("remove targetPort");
        });
    }
    if !p.name.is_empty() && !is_name_label(&p.name) {
        v.field("name", |v| {
            v.error(format!("invalid port name: {:?}", p.name));
        });
    }
    v.field("protocol", |v| check_protocol(v, &p.protocol));
    if p.number != 0 {
        v.field("number", |v| check_port(v, p.number));
    }
}

/// Ingress listeners and IP-bound egress listeners need distinct ports.
fn unique_port(v: &mut Validator, seen: &mut BTreeMap<u32, usize>, n: u32, i: usize, list: &str) {
    if let Some(j) = seen.insert(n, i) {
        v.field("port", |v| {
            v.field("number", |v| {
                v.error(format!(
                    "sidecar: ports on IP bound listeners must be unique: {n} is also {list}[{j}]"
                ));
            });
        });
    }
}

fn check_ip_bind(v: &mut Validator, bind: &str) {
    if !bind.is_empty() && bind.parse::<IpAddr>().is_err() {
        v.field("bind", |v| {
            v.error(format!("bind {bind:?} is not a valid IP"))
                .hint("bind an IP address; unix:// binds need port number 0 (egress only)");
        });
    }
}

/// An egress listener with port 0 binds a unix socket.
fn check_socket_bind(v: &mut Validator, l: &IstioEgressListener) {
    v.field("bind", |v| match l.bind.strip_prefix("unix://") {
        Some(path) => check_unix_path(v, path),
        None => {
            v.error("sidecar: ports with 0 value must have a unix domain socket bind address")
                .hint("bind: unix:///var/run/app.sock, or give the port a number");
        }
    });
    if !matches!(l.capture_mode, CaptureMode::Default | CaptureMode::None) {
        v.field("captureMode", |v| {
            v.error("sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners");
        });
    }
}

/// `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT`, `:PORT` or
/// `unix://path`.
fn check_default_endpoint(v: &mut Validator, ep: &str) {
    if let Some(path) = ep.strip_prefix("unix://") {
        check_unix_path(v, path);
        return;
    }
    let split = match ep.strip_prefix('[') {
        Some(rest) => rest.split_once("]:"),
        None => ep.rsplit_once(':').filter(|(h, _)| !h.contains(':')),
    };
    let Some((host, port)) = split else {
        v.error(format!("defaultEndpoint {ep:?} is not host:port"))
            .hint("write 127.0.0.1:8080, [::1]:8080 or unix:///path/to/socket");
        return;
    };
    if !matches!(host, "" | "127.0.0.1" | "0.0.0.0" | "::1" | "::") {
        v.error("sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset")
            .hint("the sidecar forwards inbound traffic to the application on this node");
    }
    match port.parse::<u32>() {
        Ok(n) => check_port(v, n),
        Err(_) => {
            v.error(format!(
                "sidecar: defaultEndpoint port ({port}) is not a number"
            ));
        }
    }
}

/// `namespace/dnsName`: namespace `*`, `.`, `~` or a name; dnsName `*`,
/// `*.suffix` or a fully qualified name.
fn check_egress_host(v: &mut Validator, host: &str) {
    let Some((ns, name)) = host.split_once('/') else {
        v.error(format!("host {host:?} must be of form namespace/dnsName"))
            .hint("e.g. \"./*\" (own namespace), \"istio-system/*\" or \"*/api.example.com\"");
        return;
    };
    if ns.is_empty() || name.is_empty() {
        v.error("config namespace and dnsName in host entry cannot be empty");
        return;
    }
    if !matches!(ns, "*" | "." | "~") && !is_dns1123_label(ns) {
        v.error(format!("invalid namespace value {ns:?} in sidecar"));
    }
    if name != "*" && !name.contains('.') {
        v.error(format!("short names (non FQDN) are not allowed: {name:?}"))
            .hint(format!(
                "write the full name, e.g. {ns}/{name}.<namespace>.svc.cluster.local, or {ns}/*"
            ));
        return;
    }
    check_host(v, name, true);
}

/// Istio warns on hosts another entry of the same listener already covers.
fn check_duplicate_hosts(v: &mut Validator, hosts: &[String], own_ns: &str) {
    let mut by_ns: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    v.field("hosts", |v| {
        for (i, h) in hosts.iter().enumerate() {
            let Some((ns, svc)) = h.split_once('/') else {
                continue;
            };
            let ns = if ns == "." {
                own_ns.to_string()
            } else {
                ns.to_string()
            };
            let seen = by_ns.entry(ns).or_default();
            let dup = if svc == "*" {
                !seen.is_empty()
            } else {
                seen.contains(svc) || seen.contains("*")
            };
            if dup {
                v.index(i, |v| {
                    v.warn(format!("duplicated egress host: {h}"));
                });
            }
            seen.insert(svc);
        }
        if by_ns.get("*").is_some_and(|s| s.contains("*")) && by_ns.len() != 1 {
            v.warn("`*/*` host select all resources, no other hosts can be added");
        }
    });
}

impl Validate for OutboundTrafficPolicy {
    fn validate(&self, v: &mut Validator) {
        let Some(proxy) = &self.egress_proxy else {
            return;
        };
        v.field("egressProxy", |v| {
            if self.mode != OutboundTrafficMode::AllowAny {
                v.error("sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode")
                    .hint("set mode: ALLOW_ANY");
                return;
            }
            if proxy.host.is_empty() {
                v.required("host");
            } else if let Some(e) = fqdn_error(&proxy.host) {
                v.field("host", |v| {
                    v.error(format!("egress proxy host {:?} is invalid: {e}", proxy.host));
                });
            }
            if !proxy.subset.is_empty() && !is_name_label(&proxy.subset) {
                v.field("subset", |v| {
                    v.error(format!("subset name is invalid: {:?}", proxy.subset));
                });
            }
            match &proxy.port {
                None => {
                    v.required("port").hint("sidecar: egress_proxy port must be non-nil");
                }
                Some(p) => v.field("port", |v| v.field("number", |v| check_port(v, p.number))),
            }
        });
    }
}

#[cfg(test)]
mod tests;
