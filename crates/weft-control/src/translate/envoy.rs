//! Small constructors for Envoy proto values, written once.

use weft_xds::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, Metadata, Pipe, SocketAddress,
    address, config_source, socket_address,
};
use weft_xds::pb::google::protobuf;

/// A protobuf `Duration` (from config durations: `duration(d.get())`).
pub fn duration(d: std::time::Duration) -> protobuf::Duration {
    protobuf::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf `UInt32Value`.
pub fn u32_value(value: u32) -> protobuf::UInt32Value {
    protobuf::UInt32Value { value }
}

/// A TCP socket address.
pub fn socket_address(ip: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..SocketAddress::default()
        })),
    }
}

/// A unix domain socket address.
pub fn pipe(path: &str) -> Address {
    Address {
        address: Some(address::Address::Pipe(Pipe {
            path: path.to_string(),
            mode: 0,
        })),
    }
}

/// "Get it over the same ADS stream", for EDS clusters and RDS.
pub fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..ConfigSource::default()
    }
}

/// `filter_metadata.istio.config`: the Istio resource a cluster or route
/// came from, as istiod marks it
/// (`/apis/networking.istio.io/v1alpha3/namespaces/<ns>/<kind>/<name>`,
/// `kind` being `destination-rule` or `virtual-service`; v1alpha3 whatever
/// version the YAML used, as istiod writes and `istioctl proxy-config`
/// expects). `weft proxy-config` shows it too.
pub fn istio_config_metadata(kind: &str, namespace: &str, name: &str) -> Metadata {
    let path = format!("/apis/networking.istio.io/v1alpha3/namespaces/{namespace}/{kind}/{name}");
    let fields = [(
        "config".to_string(),
        protobuf::Value {
            kind: Some(protobuf::value::Kind::StringValue(path)),
        },
    )]
    .into_iter()
    .collect();
    let mut metadata = Metadata::default();
    metadata
        .filter_metadata
        .insert("istio".to_string(), protobuf::Struct { fields });
    metadata
}
