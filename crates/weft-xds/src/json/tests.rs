use serde_json::json;

use super::*;
use crate::pack;
use crate::pb::envoy::admin::v3::{ClustersConfigDump, ConfigDump, clusters_config_dump};
use crate::pb::envoy::config::cluster::v3::{Cluster, cluster};
use crate::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ConfigSource, HealthStatus, config_source,
};
use crate::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use crate::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use crate::pb::envoy::config::route::v3::RouteConfiguration;
use crate::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
use crate::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use crate::pb::envoy::extensions::filters::http::router::v3::Router;
use crate::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use crate::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use crate::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use crate::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use crate::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use crate::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use crate::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use crate::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use crate::pb::google::protobuf::{Duration, UInt32Value};

fn hcm_listener() -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: "outbound_0.0.0.0_9080".into(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ConfigSource {
                config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                ..ConfigSource::default()
            }),
            route_config_name: "9080".into(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack(
                &Router::default(),
            ))),
            ..HttpFilter::default()
        }],
        stream_idle_timeout: Some(Duration {
            seconds: 5,
            nanos: 0,
        }),
        ..HttpConnectionManager::default()
    };
    Listener {
        name: "0.0.0.0_9080".into(),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack(&hcm))),
            }],
            ..FilterChain::default()
        }],
        ..Listener::default()
    }
}

#[test]
fn a_listener_renders_the_hcm_inside_its_any() {
    let json = to_json(&pack(&hcm_listener())).expect("json");
    assert_eq!(
        json["@type"],
        "type.googleapis.com/envoy.config.listener.v3.Listener"
    );
    assert_eq!(json["name"], "0.0.0.0_9080");
    let hcm = &json["filterChains"][0]["filters"][0]["typedConfig"];
    assert_eq!(
        hcm["@type"],
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    );
    assert_eq!(hcm["statPrefix"], "outbound_0.0.0.0_9080");
    assert_eq!(hcm["rds"]["routeConfigName"], "9080");
    assert_eq!(hcm["rds"]["configSource"]["ads"], json!({}));
    assert_eq!(hcm["streamIdleTimeout"], "5s");
    assert_eq!(
        hcm["httpFilters"][0]["typedConfig"],
        json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"})
    );
    // "@type" comes first, as protobuf's printers put it.
    let text = serde_json::to_string(&json).expect("text");
    assert!(text.starts_with("{\"@type\":"), "{text}");
}

#[test]
fn well_known_types_enums_and_wrappers_use_the_canonical_mapping() {
    let c = Cluster {
        name: "outbound|9080|v1|reviews.default.svc.cluster.local".into(),
        connect_timeout: Some(Duration {
            seconds: 5,
            nanos: 0,
        }),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        per_connection_buffer_limit_bytes: Some(UInt32Value { value: 32768 }),
        ..Cluster::default()
    };
    let json = message_to_json(&c).expect("json");
    assert_eq!(json["connectTimeout"], "5s");
    assert_eq!(json["type"], "EDS");
    assert_eq!(json["perConnectionBufferLimitBytes"], 32768);
    assert!(json.get("@type").is_none());
    let half = message_to_json(&Duration {
        seconds: 1,
        nanos: 500_000_000,
    })
    .expect("duration");
    assert_eq!(half, "1.500s");

    let cla = ClusterLoadAssignment {
        cluster_name: "outbound|9080||reviews".into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                health_status: HealthStatus::Unhealthy as i32,
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Default::default())),
                ..LbEndpoint::default()
            }],
            priority: 1,
            ..LocalityLbEndpoints::default()
        }],
        ..ClusterLoadAssignment::default()
    };
    let json = message_to_json(&cla).expect("json");
    assert_eq!(
        json["endpoints"][0]["lbEndpoints"][0]["healthStatus"],
        "UNHEALTHY"
    );
    assert_eq!(json["endpoints"][0]["priority"], 1);
}

#[test]
fn a_config_dump_nests_its_resources() {
    let dump = ConfigDump {
        configs: vec![pack(&ClustersConfigDump {
            version_info: "7".into(),
            dynamic_active_clusters: vec![clusters_config_dump::DynamicCluster {
                version_info: "7".into(),
                cluster: Some(pack(&Cluster {
                    name: "c".into(),
                    ..Cluster::default()
                })),
                ..Default::default()
            }],
            ..ClustersConfigDump::default()
        })],
    };
    let json = message_to_json(&dump).expect("json");
    let clusters = &json["configs"][0];
    assert_eq!(
        clusters["@type"],
        "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"
    );
    assert_eq!(clusters["versionInfo"], "7");
    assert_eq!(
        clusters["dynamicActiveClusters"][0]["cluster"],
        json!({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "c"})
    );
    let back: ConfigDump = message_from_json(&json).expect("read back");
    assert_eq!(back, dump);
}

/// Every message the control plane packs into an `Any` (the resources and
/// each `typed_config` / extension options the translation sets) has a
/// descriptor and survives JSON both ways.
#[test]
fn every_packed_type_resolves_and_round_trips() {
    fn round_trip<M: Message + Name + Default + PartialEq + std::fmt::Debug>(m: M) {
        let any = pack(&m);
        let json = to_json(&any).unwrap_or_else(|e| panic!("{}: {e}", M::full_name()));
        assert_eq!(json["@type"], any.type_url);
        let mut fields = json.clone();
        if let Some(o) = fields.as_object_mut() {
            o.remove("@type");
        }
        let back: M =
            message_from_json(&fields).unwrap_or_else(|e| panic!("{}: {e}", M::full_name()));
        assert_eq!(back, m, "{json}");
    }
    round_trip(hcm_listener());
    round_trip(Cluster {
        name: "c".into(),
        ..Cluster::default()
    });
    round_trip(ClusterLoadAssignment::default());
    round_trip(RouteConfiguration {
        name: "9080".into(),
        ..RouteConfiguration::default()
    });
    round_trip(HttpConnectionManager::default());
    round_trip(Router::default());
    round_trip(HttpFault::default());
    round_trip(Cors::default());
    round_trip(CorsPolicy::default());
    round_trip(PreviousHostsPredicate::default());
    round_trip(PreviousPrioritiesConfig {
        update_frequency: 2,
    });
    round_trip(TcpProxy {
        stat_prefix: "outbound|3306||db".into(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(
            "outbound|3306||db".into(),
        )),
        ..TcpProxy::default()
    });
    round_trip(OriginalDst::default());
    round_trip(TlsInspector::default());
    round_trip(HttpInspector::default());
    round_trip(HttpProtocolOptions::default());
    round_trip(ConfigDump::default());
}

#[test]
fn unknown_types_are_errors_not_panics() {
    let any = Any {
        type_url: "type.googleapis.com/acme.Widget".into(),
        value: vec![],
    };
    assert!(matches!(to_json(&any), Err(JsonError::UnknownType(n)) if n == "acme.Widget"));
    let bad = Any {
        type_url: "no-slash".into(),
        value: vec![],
    };
    assert!(matches!(to_json(&bad), Err(JsonError::BadTypeUrl(_))));
    // An unknown Any nested inside a known message.
    let listener = Listener {
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "x".into(),
                config_type: Some(filter::ConfigType::TypedConfig(any)),
            }],
            ..FilterChain::default()
        }],
        ..Listener::default()
    };
    let err = to_json(&pack(&listener)).expect_err("nested unknown type");
    assert!(err.to_string().contains("acme.Widget"), "{err}");
    let truncated = Any {
        type_url: Cluster::type_url(),
        value: vec![0x0a, 0x05, b'a'],
    };
    assert!(matches!(to_json(&truncated), Err(JsonError::Decode { .. })));
}

/// The checked-in descriptors are what `scripts/xds-descriptors.sh` makes
/// from the locked envoy-types: bump one, regenerate the other.
#[test]
fn the_checked_in_descriptors_are_current() {
    let src = descriptors::envoy_types_descriptor_set(env!("CARGO")).expect("locate envoy-types");
    let full = std::fs::read(&src).expect("read envoy-types' descriptor set");
    let pruned = descriptors::prune(&full, descriptors::ROOTS).expect("prune");
    assert!(
        pruned == DESCRIPTORS,
        "crates/weft-xds/descriptors/envoy.bin is out of date: run scripts/xds-descriptors.sh"
    );
    assert!(pool().expect("pool").files().len() > 100);
}
