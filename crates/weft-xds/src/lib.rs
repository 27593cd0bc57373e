//! Envoy xDS v3, as both sides of Weft speak it.
//!
//! The generated Envoy protos come from `envoy-types` (re-exported as
//! [`pb`]); this crate adds what the control plane and the proxy share:
//! the resource types Weft serves ([`TypeUrl`]) and packing to and from
//! `google.protobuf.Any`, written once here. Use `pb::google::protobuf::Any`
//! (not prost-types'), as every Envoy message refers to it.

use std::fmt;
use std::str::FromStr;

pub use envoy_types::pb;

pub mod json;
pub mod names;
use pb::google::protobuf::Any;
use prost::{Message, Name};

/// An xDS resource type Weft serves or asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypeUrl {
    /// `envoy.config.listener.v3.Listener` (LDS).
    Listener,
    /// `envoy.config.route.v3.RouteConfiguration` (RDS).
    RouteConfiguration,
    /// `envoy.config.cluster.v3.Cluster` (CDS).
    Cluster,
    /// `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
    ClusterLoadAssignment,
    /// `envoy.extensions.transport_sockets.tls.v3.Secret` (SDS).
    Secret,
    /// `envoy.config.route.v3.VirtualHost` (VHDS): the virtual hosts of a
    /// route configuration whose `vhds` is set, delta only, named
    /// `<route configuration>/<virtual host>` ([`names::vhost_resource`]).
    VirtualHost,
}

impl TypeUrl {
    /// Every type, in the order a client applies them (CDS, EDS, LDS, RDS,
    /// VHDS; secrets first, as clusters and listeners refer to them; a
    /// virtual host after its route configuration).
    pub const ALL: [TypeUrl; 6] = [
        TypeUrl::Secret,
        TypeUrl::Cluster,
        TypeUrl::ClusterLoadAssignment,
        TypeUrl::Listener,
        TypeUrl::RouteConfiguration,
        TypeUrl::VirtualHost,
    ];

    /// The full type URL (`type.googleapis.com/envoy.config.cluster.v3.Cluster`).
    pub const fn as_str(self) -> &'static str {
        match self {
            TypeUrl::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            TypeUrl::RouteConfiguration => {
                "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
            }
            TypeUrl::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            TypeUrl::ClusterLoadAssignment => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            TypeUrl::Secret => {
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            }
            TypeUrl::VirtualHost => "type.googleapis.com/envoy.config.route.v3.VirtualHost",
        }
    }

    /// The short name operators use (`CDS`, `EDS`, `LDS`, `RDS`, `SDS`,
    /// `VHDS`).
    pub const fn short_name(self) -> &'static str {
        match self {
            TypeUrl::Listener => "LDS",
            TypeUrl::RouteConfiguration => "RDS",
            TypeUrl::Cluster => "CDS",
            TypeUrl::ClusterLoadAssignment => "EDS",
            TypeUrl::Secret => "SDS",
            TypeUrl::VirtualHost => "VHDS",
        }
    }

    /// Whether clients subscribe to resources of this type by name (RDS,
    /// EDS, SDS; VHDS by route configuration name) rather than receiving
    /// all of them (LDS, CDS wildcard).
    pub const fn subscribed_by_name(self) -> bool {
        matches!(
            self,
            TypeUrl::RouteConfiguration
                | TypeUrl::ClusterLoadAssignment
                | TypeUrl::Secret
                | TypeUrl::VirtualHost
        )
    }
}

impl fmt::Display for TypeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A type URL Weft does not serve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown xDS type URL {0:?}")]
pub struct UnknownTypeUrl(pub String);

impl FromStr for TypeUrl {
    type Err = UnknownTypeUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TypeUrl::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTypeUrl(s.to_string()))
    }
}

/// A message Weft sends as an xDS resource.
pub trait Resource: Message + Name + Default + Sized {
    /// Its type.
    const TYPE: TypeUrl;

    /// The resource's name (what clients subscribe to and ACK).
    fn resource_name(&self) -> &str;
}

impl Resource for pb::envoy::config::listener::v3::Listener {
    const TYPE: TypeUrl = TypeUrl::Listener;
    fn resource_name(&self) -> &str {
        &self.name
    }
}

impl Resource for pb::envoy::config::route::v3::RouteConfiguration {
    const TYPE: TypeUrl = TypeUrl::RouteConfiguration;
    fn resource_name(&self) -> &str {
        &self.name
    }
}

impl Resource for pb::envoy::config::cluster::v3::Cluster {
    const TYPE: TypeUrl = TypeUrl::Cluster;
    fn resource_name(&self) -> &str {
        &self.name
    }
}

impl Resource for pb::envoy::config::endpoint::v3::ClusterLoadAssignment {
    const TYPE: TypeUrl = TypeUrl::ClusterLoadAssignment;
    fn resource_name(&self) -> &str {
        &self.cluster_name
    }
}

impl Resource for pb::envoy::extensions::transport_sockets::tls::v3::Secret {
    const TYPE: TypeUrl = TypeUrl::Secret;
    fn resource_name(&self) -> &str {
        &self.name
    }
}

/// Why an `Any` could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The `Any` holds another type.
    #[error("expected a {expected}, got {got:?}")]
    WrongType {
        /// The type asked for.
        expected: &'static str,
        /// The type URL the `Any` carries.
        got: String,
    },
    /// The bytes are not a valid message of the type.
    #[error("malformed {type_url}: {source}")]
    Malformed {
        /// The type URL.
        type_url: String,
        /// The decoder's error.
        source: prost::DecodeError,
    },
}

/// Packs any message into an `Any` with its type URL.
pub fn pack<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

/// Unpacks an `Any` holding an `M`.
pub fn unpack<M: Message + Name + Default>(any: &Any) -> Result<M, UnpackError> {
    if any.type_url != M::type_url() {
        return Err(UnpackError::WrongType {
            expected: M::NAME,
            got: any.type_url.clone(),
        });
    }
    M::decode(any.value.as_slice()).map_err(|source| UnpackError::Malformed {
        type_url: any.type_url.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::envoy::config::cluster::v3::Cluster;
    use pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use pb::envoy::config::listener::v3::Listener;
    use pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
    use pb::envoy::extensions::transport_sockets::tls::v3::Secret;

    #[test]
    fn type_urls_are_the_generated_messages_own() {
        assert_eq!(TypeUrl::Listener.as_str(), Listener::type_url());
        assert_eq!(
            TypeUrl::RouteConfiguration.as_str(),
            RouteConfiguration::type_url()
        );
        assert_eq!(TypeUrl::Cluster.as_str(), Cluster::type_url());
        assert_eq!(
            TypeUrl::ClusterLoadAssignment.as_str(),
            ClusterLoadAssignment::type_url()
        );
        assert_eq!(TypeUrl::Secret.as_str(), Secret::type_url());
        assert_eq!(TypeUrl::VirtualHost.as_str(), VirtualHost::type_url());
        assert_eq!(<Cluster as Resource>::TYPE, TypeUrl::Cluster);
    }

    #[test]
    fn type_urls_parse_back() {
        for t in TypeUrl::ALL {
            assert_eq!(t.as_str().parse::<TypeUrl>().ok(), Some(t));
        }
        assert!(
            "type.googleapis.com/envoy.config.cluster.v2.Cluster"
                .parse::<TypeUrl>()
                .is_err()
        );
    }

    #[test]
    fn pack_and_unpack_round_trip() {
        let c = Cluster {
            name: "outbound|9080|v1|reviews.default.svc.cluster.local".into(),
            ..Cluster::default()
        };
        let any = pack(&c);
        assert_eq!(any.type_url, TypeUrl::Cluster.as_str());
        let back: Cluster = unpack(&any).expect("unpack");
        assert_eq!(back.resource_name(), c.name);
    }

    #[test]
    fn unpacking_the_wrong_type_or_bad_bytes_is_an_error() {
        let any = pack(&Listener {
            name: "l".into(),
            ..Listener::default()
        });
        let err = unpack::<Cluster>(&any).expect_err("wrong type");
        assert!(err.to_string().contains("expected a Cluster"), "{err}");
        let bad = Any {
            type_url: Cluster::type_url(),
            value: vec![0xff, 0xff, 0xff],
        };
        assert!(matches!(
            unpack::<Cluster>(&bad),
            Err(UnpackError::Malformed { .. })
        ));
    }

    #[test]
    fn subscription_kinds() {
        assert!(TypeUrl::ClusterLoadAssignment.subscribed_by_name());
        assert!(!TypeUrl::Cluster.subscribed_by_name());
        assert_eq!(TypeUrl::Cluster.short_name(), "CDS");
    }
}
