//! What the state machine speaks in: the protocol, the resource types
//! ([`Kind`]: xDS's four plus VHDS's virtual hosts) and the requests it
//! makes in either protocol.

use weft_xds::TypeUrl;
use weft_xds::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};

use super::vhds;

/// Which xDS protocol the stream speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Incremental (`DeltaAggregatedResources`), with VHDS: Istio's
    /// default since 1.22.
    #[default]
    Delta,
    /// State of the world (`StreamAggregatedResources`).
    Sotw,
}

/// A resource type the client subscribes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// CDS.
    Cluster,
    /// EDS.
    Endpoints,
    /// LDS.
    Listener,
    /// RDS.
    Routes,
    /// VHDS (delta only).
    VirtualHosts,
}

/// The types, in the order the client applies (and ACKs) them.
pub const KINDS: [Kind; 5] = [
    Kind::Cluster,
    Kind::Endpoints,
    Kind::Listener,
    Kind::Routes,
    Kind::VirtualHosts,
];

impl Kind {
    /// Its type URL.
    pub fn type_url(self) -> &'static str {
        match self {
            Kind::Cluster => TypeUrl::Cluster.as_str(),
            Kind::Endpoints => TypeUrl::ClusterLoadAssignment.as_str(),
            Kind::Listener => TypeUrl::Listener.as_str(),
            Kind::Routes => TypeUrl::RouteConfiguration.as_str(),
            Kind::VirtualHosts => vhds::TYPE_URL,
        }
    }

    /// `CDS`, `EDS`, `LDS`, `RDS`, `VHDS`.
    pub fn short_name(self) -> &'static str {
        match self {
            Kind::Cluster => "CDS",
            Kind::Endpoints => "EDS",
            Kind::Listener => "LDS",
            Kind::Routes => "RDS",
            Kind::VirtualHosts => "VHDS",
        }
    }

    /// The kind of a type URL.
    pub fn parse(type_url: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.type_url() == type_url)
    }

    /// Whether it is subscribed to by name (EDS, RDS, VHDS), not a wildcard.
    pub(super) fn by_name(self) -> bool {
        !matches!(self, Kind::Cluster | Kind::Listener)
    }

    /// The message's name, for errors.
    pub(super) fn resource_name(self) -> &'static str {
        match self {
            Kind::Cluster => "Cluster",
            Kind::Endpoints => "ClusterLoadAssignment",
            Kind::Listener => "Listener",
            Kind::Routes => "RouteConfiguration",
            Kind::VirtualHosts => "VirtualHost",
        }
    }
}

/// A request to send, in the stream's protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// State of the world.
    Sotw(DiscoveryRequest),
    /// Delta.
    Delta(DeltaDiscoveryRequest),
}

impl Request {
    /// Whether it rejects a response.
    pub fn is_nack(&self) -> bool {
        match self {
            Request::Sotw(r) => r.error_detail.is_some(),
            Request::Delta(r) => r.error_detail.is_some(),
        }
    }

    /// Its type URL.
    pub fn type_url(&self) -> &str {
        match self {
            Request::Sotw(r) => &r.type_url,
            Request::Delta(r) => &r.type_url,
        }
    }

    /// The nonce it answers (empty: none).
    pub fn nonce(&self) -> &str {
        match self {
            Request::Sotw(r) => &r.response_nonce,
            Request::Delta(r) => &r.response_nonce,
        }
    }

    /// Why it rejects, if it does.
    pub fn error(&self) -> Option<&str> {
        match self {
            Request::Sotw(r) => r.error_detail.as_ref(),
            Request::Delta(r) => r.error_detail.as_ref(),
        }
        .map(|e| e.message.as_str())
    }
}
