//! VHDS on delta ADS: a client with `weft.vhds` gets its route
//! configurations without virtual hosts and each virtual host as its own
//! resource, pushed alone when it changes.

use weft_xds::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost, route};

use super::*;
use crate::vhds::VHDS_FEATURE;

type Delta = Stream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

const ROUTE: &str = "50051";
const GREETER_VHOST_PART: &str = "greeter.shop.svc.cluster.local";

fn node(features: &[&str]) -> Node {
    Node {
        id: "sidecar~127.0.0.1~client.shop~shop.svc.cluster.local".into(),
        client_features: features.iter().map(|f| f.to_string()).collect(),
        ..Node::default()
    }
}

fn subscribe(type_url: TypeUrl, names: &[&str], node: Option<Node>) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node,
        type_url: type_url.as_str().into(),
        resource_names_subscribe: names.iter().map(|s| s.to_string()).collect(),
        ..DeltaDiscoveryRequest::default()
    }
}

fn unsubscribe(type_url: TypeUrl, names: &[&str]) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.as_str().into(),
        resource_names_unsubscribe: names.iter().map(|s| s.to_string()).collect(),
        ..DeltaDiscoveryRequest::default()
    }
}

fn ack(r: &DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: r.type_url.clone(),
        response_nonce: r.nonce.clone(),
        ..DeltaDiscoveryRequest::default()
    }
}

fn names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
    r.resources.iter().map(|r| r.name.as_str()).collect()
}

/// The greeter service with a VirtualService giving it a `timeout`.
fn with_timeout(yaml: &str, seconds: u32) -> String {
    format!(
        "{yaml}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: greeter, namespace: shop}}\nspec:\n  hosts: [greeter.shop.svc.cluster.local]\n  http: [{{timeout: {seconds}s, route: [{{destination: {{host: greeter.shop.svc.cluster.local}}}}]}}]\n"
    )
}

/// ACKs responses until one of `type_url` comes; returns it (not ACKed)
/// and the types of those before it.
async fn until(s: &mut Delta, type_url: TypeUrl) -> (DeltaDiscoveryResponse, Vec<String>) {
    let mut before = Vec::new();
    for _ in 0..10 {
        let r = s.recv().await.expect("response");
        if r.type_url == type_url.as_str() {
            return (r, before);
        }
        s.send(ack(&r)).await;
        before.push(r.type_url);
    }
    panic!("no {type_url} response among 10");
}

fn vhost(r: &weft_xds::pb::envoy::service::discovery::v3::Resource) -> VirtualHost {
    weft_xds::unpack(r.resource.as_ref().expect("resource")).expect("a VirtualHost")
}

fn timeout_of(vh: &VirtualHost) -> Option<i64> {
    vh.routes.iter().find_map(|r| match &r.action {
        Some(route::Action::Route(a)) => a.timeout.as_ref().map(|t| t.seconds),
        _ => None,
    })
}

/// CDS and LDS wildcards, RDS `50051`: returns the route configuration.
async fn connect(s: &mut Delta, node: Node) -> RouteConfiguration {
    s.send(subscribe(TypeUrl::Cluster, &[], Some(node))).await;
    let cds = s.recv().await.expect("cds");
    s.send(ack(&cds)).await;
    s.send(subscribe(TypeUrl::Listener, &[], None)).await;
    let lds = s.recv().await.expect("lds");
    assert_eq!(lds.type_url, TypeUrl::Listener.as_str());
    s.send(ack(&lds)).await;
    s.send(subscribe(TypeUrl::RouteConfiguration, &[ROUTE], None))
        .await;
    let rds = s.recv().await.expect("rds");
    assert_eq!(names(&rds), [ROUTE], "{rds:#?}");
    s.send(ack(&rds)).await;
    weft_xds::unpack(rds.resources[0].resource.as_ref().expect("resource")).expect("route")
}

#[tokio::test]
async fn virtual_hosts_come_alone_and_only_when_they_change() {
    let mut h = start(generation(1, GREETER)).await;
    let mut s = h.delta().await;
    let head = connect(&mut s, node(&[VHDS_FEATURE])).await;
    assert!(head.virtual_hosts.is_empty(), "{head:#?}");
    let source = head.vhds.as_ref().and_then(|v| v.config_source.as_ref());
    assert!(
        matches!(
            source.and_then(|c| c.config_source_specifier.as_ref()),
            Some(
                weft_xds::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier::Ads(_)
            )
        ),
        "{head:#?}"
    );
    assert!(head.ignore_port_in_host_matching, "other fields as before");

    // Subscribing R: all of R's virtual hosts, named R/vhost.
    s.send(subscribe(TypeUrl::VirtualHost, &[ROUTE], None))
        .await;
    let all = s.recv().await.expect("vhds");
    assert_eq!(all.type_url, TypeUrl::VirtualHost.as_str());
    assert!(
        all.resources.len() >= 2,
        "greeter and the catch-all: {all:#?}"
    );
    assert!(all.removed_resources.is_empty());
    for r in &all.resources {
        let vh = vhost(r);
        assert_eq!(r.name, format!("{ROUTE}/{}", vh.name));
        assert_eq!(r.version.len(), 16);
    }
    let greeter = names(&all)
        .into_iter()
        .find(|n| n.contains(GREETER_VHOST_PART))
        .expect("greeter's virtual host")
        .to_string();
    let count = all.resources.len();
    s.send(ack(&all)).await;
    s.quiet().await;

    // A VirtualService edit: exactly that virtual host, nothing else.
    h.publish
        .send_replace(generation(2, &with_timeout(GREETER, 3)));
    let (push, before) = until(&mut s, TypeUrl::VirtualHost).await;
    assert!(
        !before
            .iter()
            .any(|t| t == TypeUrl::RouteConfiguration.as_str()),
        "R did not change: {before:?}"
    );
    assert_eq!(names(&push), [greeter.as_str()], "{push:#?}");
    assert_eq!(timeout_of(&vhost(&push.resources[0])), Some(3));
    assert!(push.removed_resources.is_empty());
    s.send(ack(&push)).await;
    s.quiet().await;

    // A new service: its virtual host only; it goes: removed as R/vhost.
    let two = with_timeout(&with_service("farewell"), 3);
    h.publish.send_replace(generation(3, &two));
    let (push, _) = until(&mut s, TypeUrl::VirtualHost).await;
    let farewell = greeter.replace("greeter", "farewell");
    assert_eq!(names(&push), [farewell.as_str()], "{push:#?}");
    s.send(ack(&push)).await;
    s.quiet().await;
    h.publish
        .send_replace(generation(4, &with_timeout(GREETER, 3)));
    let (push, _) = until(&mut s, TypeUrl::VirtualHost).await;
    assert!(push.resources.is_empty(), "{push:#?}");
    assert_eq!(push.removed_resources, [farewell.as_str()]);
    s.send(ack(&push)).await;
    s.quiet().await;

    // The debug API puts the virtual hosts back into R; syncz has VHDS.
    let id = node(&[]).id;
    let sent = h.stats.sent(&id).expect("connected");
    let dump = crate::config_dump::config_dump(&sent);
    let routes: weft_xds::pb::envoy::admin::v3::RoutesConfigDump =
        weft_xds::unpack(&dump.configs[2]).expect("routes dump");
    let r: RouteConfiguration = weft_xds::unpack(
        routes.dynamic_route_configs[0]
            .route_config
            .as_ref()
            .expect("route config"),
    )
    .expect("route");
    assert_eq!(r.name, ROUTE);
    assert_eq!(r.virtual_hosts.len(), count, "{r:#?}");
    let status = &h.stats.proxy_statuses()[0];
    assert_eq!(status.types["VHDS"].resources, count, "{status:?}");
    assert_eq!(status.types["VHDS"].acked.as_deref(), Some("4"));

    // R sent again (re-subscribed): all its virtual hosts follow it.
    s.send(unsubscribe(TypeUrl::RouteConfiguration, &[ROUTE]))
        .await;
    s.send(subscribe(TypeUrl::RouteConfiguration, &[ROUTE], None))
        .await;
    let rds = s.recv().await.expect("rds");
    assert_eq!(names(&rds), [ROUTE]);
    let again = s.recv().await.expect("vhds after rds");
    assert_eq!(again.type_url, TypeUrl::VirtualHost.as_str());
    assert_eq!(again.resources.len(), count, "{again:#?}");
    s.send(ack(&rds)).await;
    s.send(ack(&again)).await;
    s.quiet().await;

    // Unsubscribing R: its virtual hosts are no longer pushed.
    s.send(unsubscribe(TypeUrl::VirtualHost, &[ROUTE])).await;
    // (an unsubscription has no answer; this request's answer shows it was read)
    s.send(subscribe(TypeUrl::Listener, &["*"], None)).await;
    let lds = s.recv().await.expect("lds");
    s.send(ack(&lds)).await;
    h.publish
        .send_replace(generation(5, &with_timeout(GREETER, 5)));
    s.quiet().await;
}

#[tokio::test]
async fn on_demand_names_and_reconnects() {
    let mut h = start(generation(1, GREETER)).await;
    let mut s = h.delta().await;
    connect(&mut s, node(&[VHDS_FEATURE])).await;
    // Envoy's on-demand form R/host: Weft answers it as not there.
    let on_demand = format!("{ROUTE}/{GREETER_VHOST_PART}");
    s.send(subscribe(TypeUrl::VirtualHost, &[&on_demand], None))
        .await;
    let r = s.recv().await.expect("vhds");
    assert!(r.resources.is_empty(), "{r:#?}");
    assert_eq!(r.removed_resources, [on_demand.as_str()]);
    s.send(ack(&r)).await;
    s.send(subscribe(TypeUrl::VirtualHost, &[ROUTE], None))
        .await;
    let all = s.recv().await.expect("vhds");
    assert!(all.resources.len() >= 2);
    s.send(ack(&all)).await;

    // A reconnecting proxy that holds them at these versions gets none
    // again, but an answer.
    let initial: HashMap<String, String> = all
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    let mut again = h.delta().await;
    connect(&mut again, node(&[VHDS_FEATURE])).await;
    again
        .send(DeltaDiscoveryRequest {
            initial_resource_versions: initial,
            ..subscribe(TypeUrl::VirtualHost, &[ROUTE], None)
        })
        .await;
    let r = again.recv().await.expect("vhds");
    assert_eq!(r.type_url, TypeUrl::VirtualHost.as_str());
    assert!(r.resources.is_empty(), "{r:#?}");
    assert!(r.removed_resources.is_empty(), "{r:#?}");
}

#[tokio::test]
async fn without_the_feature_or_on_sotw_routes_come_whole() {
    let mut h = start(generation(1, GREETER)).await;
    let mut s = h.delta().await;
    let whole = connect(&mut s, node(&[])).await;
    assert!(whole.vhds.is_none(), "{whole:#?}");
    assert!(whole.virtual_hosts.len() >= 2);

    let mut sotw = h.sotw().await;
    sotw.send(request(
        TypeUrl::RouteConfiguration,
        &[ROUTE],
        Some(node(&[VHDS_FEATURE])),
    ))
    .await;
    let r = sotw.recv().await.expect("rds");
    let route: RouteConfiguration = weft_xds::unpack(&r.resources[0]).expect("route");
    assert_eq!(route, whole, "state of the world ignores the feature");
}

#[tokio::test]
async fn streams_of_one_shape_share_their_pushes() {
    let mut h = start(generation(1, GREETER)).await;
    let mut streams = Vec::new();
    for i in 0..3 {
        let mut s = h.delta().await;
        let node = Node {
            id: format!(
                "sidecar~127.0.0.{}~client-{i}.shop~shop.svc.cluster.local",
                i + 1
            ),
            ..node(&[VHDS_FEATURE])
        };
        connect(&mut s, node).await;
        s.send(subscribe(TypeUrl::VirtualHost, &[ROUTE], None))
            .await;
        let all = s.recv().await.expect("vhds");
        assert!(all.resources.len() >= 2, "{all:#?}");
        s.send(ack(&all)).await;
        streams.push(s);
    }
    let (_, taken_at_sync) = h.shares.counts();
    assert!(taken_at_sync >= 1, "the third stream took its first round");

    h.publish
        .send_replace(generation(2, &with_timeout(GREETER, 3)));
    let mut pushes = Vec::new();
    for s in &mut streams {
        let (push, _) = until(s, TypeUrl::VirtualHost).await;
        s.send(ack(&push)).await;
        pushes.push(push);
    }
    let (made, taken) = h.shares.counts();
    assert!(made >= 2 && taken >= 2, "made {made}, taken {taken}");
    let mut nonces: Vec<&str> = pushes.iter().map(|p| p.nonce.as_str()).collect();
    nonces.sort_unstable();
    nonces.dedup();
    assert_eq!(nonces.len(), 3, "each stream its own nonce");
    let without_nonce = |p: &DeltaDiscoveryResponse| DeltaDiscoveryResponse {
        nonce: String::new(),
        ..p.clone()
    };
    assert_eq!(names(&pushes[0]).len(), 1, "{:#?}", pushes[0]);
    assert_eq!(timeout_of(&vhost(&pushes[0].resources[0])), Some(3));
    for p in &pushes[1..] {
        assert_eq!(without_nonce(p), without_nonce(&pushes[0]));
    }
    // Each stream's holding moved on with it: the next push is shared
    // too, and correct for all.
    h.publish
        .send_replace(generation(3, &with_timeout(GREETER, 4)));
    for s in &mut streams {
        let (push, _) = until(s, TypeUrl::VirtualHost).await;
        assert_eq!(timeout_of(&vhost(&push.resources[0])), Some(4));
        s.send(ack(&push)).await;
    }
    for s in &mut streams {
        s.quiet().await;
    }
}

/// A gateway for `app: edge` with one HTTP server on port 80, and the
/// VirtualServices in `more`.
fn edge(more: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: edge, namespace: edge}}\nspec:\n  selector: {{app: edge}}\n  servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: [\"*\"]}}]\n---\n{GREETER}{more}"
    )
}

const BOUND: &str = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: front, namespace: edge}\nspec:\n  hosts: [www.example.com]\n  gateways: [edge]\n  http: [{route: [{destination: {host: greeter.shop.svc.cluster.local}}]}]\n";

fn gateway_node() -> Node {
    use weft_xds::pb::google::protobuf::{Struct, Value, value};
    let labels = Struct {
        fields: [(
            "app".to_string(),
            Value {
                kind: Some(value::Kind::StringValue("edge".into())),
            },
        )]
        .into(),
    };
    Node {
        id: "router~127.0.0.1~edge-1.edge~edge.svc.cluster.local".into(),
        client_features: vec![VHDS_FEATURE.into()],
        metadata: Some(Struct {
            fields: [(
                "LABELS".to_string(),
                Value {
                    kind: Some(value::Kind::StructValue(labels)),
                },
            )]
            .into(),
        }),
        ..Node::default()
    }
}

#[tokio::test]
async fn a_route_configuration_without_virtual_hosts_is_named_removed() {
    const HTTP_80: &str = "http.80";
    let mut h = start(generation(1, &edge(""))).await;
    let mut s = h.delta().await;
    s.send(subscribe(TypeUrl::Cluster, &[], Some(gateway_node())))
        .await;
    let cds = s.recv().await.expect("cds");
    s.send(ack(&cds)).await;
    s.send(subscribe(TypeUrl::RouteConfiguration, &[HTTP_80], None))
        .await;
    let rds = s.recv().await.expect("rds");
    assert_eq!(names(&rds), [HTTP_80], "{rds:#?}");
    s.send(ack(&rds)).await;

    // No VirtualService bound: R has no virtual hosts, and says so.
    s.send(subscribe(TypeUrl::VirtualHost, &[HTTP_80], None))
        .await;
    let none = s.recv().await.expect("vhds");
    assert_eq!(none.type_url, TypeUrl::VirtualHost.as_str());
    assert!(none.resources.is_empty(), "{none:#?}");
    assert_eq!(none.removed_resources, [HTTP_80]);
    s.send(ack(&none)).await;
    // So does a name that is no route configuration at all.
    s.send(subscribe(TypeUrl::VirtualHost, &["9999"], None))
        .await;
    let missing = s.recv().await.expect("vhds");
    assert_eq!(missing.removed_resources, ["9999"], "{missing:#?}");
    s.send(ack(&missing)).await;

    // One bound: its virtual host comes alone; unbound, it goes.
    h.publish.send_replace(generation(2, &edge(BOUND)));
    let (push, _) = until(&mut s, TypeUrl::VirtualHost).await;
    let host = format!("{HTTP_80}/www.example.com:80");
    assert_eq!(names(&push), [host.as_str()], "{push:#?}");
    assert!(push.removed_resources.is_empty(), "{push:#?}");
    s.send(ack(&push)).await;
    h.publish.send_replace(generation(3, &edge("")));
    let (push, _) = until(&mut s, TypeUrl::VirtualHost).await;
    assert_eq!(push.removed_resources, [host.as_str()], "{push:#?}");
    s.send(ack(&push)).await;

    // R sent again: its (no) virtual hosts follow, named as R.
    s.send(unsubscribe(TypeUrl::RouteConfiguration, &[HTTP_80]))
        .await;
    s.send(subscribe(TypeUrl::RouteConfiguration, &[HTTP_80], None))
        .await;
    let rds = s.recv().await.expect("rds");
    assert_eq!(names(&rds), [HTTP_80]);
    let after = s.recv().await.expect("vhds after rds");
    assert_eq!(after.type_url, TypeUrl::VirtualHost.as_str());
    assert!(after.resources.is_empty(), "{after:#?}");
    assert_eq!(after.removed_resources, [HTTP_80]);
    s.send(ack(&rds)).await;
    s.send(ack(&after)).await;
    s.quiet().await;
}
