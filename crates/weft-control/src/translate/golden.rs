//! The golden CDS/EDS test: what the productpage sidecar of `examples/` is
//! sent, as JSON, against `tests/golden/cds-eds-productpage.json`
//! (`WEFT_BLESS=1` rewrites it). The JSON names Envoy's fields and holds
//! what translation sets, so a reviewer can check it against what Istio
//! would send for the same YAML.

use serde_json::{Value, json};
use weft_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use weft_xds::pb::envoy::config::core::v3::{
    TransportSocket, address, socket_address, transport_socket,
};
use weft_xds::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use weft_xds::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use weft_xds::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::UpstreamProtocolOptions;
use weft_xds::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::explicit_http_config::ProtocolConfig;

use super::cluster::HTTP_PROTOCOL_OPTIONS;
use super::test_inputs::{TestMesh, check_golden, duration_json};
use super::{Proxy, translate};

fn cluster_json(c: &Cluster) -> Value {
    let kind = match c.cluster_discovery_type {
        Some(cluster::ClusterDiscoveryType::Type(t)) => {
            cluster::DiscoveryType::try_from(t).map_or("?", |d| d.as_str_name())
        }
        _ => "?",
    };
    let lb = cluster::LbPolicy::try_from(c.lb_policy).map_or("?", |l| l.as_str_name());
    let mut o = json!({"name": c.name, "type": kind, "lb_policy": lb});
    if let Some(t) = &c.connect_timeout {
        o["connect_timeout"] = duration_json(t);
    }
    if let Some(eds) = &c.eds_cluster_config {
        o["eds_service_name"] = json!(eds.service_name);
    }
    if let Some(t) = c
        .circuit_breakers
        .as_ref()
        .and_then(|b| b.thresholds.first())
    {
        let limit =
            |v: Option<weft_xds::pb::google::protobuf::UInt32Value>| match v.map(|v| v.value) {
                Some(u32::MAX) | None => json!("max"),
                Some(n) => json!(n),
            };
        o["circuit_breakers"] = json!({
            "max_connections": limit(t.max_connections),
            "max_pending_requests": limit(t.max_pending_requests),
            "max_requests": limit(t.max_requests),
            "max_retries": limit(t.max_retries),
        });
    }
    if let Some(od) = &c.outlier_detection {
        o["outlier_detection"] = json!({
            "consecutive_5xx": od.consecutive_5xx.map(|v| v.value),
            "interval": od.interval.as_ref().map(duration_json),
            "base_ejection_time": od.base_ejection_time.as_ref().map(duration_json),
            "max_ejection_percent": od.max_ejection_percent.map(|v| v.value),
        });
    }
    if let Some(any) = c
        .typed_extension_protocol_options
        .get(HTTP_PROTOCOL_OPTIONS)
    {
        let options: HttpProtocolOptions = weft_xds::unpack(any).expect("http options");
        let protocol = match options.upstream_protocol_options {
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(e)) => match e.protocol_config {
                Some(ProtocolConfig::Http2ProtocolOptions(_)) => "http2",
                Some(ProtocolConfig::HttpProtocolOptions(_)) => "http1",
                _ => "?",
            },
            Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(_)) => "downstream",
            _ => "?",
        };
        o["upstream_http"] = json!(protocol);
    }
    if let Some(socket) = &c.transport_socket {
        o["tls"] = tls_json(socket);
    }
    if !c.transport_socket_matches.is_empty() {
        o["transport_socket_matches"] = c
            .transport_socket_matches
            .iter()
            .map(|m| match &m.transport_socket {
                Some(s) if s.name == super::tls::TLS_SOCKET => {
                    json!({"name": m.name, "tls": tls_json(s)})
                }
                _ => json!({"name": m.name}),
            })
            .collect();
    }
    o
}

/// SNI, certificate and root secrets, expected identities and ALPN of a TLS
/// transport socket.
fn tls_json(socket: &TransportSocket) -> Value {
    use weft_xds::pb::envoy::extensions::transport_sockets::tls::v3::{
        UpstreamTlsContext, common_tls_context::ValidationContextType,
    };
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &socket.config_type else {
        return json!("?");
    };
    let ctx: UpstreamTlsContext = weft_xds::unpack(any).expect("tls context");
    let common = ctx.common_tls_context.unwrap_or_default();
    let (sans, root) = match common.validation_context_type {
        Some(ValidationContextType::CombinedValidationContext(c)) => {
            #[allow(deprecated)]
            let sans: Vec<String> = c
                .default_validation_context
                .map(|v| v.match_subject_alt_names)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|m| match m.match_pattern {
                    Some(weft_xds::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern::Exact(s)) => Some(s),
                    _ => None,
                })
                .collect();
            (sans, c.validation_context_sds_secret_config.map(|s| s.name))
        }
        _ => (Vec::new(), None),
    };
    json!({
        "sni": ctx.sni,
        "certificate": common.tls_certificate_sds_secret_configs.first().map(|s| s.name.clone()),
        "root": root,
        "subject_alt_names": sans,
        "alpn": common.alpn_protocols,
    })
}

fn assignment_json(la: &ClusterLoadAssignment) -> Value {
    let localities: Vec<Value> = la
        .endpoints
        .iter()
        .map(|l| {
            let loc = l.locality.clone().unwrap_or_default();
            let endpoints: Vec<Value> = l
                .lb_endpoints
                .iter()
                .map(|e| {
                    let addr = match &e.host_identifier {
                        Some(lb_endpoint::HostIdentifier::Endpoint(ep)) => {
                            match ep.address.as_ref().and_then(|a| a.address.as_ref()) {
                                Some(address::Address::SocketAddress(sa)) => {
                                    match sa.port_specifier {
                                        Some(socket_address::PortSpecifier::PortValue(p)) => {
                                            format!("{}:{p}", sa.address)
                                        }
                                        _ => sa.address.clone(),
                                    }
                                }
                                Some(address::Address::Pipe(p)) => format!("unix://{}", p.path),
                                _ => "?".into(),
                            }
                        }
                        _ => "?".into(),
                    };
                    json!({"address": addr, "weight": e.load_balancing_weight.map(|w| w.value)})
                })
                .collect();
            json!({
                "locality": format!("{}/{}/{}", loc.region, loc.zone, loc.sub_zone),
                "weight": l.load_balancing_weight.map(|w| w.value),
                "priority": l.priority,
                "endpoints": endpoints,
            })
        })
        .collect();
    json!({"cluster_name": la.cluster_name, "localities": localities})
}

#[test]
fn productpage_clusters_and_endpoints_match_the_golden_file() {
    let mesh = TestMesh::examples();
    let proxy = Proxy::sidecar(
        "productpage-v1.bookinfo",
        "bookinfo",
        &[("app", "productpage"), ("version", "v1")],
    );
    let r = translate(mesh.inputs(), &proxy);
    let got = json!({
        "clusters": r.clusters.iter().map(cluster_json).collect::<Vec<_>>(),
        "endpoints": r.endpoints.iter().map(assignment_json).collect::<Vec<_>>(),
    });
    check_golden("cds-eds-productpage.json", &got);
}
