use serde_json::json;

use super::*;

#[test]
fn ids_are_percent_encoded_in_the_query() {
    assert_eq!(
        encode("sidecar~10.0.0.1~a.b~b.svc.cluster.local"),
        "sidecar~10.0.0.1~a.b~b.svc.cluster.local"
    );
    assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
}

#[test]
fn a_dump_from_envoys_own_admin_api_reads_too() {
    // Static resources, and sections Weft does not show, as an Envoy's
    // `/config_dump` has them.
    let json = json!({"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"},
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
         "staticClusters": [{"cluster": {
             "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
             "name": "xds-grpc", "type": "STRICT_DNS"}}],
         "dynamicActiveClusters": [{"versionInfo": "1", "cluster": {
             "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
             "name": "outbound|80||a.b.svc.cluster.local", "type": "EDS"}}]},
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
         "dynamicListeners": [{"name": "l", "activeState": {"listener": {
             "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
             "name": "l"}}},
             {"name": "warming-only", "warmingState": {}}]},
        {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
         "staticRouteConfigs": [{"routeConfig": {
             "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
             "name": "static"}}]},
        {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump"},
    ]});
    let dump = Dump::read(&json).expect("read");
    let names: Vec<&str> = dump.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["xds-grpc", "outbound|80||a.b.svc.cluster.local"]);
    assert_eq!(dump.listeners.len(), 1);
    assert_eq!(dump.routes[0].name, "static");
    assert!(dump.endpoints.is_empty());
    let text = tables::clusters(&ClusterFilter::default().select(&dump.clusters));
    assert_eq!(
        text,
        "\
SERVICE FQDN              PORT     SUBSET     DIRECTION     TYPE           DESTINATION RULE
a.b.svc.cluster.local     80       -          outbound      EDS
xds-grpc                  -        -          -             STRICT_DNS
"
    );
}

#[test]
fn a_malformed_dump_is_an_error() {
    let err = Dump::read(&json!({"configs": [{"@type": "type.googleapis.com/acme.Nope"}]}))
        .expect_err("unknown type");
    assert!(err.contains("acme.Nope"), "{err}");
    let err = Dump::read(&json!({"config": []})).expect_err("unknown field");
    assert!(err.starts_with("unreadable config dump"), "{err}");
}
