//! The Sidecar resource's outbound side: which services a proxy is told
//! about, on which ports, where its outbound listeners bind, and what
//! happens to traffic for anything else.
//!
//! The Sidecar for a proxy is the one in its namespace whose
//! `workloadSelector` selects its labels, else the one in its namespace
//! without selector, else the root namespace's one without selector (Istio's
//! order). Its egress listeners' `hosts` (`namespace/dnsName`, with `*`,
//! `.` for the proxy's own namespace, `~` for none) limit the services, as
//! Istio's `SidecarScope`:
//! - an egress listener with a `port` imports only the services with a
//!   port of that number, and only that port of each (Istio's
//!   `serviceMatchingListenerPort`); its outbound listener and route
//!   configuration for the port hold exactly those, with the listener's
//!   own protocol;
//! - the port-less (catch-all) listener imports every port of its hosts'
//!   services, and gives listeners and routes to the ports no egress
//!   listener with a port claimed (Istio "locks" those);
//! - without a catch-all, a port no egress listener claims gets no
//!   listener: its services aren't reachable.
//!
//! CDS is the union: a service port is sent if any egress listener
//! imports it. Egress listeners bound to a unix socket (port 0) and
//! `HTTP_PROXY` ones import every port of their hosts' services (Istio's
//! `needsPortMatch`) but get no listener of their own in Weft.
//!
//! The Sidecar's `outboundTrafficPolicy`, when set, replaces the mesh's
//! for the proxies it selects ([`catch_all`]). Without a Sidecar, or with
//! neither egress listeners nor an outbound policy, every visible service
//! is in scope and the mesh's policy applies.

use weft_config::networking::{
    CaptureMode, IstioEgressListener, OutboundTrafficMode, OutboundTrafficPolicy, Protocol, Sidecar,
};
use weft_config::{Kind, Resource, host};
use weft_registry::Service;

use super::cluster::{BLACKHOLE, PASSTHROUGH};
use super::policy::root_namespace;
use super::{Inputs, Interception, Proxy};

/// What a proxy's Sidecar resource says about its outbound side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressScope {
    /// The Sidecar it comes from (`namespace/name`).
    pub sidecar: String,
    /// Its egress listeners, in order; empty: Istio's default, one
    /// catch-all importing `*/*`.
    listeners: Vec<EgressListener>,
    /// Its `outboundTrafficPolicy` (`None`: the mesh's applies).
    outbound: Option<OutboundTrafficPolicy>,
}

/// One egress listener of a Sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressListener {
    /// Its port; `None` for the catch-all listener.
    pub port: Option<ListenerPort>,
    /// The address it binds (`bind`), if set: an IP, or `unix://path`.
    pub bind: Option<String>,
    /// Its `captureMode`.
    pub capture: CaptureMode,
    /// `(namespace selector, host pattern)`; namespace `*` is any.
    hosts: Vec<(String, String)>,
}

/// An egress listener's port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerPort {
    /// The number (0 with a `unix://` bind).
    pub number: u16,
    /// Its protocol (`Unsupported`, i.e. sniffed, when not given).
    pub protocol: Protocol,
}

/// Where a service port's outbound listener goes, as its egress listener
/// places it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The egress listener's protocol, overriding the service port's
    /// (`None`: the service port's own, as for the catch-all).
    pub protocol: Option<Protocol>,
    /// The address the listener is on (`bind`), `None`: the wildcard
    /// `0.0.0.0` (or, for a TCP service with an address, that address).
    pub bind: Option<String>,
    /// Whether the proxy binds the port itself.
    pub bind_to_port: bool,
}

impl EgressListener {
    fn from_spec(l: &IstioEgressListener) -> Self {
        EgressListener {
            port: l.port.as_ref().map(|p| ListenerPort {
                number: u16::try_from(p.number).unwrap_or(0),
                protocol: p.protocol(),
            }),
            bind: (!l.bind.is_empty()).then(|| l.bind.clone()),
            capture: l.capture_mode,
            hosts: l
                .hosts
                .iter()
                .filter_map(|h| h.split_once('/'))
                .map(|(ns, h)| (ns.to_string(), h.to_ascii_lowercase()))
                .collect(),
        }
    }

    /// The port it limits its services to: a port with a number, not a
    /// generic `HTTP_PROXY` port (Istio's `needsPortMatch`).
    fn matched_port(&self) -> Option<u16> {
        self.port
            .filter(|p| p.number != 0 && p.protocol != Protocol::HttpProxy)
            .map(|p| p.number)
    }

    /// Whether its hosts name `service` (seen from `proxy_namespace`).
    fn names(&self, service: &Service, proxy_namespace: &str) -> bool {
        self.hosts.iter().any(|(ns, pattern)| {
            let ns_ok = match ns.as_str() {
                "*" => true,
                "." => service.namespace == proxy_namespace,
                "~" => false,
                ns => service.namespace == ns,
            };
            ns_ok && host::matches(pattern, service.hostname.as_str())
        })
    }

    /// Whether it imports `port` of `service`.
    fn imports(&self, service: &Service, port: u16, proxy_namespace: &str) -> bool {
        self.matched_port().is_none_or(|p| p == port) && self.names(service, proxy_namespace)
    }
}

impl EgressScope {
    /// Whether some port of `service` is in scope for a proxy in
    /// `proxy_namespace`.
    pub fn allows(&self, service: &Service, proxy_namespace: &str) -> bool {
        service
            .ports
            .iter()
            .any(|p| self.allows_port(service, p.number, proxy_namespace))
    }

    /// Whether `port` of `service` is in scope (gets its clusters): some
    /// egress listener imports it.
    pub fn allows_port(&self, service: &Service, port: u16, proxy_namespace: &str) -> bool {
        self.listeners.is_empty()
            || self
                .listeners
                .iter()
                .any(|l| l.imports(service, port, proxy_namespace))
    }

    /// The egress listener that owns outbound `port`: the first with that
    /// port, else the catch-all (Istio's `GetEgressListenerForRDS`);
    /// `None` with neither, or for Istio's default catch-all.
    pub fn listener_for(&self, port: u16) -> Option<&EgressListener> {
        self.listeners
            .iter()
            .find(|l| l.matched_port() == Some(port))
            .or_else(|| self.listeners.iter().find(|l| l.port.is_none()))
    }

    /// Where `port` of `service` gets its outbound listener and routes
    /// (`None`: it gets none, though its clusters may still be sent).
    fn placement(
        &self,
        service: &Service,
        port: u16,
        proxy_namespace: &str,
        interception: Interception,
    ) -> Option<Placement> {
        if self.listeners.is_empty() {
            return Some(Placement::default_for(None, interception));
        }
        let listener = self.listener_for(port)?;
        listener
            .imports(service, port, proxy_namespace)
            .then(|| Placement::default_for(Some(listener), interception))
    }
}

impl Placement {
    /// The placement an egress listener (`None`: Istio's default one)
    /// gives its ports.
    ///
    /// Captured sidecars (REDIRECT, TPROXY), as Istio: the listener is on
    /// `bind` if set, else the wildcard, and is found by original
    /// destination — bound only with the egress listener's `captureMode:
    /// NONE` (the app dials it).
    ///
    /// Explicit mode (`NONE`): Istio binds every outbound listener (on
    /// `bind`, else 127.0.0.1) for the app to dial. Weft's explicit
    /// proxies reach `0.0.0.0_<port>` listeners through their HTTP-proxy
    /// port instead (one host runs many proxies; they couldn't all bind
    /// 127.0.0.1:<port>), so an egress listener without `bind` keeps
    /// that: unbound, looked up by port. With `bind`, the listener binds
    /// that address and port, as in Istio: the app dials it directly (not
    /// through the HTTP-proxy port, which finds only `0.0.0.0_<port>`).
    fn default_for(listener: Option<&EgressListener>, interception: Interception) -> Placement {
        let bind = listener.and_then(|l| l.bind.clone());
        let protocol = listener.and_then(|l| l.matched_port().and(l.port.map(|p| p.protocol)));
        let bind_to_port = match interception {
            Interception::None => bind.is_some(),
            Interception::Redirect | Interception::Tproxy => {
                listener.is_some_and(|l| l.capture == CaptureMode::None)
            }
        };
        Placement {
            protocol,
            bind,
            bind_to_port,
        }
    }
}

impl Proxy {
    /// Where `port` of `service` gets this proxy's outbound listener and
    /// routes, if it gets them: visible, and owned by an egress listener
    /// that imports it (see the module docs).
    pub fn placement(&self, service: &Service, port: u16) -> Option<Placement> {
        if !service.visible_from(&self.namespace) {
            return None;
        }
        match &self.egress {
            None => Some(Placement::default_for(None, self.interception)),
            Some(scope) => scope.placement(service, port, &self.namespace, self.interception),
        }
    }

    /// Whether `port` of `service` is sent to this proxy (its clusters).
    pub fn sees_port(&self, service: &Service, port: u16) -> bool {
        service.visible_from(&self.namespace)
            && self
                .egress
                .as_ref()
                .is_none_or(|e| e.allows_port(service, port, &self.namespace))
    }
}

/// Where a proxy sends traffic no service claims: its Sidecar's
/// `outboundTrafficPolicy` if set, else the mesh's (default `ALLOW_ANY`).
/// `ALLOW_ANY` passes it to its original destination
/// ([`PASSTHROUGH`]), or to the Sidecar's `egressProxy` cluster
/// (`outbound|<port>|<subset>|<host>`, as Istio's catch-all) when one is
/// set; `REGISTRY_ONLY` drops it ([`BLACKHOLE`]). An `egressProxy` whose
/// cluster this proxy isn't sent (its host not in scope on that port, or
/// an unknown subset) drops the traffic too, rather than let it leave
/// the mesh unproxied or point at a cluster the proxy doesn't have.
pub fn catch_all(inputs: Inputs<'_>, proxy: &Proxy) -> CatchAll {
    let sidecar = proxy.egress.as_ref().and_then(|e| e.outbound.as_ref());
    let mode = match sidecar {
        Some(p) => p.mode,
        None => inputs
            .config
            .mesh
            .outbound_traffic_policy
            .as_ref()
            .map_or(OutboundTrafficMode::AllowAny, |p| p.mode),
    };
    if mode == OutboundTrafficMode::RegistryOnly {
        return CatchAll::Blackhole;
    }
    let Some(egress) = sidecar.and_then(|p| p.egress_proxy.as_ref()) else {
        return CatchAll::Passthrough(PASSTHROUGH.to_string());
    };
    let port = egress.port.as_ref().map_or(0, |p| p.number);
    let cluster = super::names::outbound_cluster(
        u16::try_from(port).unwrap_or(0),
        &egress.subset,
        &egress.host,
    );
    if super::cluster::is_sent(inputs, proxy, &egress.host, port, &egress.subset) {
        CatchAll::Passthrough(cluster)
    } else {
        tracing::debug!(target: "weft::xds", proxy = %proxy.id, %cluster, "the Sidecar's egressProxy is not in the proxy's scope: unknown destinations are dropped");
        CatchAll::Blackhole
    }
}

/// What [`catch_all`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatchAll {
    /// Forwarded to this cluster (`PassthroughCluster` or the egress proxy's).
    Passthrough(String),
    /// Dropped (`BlackHoleCluster`; HTTP: 502).
    Blackhole,
}

impl CatchAll {
    /// The cluster a TCP proxy sends such traffic to.
    pub fn cluster(&self) -> &str {
        match self {
            CatchAll::Passthrough(c) => c,
            CatchAll::Blackhole => BLACKHOLE,
        }
    }
}

/// The Sidecar resource that applies to `proxy`: its namespace's one
/// selecting its labels, else its namespace's one without selector, else
/// the root namespace's one without selector.
pub fn sidecar_for<'a>(inputs: Inputs<'a>, proxy: &Proxy) -> Option<(&'a Resource, &'a Sidecar)> {
    // Sidecar resources shape sidecars (and proxyless clients), never
    // gateways: Istio gives a gateway its default scope.
    if proxy.kind == crate::translate::proxy::ProxyKind::Gateway {
        return None;
    }
    let root = root_namespace(inputs);
    let sidecars: Vec<(&Resource, &Sidecar)> = inputs
        .config
        .of_kind_in(Kind::Sidecar, &proxy.namespace)
        .chain(inputs.config.of_kind_in(Kind::Sidecar, &root))
        .filter_map(|r| r.spec_as::<Sidecar>().map(|s| (r.as_ref(), s)))
        .collect();
    let selects = |s: &Sidecar| {
        s.workload_selector
            .as_ref()
            .filter(|sel| !sel.labels.is_empty())
            .map(|sel| weft_config::select::selects(&sel.labels, &proxy.labels))
    };
    sidecars
        .iter()
        .find(|(r, s)| r.namespace() == proxy.namespace && selects(s) == Some(true))
        .or_else(|| {
            sidecars
                .iter()
                .find(|(r, s)| r.namespace() == proxy.namespace && selects(s).is_none())
        })
        .or_else(|| {
            sidecars
                .iter()
                .find(|(r, s)| r.namespace() == root && selects(s).is_none())
        })
        .copied()
}

/// The egress scope of `proxy`, or `None` when every visible service is
/// in scope and the mesh's outbound policy applies (no Sidecar, or one
/// with neither egress listeners nor an outbound traffic policy).
pub fn egress_scope(inputs: Inputs<'_>, proxy: &Proxy) -> Option<EgressScope> {
    let (res, sidecar) = sidecar_for(inputs, proxy)?;
    if sidecar.egress.is_empty() && sidecar.outbound_traffic_policy.is_none() {
        return None; // Istio's default egress listener: `*/*`
    }
    Some(EgressScope {
        sidecar: format!("{}/{}", res.namespace(), res.name()),
        listeners: sidecar
            .egress
            .iter()
            .map(EgressListener::from_spec)
            .collect(),
        outbound: sidecar.outbound_traffic_policy.clone(),
    })
}

#[cfg(test)]
mod tests;
