//! The golden LDS test: the listeners (and, for the gateway, the routes)
//! that proxies of `examples/` are sent, as JSON, against
//! `tests/golden/lds-*.json` (`WEFT_BLESS=1` rewrites them). Built by hand
//! from the fields translation sets, in Envoy's field names, so a reviewer
//! can check them against what Istio sends for the same YAML.

use serde_json::{Value, json};
use weft_xds::pb::envoy::config::core::v3::{TrafficDirection, address, socket_address};
use weft_xds::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, filter,
};
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use weft_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use weft_xds::unpack;

use super::{HCM_FILTER, TCP_PROXY_FILTER};
use crate::translate::test_inputs::{TestMesh, check_golden};
use crate::translate::{AppAddresses, Interception, Proxy, ProxyKind, translate};

fn listener_json(l: &Listener) -> Value {
    let address = match l.address.as_ref().and_then(|a| a.address.as_ref()) {
        Some(address::Address::SocketAddress(sa)) => match sa.port_specifier {
            Some(socket_address::PortSpecifier::PortValue(p)) => format!("{}:{p}", sa.address),
            _ => sa.address.clone(),
        },
        _ => String::new(),
    };
    let mut o = json!({
        "name": l.name,
        "address": address,
        "traffic_direction": TrafficDirection::try_from(l.traffic_direction).map_or("?", |d| d.as_str_name()),
        "filter_chains": l.filter_chains.iter().map(chain_json).collect::<Vec<_>>(),
    });
    if let Some(b) = l.bind_to_port {
        o["bind_to_port"] = json!(b.value);
    }
    if let Some(u) = l.use_original_dst {
        o["use_original_dst"] = json!(u.value);
    }
    if !l.listener_filters.is_empty() {
        o["listener_filters"] = l.listener_filters.iter().map(|f| json!(f.name)).collect();
    }
    if let Some(d) = &l.default_filter_chain {
        o["default_filter_chain"] = chain_json(d);
    }
    if let Some(api) = l
        .api_listener
        .as_ref()
        .and_then(|a| a.api_listener.as_ref())
    {
        o["api_listener"] = hcm_json(&unpack(api).expect("api listener HCM"));
    }
    o
}

fn chain_json(c: &FilterChain) -> Value {
    let mut o = json!({
        "name": c.name,
        "filters": c.filters.iter().map(filter_json).collect::<Vec<_>>(),
    });
    if let Some(m) = &c.filter_chain_match {
        o["match"] = match_json(m);
    }
    o
}

fn match_json(m: &FilterChainMatch) -> Value {
    let mut o = json!({});
    if let Some(p) = m.destination_port {
        o["destination_port"] = json!(p.value);
    }
    if !m.prefix_ranges.is_empty() {
        o["prefix_ranges"] = m
            .prefix_ranges
            .iter()
            .map(|r| {
                json!(format!(
                    "{}/{}",
                    r.address_prefix,
                    r.prefix_len.map_or(0, |l| l.value)
                ))
            })
            .collect();
    }
    if !m.server_names.is_empty() {
        o["server_names"] = json!(m.server_names);
    }
    if !m.transport_protocol.is_empty() {
        o["transport_protocol"] = json!(m.transport_protocol);
    }
    if !m.application_protocols.is_empty() {
        o["application_protocols"] = json!(m.application_protocols);
    }
    o
}

fn filter_json(f: &Filter) -> Value {
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        return json!({"name": f.name});
    };
    match f.name.as_str() {
        HCM_FILTER => {
            let mut o = hcm_json(&unpack(any).expect("HCM"));
            o["name"] = json!(f.name);
            o
        }
        TCP_PROXY_FILTER => {
            let t: TcpProxy = unpack(any).expect("tcp proxy");
            let target = match t.cluster_specifier {
                Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => json!(c),
                Some(tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => w
                    .clusters
                    .iter()
                    .map(|c| json!({"name": c.name, "weight": c.weight}))
                    .collect(),
                None => json!(null),
            };
            json!({"name": f.name, "stat_prefix": t.stat_prefix, "cluster": target})
        }
        _ => json!({"name": f.name}),
    }
}

fn hcm_json(h: &HttpConnectionManager) -> Value {
    let routes = match &h.route_specifier {
        Some(http_connection_manager::RouteSpecifier::Rds(r)) => {
            json!({"rds": r.route_config_name})
        }
        Some(http_connection_manager::RouteSpecifier::RouteConfig(rc)) => json!({
            "route_config": rc.name,
            "virtual_hosts": rc.virtual_hosts.iter().map(|v| json!({
                "name": v.name,
                "domains": v.domains,
                "routes": v.routes.len(),
            })).collect::<Vec<_>>(),
        }),
        _ => json!(null),
    };
    // The header settings, as Istio sends them per listener class (see
    // `headers`): the gateway uses the remote address (it is the edge) and
    // sanitizes then sets XFCC; sidecars trust neither XFF nor the peer's
    // address (use_remote_address false) and inbound appends XFCC.
    let fcc =
        http_connection_manager::ForwardClientCertDetails::try_from(h.forward_client_cert_details)
            .map_or("?", |f| f.as_str_name());
    json!({
        "stat_prefix": h.stat_prefix,
        "routes": routes,
        "http_filters": h.http_filters.iter().map(|f| json!(f.name)).collect::<Vec<_>>(),
        "use_remote_address": h.use_remote_address.map(|b| b.value),
        "xff_num_trusted_hops": h.xff_num_trusted_hops,
        "forward_client_cert_details": fcc,
        "request_id_extension": h
            .request_id_extension
            .as_ref()
            .and_then(|r| r.typed_config.as_ref())
            .map(|a| a.type_url.as_str()),
    })
}

fn listeners_json(proxy: &Proxy) -> Value {
    let mesh = TestMesh::examples();
    let r = translate(mesh.inputs(), proxy);
    json!({
        "node": proxy.id,
        "listeners": r.listeners.iter().map(listener_json).collect::<Vec<_>>(),
        "routes": r.routes.iter().map(|rc| json!(rc.name)).collect::<Vec<_>>(),
    })
}

#[test]
fn a_captured_sidecar_gets_virtual_inbound_and_outbound() {
    let proxy = Proxy {
        pod: "productpage-v1".into(),
        ..Proxy::sidecar(
            "sidecar~127.0.0.1~productpage-v1.bookinfo~bookinfo.svc.cluster.local",
            "bookinfo",
            &[],
        )
    };
    assert_eq!(proxy.interception, Interception::Redirect);
    check_golden("lds-productpage-captured.json", &listeners_json(&proxy));
}

#[test]
fn an_explicit_sidecar_gets_bound_inbound_listeners() {
    let proxy = Proxy {
        pod: "reviews-v2".into(),
        interception: Interception::None,
        app: AppAddresses::parse("127.0.0.1:9080"),
        ..Proxy::sidecar(
            "sidecar~127.0.0.1~reviews-v2.bookinfo~bookinfo.svc.cluster.local",
            "bookinfo",
            &[],
        )
    };
    check_golden("lds-reviews-explicit.json", &listeners_json(&proxy));
}

#[test]
fn the_ingress_gateway_gets_its_servers() {
    let proxy = crate::translate::test_inputs::ingress_gateway();
    check_golden("lds-ingressgateway.json", &listeners_json(&proxy));
}

#[test]
fn a_proxyless_grpc_client_gets_api_listeners() {
    let proxy = Proxy {
        kind: ProxyKind::Grpc,
        ..Proxy::sidecar(
            "sidecar~127.0.0.1~client.bookinfo~bookinfo.svc.cluster.local",
            "bookinfo",
            &[],
        )
    };
    check_golden("lds-grpc-client.json", &listeners_json(&proxy));
}
