//! LDS. For proxyless gRPC clients (node metadata `GENERATOR: grpc`): one
//! listener per service port, named `host:port` — the name gRPC's xDS
//! resolver asks for when dialling `xds:///host:port` — holding an
//! `api_listener` with an HTTP connection manager whose routes come over
//! RDS under the same name. Sidecar and gateway listeners come next.

use weft_xds::pb::envoy::config::listener::v3::{ApiListener, Listener};
use weft_xds::pb::envoy::extensions::filters::http::router::v3::Router;
use weft_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};

use super::envoy::ads;
use super::{Inputs, Proxy, ProxyKind};

/// The name of Envoy's (and gRPC's) terminal HTTP filter.
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";

/// The listener name for a service port, as gRPC's xDS resolver asks for it.
pub fn grpc_listener_name(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

/// The listeners `proxy` is sent, sorted by name.
pub fn listeners(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<Listener> {
    match proxy.kind {
        ProxyKind::Grpc => grpc_listeners(inputs, proxy),
        ProxyKind::Sidecar | ProxyKind::Gateway => Vec::new(),
    }
}

fn grpc_listeners(inputs: Inputs<'_>, proxy: &Proxy) -> Vec<Listener> {
    let mut out: Vec<Listener> = inputs
        .registry
        .all_services()
        .filter(|s| proxy.sees(s))
        .flat_map(|s| {
            s.ports
                .iter()
                .map(move |p| grpc_listener_name(s.hostname.as_str(), p.number))
        })
        .map(|name| api_listener(&name))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// A listener that is only an HTTP connection manager fetching route
/// configuration `name` over ADS.
fn api_listener(name: &str) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: name.to_string(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: name.to_string(),
        })),
        http_filters: vec![HttpFilter {
            name: ROUTER_FILTER.to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(weft_xds::pack(
                &Router::default(),
            ))),
            ..HttpFilter::default()
        }],
        ..HttpConnectionManager::default()
    };
    Listener {
        name: name.to_string(),
        api_listener: Some(ApiListener {
            api_listener: Some(weft_xds::pack(&hcm)),
        }),
        ..Listener::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::test_inputs::TestMesh;

    fn grpc_proxy() -> Proxy {
        Proxy {
            kind: ProxyKind::Grpc,
            ..Proxy::sidecar(
                "sidecar~127.0.0.1~client.shop~shop.svc.cluster.local",
                "shop",
                &[],
            )
        }
    }

    #[test]
    fn grpc_clients_get_one_api_listener_per_service_port() {
        let mesh = TestMesh::new(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: greeter, namespace: shop}\nspec:\n  hosts: [greeter.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 50051, name: grpc, protocol: GRPC}]\n  endpoints: [{address: 127.0.0.1}]\n",
        );
        let ls = listeners(mesh.inputs(), &grpc_proxy());
        assert_eq!(ls.len(), 1);
        assert_eq!(ls[0].name, "greeter.shop.svc.cluster.local:50051");
        let any = ls[0]
            .api_listener
            .as_ref()
            .and_then(|a| a.api_listener.as_ref())
            .expect("api listener");
        let hcm: HttpConnectionManager = weft_xds::unpack(any).expect("hcm");
        let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = hcm.route_specifier else {
            panic!("rds")
        };
        assert_eq!(
            rds.route_config_name,
            "greeter.shop.svc.cluster.local:50051"
        );
        assert_eq!(
            hcm.http_filters.last().map(|f| f.name.as_str()),
            Some(ROUTER_FILTER)
        );
    }

    #[test]
    fn every_grpc_listener_has_its_route_configuration() {
        let mesh = TestMesh::examples();
        let proxy = Proxy {
            namespace: "bookinfo".into(),
            ..grpc_proxy()
        };
        let resources = crate::translate::translate(mesh.inputs(), &proxy);
        let routes: Vec<&str> = resources.routes.iter().map(|r| r.name.as_str()).collect();
        for l in &resources.listeners {
            assert!(
                routes.contains(&l.name.as_str()),
                "{} has no route configuration in {routes:?}",
                l.name
            );
        }
        let reviews = resources
            .routes
            .iter()
            .find(|r| r.name == "reviews.bookinfo.svc.cluster.local:9080")
            .expect("reviews");
        let vh = &reviews.virtual_hosts[0];
        assert!(
            vh.domains
                .iter()
                .any(|d| d == "reviews.bookinfo.svc.cluster.local:9080"),
            "{:?}",
            vh.domains
        );
        assert_eq!(
            vh.routes.first().map(|r| r.name.as_str()),
            Some("jason"),
            "the VirtualService applies"
        );
    }

    #[test]
    fn sidecars_get_no_api_listeners() {
        let mesh = TestMesh::examples();
        assert!(listeners(mesh.inputs(), &Proxy::sidecar("p", "bookinfo", &[])).is_empty());
        assert_eq!(
            listeners(
                mesh.inputs(),
                &Proxy {
                    namespace: "bookinfo".into(),
                    ..grpc_proxy()
                }
            )
            .len(),
            5
        );
    }
}
