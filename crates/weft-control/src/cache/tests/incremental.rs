//! What a generation reuses from the one before: a stream's resolution
//! while nothing it reads changed, and the clusters and load assignments
//! of shared parts when only VirtualServices changed — always giving what
//! a translation from scratch gives.

use std::path::Path;

use weft_config::load::load_str;
use weft_config::mesh::MeshConfig;
use weft_config::store::Snapshot;
use weft_config::{LoadOptions, ResourceKey};

use super::*;

/// `g` with the resources of `add` put in (replacing those of the same
/// key), `remove` taken out and, if given, another mesh config. Every
/// other resource keeps its `Arc`, as the store does; the registry is
/// rebuilt only when a ServiceEntry or WorkloadEntry changed.
fn edit(
    g: &Generation,
    version: u64,
    add: &str,
    remove: &[ResourceKey],
    mesh: Option<MeshConfig>,
) -> Arc<Generation> {
    let mut resources = g.config.resources.clone();
    let mut kinds: Vec<Kind> = remove.iter().map(|k| k.kind).collect();
    for key in remove {
        resources.remove(key);
    }
    let loaded = load_str(add, Path::new("edit.yaml"), &LoadOptions::default());
    assert!(!loaded.has_errors(), "{add}\n{:#?}", loaded.diagnostics);
    for r in loaded.resources {
        kinds.push(r.kind());
        resources.insert(r.key(), Arc::new(r));
    }
    let config = Snapshot {
        version,
        resources,
        mesh: mesh.map_or_else(|| g.config.mesh.clone(), Arc::new),
        ..Snapshot::default()
    };
    let registry = if kinds
        .iter()
        .any(|k| matches!(k, Kind::ServiceEntry | Kind::WorkloadEntry))
    {
        Arc::new(weft_registry::file::build(
            config.resources.values().map(|r| r.as_ref()),
        ))
    } else {
        g.registry.clone()
    };
    Arc::new(Generation::new(version, Arc::new(config), registry))
}

fn key(kind: Kind, namespace: &str, name: &str) -> ResourceKey {
    ResourceKey {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

/// Panics unless both hold the same resources of every type, with and
/// without VHDS.
fn assert_same(what: &str, got: &Translation, want: &Translation) {
    for t in TypeUrl::ALL {
        for vhds in [false, true] {
            let (a, b) = (got.of(t, vhds), want.of(t, vhds));
            for (x, y) in [(a.0, b.0), (a.1, b.1)] {
                assert_eq!(names(x), names(y), "{what}: {t} names (vhds {vhds})");
                assert!(x.all == y.all, "{what}: {t} resources (vhds {vhds})");
                assert_eq!(x.versions, y.versions, "{what}: {t} versions");
            }
        }
    }
}

/// A translation from scratch: resolved and translated without the cache.
fn fresh(g: &Generation, proxy: &Proxy) -> Translation {
    Translation::new(g, &translate::resolve(g.inputs(), proxy))
}

const SIDECAR: &str = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s, namespace: NS}\nspec: {egress: [{hosts: [\"./*\"]}]}\n";

#[test]
fn resolution_is_reused_unless_something_it_reads_changed() {
    let by_address = || Proxy {
        pod: "api-7f9c".into(),
        ips: vec!["10.0.0.3".into()],
        ..workload("api-1")
    };
    // (what changed, the edit, the proxy, whether it resolves again)
    type Edit = (&'static str, String, Vec<ResourceKey>, Option<MeshConfig>);
    let rows: Vec<(Edit, Proxy, bool)> = vec![
        (
            ("a VirtualService", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: shop}\nspec: {hosts: [web.shop.svc.cluster.local], http: [{route: [{destination: {host: web.shop.svc.cluster.local}}], timeout: 2s}]}\n".into(), vec![], None),
            workload("api-1"),
            false,
        ),
        (
            ("a DestinationRule", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: shop}\nspec: {host: web.shop.svc.cluster.local, trafficPolicy: {connectionPool: {tcp: {maxConnections: 7}}}}\n".into(), vec![], None),
            workload("api-1"),
            false,
        ),
        (
            ("its WorkloadEntry", "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: api-1, namespace: shop}\nspec: {address: 10.0.0.1, labels: {app: api, version: v9}}\n".into(), vec![], None),
            workload("api-1"),
            true,
        ),
        (
            ("its WorkloadEntry, removed", String::new(), vec![key(Kind::WorkloadEntry, "shop", "api-1")], None),
            workload("api-1"),
            true,
        ),
        (
            ("another WorkloadEntry of its namespace", "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: api-3, namespace: shop}\nspec: {address: 10.0.0.33, labels: {app: api, version: v1}}\n".into(), vec![], None),
            workload("api-1"),
            false,
        ),
        (
            ("a WorkloadEntry of its namespace, found by address", "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: api-2, namespace: shop}\nspec: {address: 10.0.0.3, labels: {app: api, version: v2}}\n".into(), vec![], None),
            by_address(),
            true,
        ),
        (
            ("its service's ports", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api, namespace: shop}\nspec: {hosts: [api.shop.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: tcp, protocol: TCP}], workloadSelector: {labels: {app: api}}}\n".into(), vec![], None),
            workload("api-1"),
            true,
        ),
        (
            ("another service", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: web, namespace: shop}\nspec: {hosts: [web.shop.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 8080, name: http, protocol: HTTP}], endpoints: [{address: 10.0.1.2}]}\n".into(), vec![], None),
            workload("api-1"),
            false,
        ),
        (
            ("a Sidecar of its namespace", SIDECAR.replace("NS", "shop"), vec![], None),
            workload("api-1"),
            true,
        ),
        (
            ("a Sidecar's inbound connection pool", "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s, namespace: shop}\nspec: {inboundConnectionPool: {tcp: {maxConnections: 3}}}\n".into(), vec![], None),
            workload("api-1"),
            true,
        ),
        (
            ("a Sidecar's outbound traffic policy", "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s, namespace: shop}\nspec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}\n".into(), vec![], None),
            workload("api-1"),
            true,
        ),
        (
            ("a Sidecar egress listener with a port", "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s, namespace: shop}\nspec: {egress: [{port: {number: 80, protocol: HTTP, name: http}, hosts: [\"./*\"]}]}\n".into(), vec![], None),
            workload("api-1"),
            true,
        ),
        (
            ("a Sidecar of the root namespace", SIDECAR.replace("NS", "istio-system"), vec![], None),
            workload("api-1"),
            true,
        ),
        (
            ("a Sidecar of another namespace", SIDECAR.replace("NS", "other"), vec![], None),
            workload("api-1"),
            false,
        ),
        (
            ("the mesh config", String::new(), vec![], Some(MeshConfig { root_namespace: "shop".into(), ..MeshConfig::default() })),
            workload("api-1"),
            true,
        ),
    ];
    for ((what, add, remove, mesh_config), proxy, resolves) in rows {
        let cache = Translations::default();
        let g1 = generation(1, mesh("10.0.0.2", ""));
        let mut resolved = Resolved::default();
        cache.get_for(&g1, &proxy, &mut resolved);
        let before = cache.made.resolved.load(Ordering::Relaxed);
        let g2 = edit(&g1, 2, &add, &remove, mesh_config);
        let got = cache.get_for(&g2, &proxy, &mut resolved);
        let again = cache.made.resolved.load(Ordering::Relaxed) - before;
        assert_eq!(again, u64::from(resolves), "{what}: resolved again?");
        assert_same(what, &got, &fresh(&g2, &proxy));
        let kept = resolved.get().map(|(p, _, _)| p.clone());
        assert_eq!(
            kept,
            Some(translate::resolve(g2.inputs(), &proxy)),
            "{what}: the resolution kept is the one made from scratch"
        );
        // And a generation with nothing new for it keeps it again.
        let g3 = edit(&g2, 3, "", &[], None);
        let got = cache.get_for(&g3, &proxy, &mut resolved);
        let more = cache.made.resolved.load(Ordering::Relaxed) - before - again;
        assert_eq!(more, 0, "{what}: then unchanged");
        assert_same(what, &got, &fresh(&g3, &proxy));
    }
}

#[test]
fn a_skipped_generation_resolves_again() {
    let cache = Translations::default();
    let proxy = workload("api-1");
    let g1 = generation(1, mesh("10.0.0.2", ""));
    let mut resolved = Resolved::default();
    cache.get_for(&g1, &proxy, &mut resolved);
    // The stream misses generation 2 (another stream took it), which
    // changed its WorkloadEntry; generation 3 changed nothing more.
    let other = workload("api-2");
    let g2 = edit(
        &g1,
        2,
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: api-1, namespace: shop}\nspec: {address: 10.0.0.1, labels: {app: api, version: v9}}\n",
        &[],
        None,
    );
    cache.get(&g2, &other);
    let g3 = edit(&g2, 3, "", &[], None);
    let before = cache.made.resolved.load(Ordering::Relaxed);
    let got = cache.get_for(&g3, &proxy, &mut resolved);
    assert_eq!(cache.made.resolved.load(Ordering::Relaxed), before + 1);
    assert_same("skipped", &got, &fresh(&g3, &proxy));
}

#[test]
fn a_virtual_service_change_translates_only_routing() {
    let cache = Translations::default();
    let proxies = [workload("api-1"), workload("api-2")];
    let g1 = generation(1, mesh("10.0.0.2", ""));
    let mut resolved: Vec<Resolved> = proxies.iter().map(|_| Resolved::default()).collect();
    let before: Vec<Translation> = proxies
        .iter()
        .zip(&mut resolved)
        .map(|(p, r)| cache.get_for(&g1, p, r))
        .collect();
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: shop}\nspec: {hosts: [web.shop.svc.cluster.local], http: [{route: [{destination: {host: web.shop.svc.cluster.local}}], timeout: 2s}]}\n";
    let g2 = edit(&g1, 2, vs, &[], None);
    let after: Vec<Translation> = proxies
        .iter()
        .zip(&mut resolved)
        .map(|(p, r)| cache.get_for(&g2, p, r))
        .collect();
    assert_eq!(cache.made.routing.load(Ordering::Relaxed), 1, "one shape");
    let (old, new) = (&before[0].shared, &after[0].shared);
    for t in [TypeUrl::Cluster, TypeUrl::ClusterLoadAssignment] {
        assert!(old.of(t).all.same_buffer(&new.of(t).all), "{t} kept");
    }
    assert!(
        !old.of(TypeUrl::RouteConfiguration)
            .same(new.of(TypeUrl::RouteConfiguration))
    );
    assert!(Arc::ptr_eq(&before[1].own, &after[1].own));
    for (p, t) in proxies.iter().zip(&after) {
        assert_same("routing", t, &fresh(&g2, p));
    }
}

/// A VirtualService for `host` made up from `rng`: HTTP routes with
/// matches, subsets and weights, sometimes TCP routes, `sourceLabels`,
/// gateways or a second host.
fn random_virtual_service(rng: &mut fastrand::Rng, name: &str, host: &str) -> String {
    let gateways = [
        "[]",
        "[mesh]",
        "[bookinfo-gateway]",
        "[bookinfo-gateway, mesh]",
    ];
    let subsets = ["v1", "v2", "v3"];
    let mut http = String::new();
    for i in 0..rng.usize(1..4) {
        let m = match rng.u8(0..4) {
            0 => String::new(),
            1 => format!("match: [{{uri: {{prefix: /p{i}}}}}], "),
            2 => "match: [{headers: {end-user: {exact: jason}}}], ".to_string(),
            _ => "match: [{sourceLabels: {app: productpage}}], ".to_string(),
        };
        let w = rng.u8(0..=100);
        let route = if rng.bool() {
            format!("[{{destination: {{host: {host}}}}}]")
        } else {
            let (a, b) = (subsets[rng.usize(0..3)], subsets[rng.usize(0..3)]);
            format!(
                "[{{destination: {{host: {host}, subset: {a}}}, weight: {w}}}, {{destination: {{host: {host}, subset: {b}}}, weight: {}}}]",
                100 - w
            )
        };
        let timeout = if rng.bool() {
            format!(", timeout: {}ms", rng.u32(1..5000))
        } else {
            String::new()
        };
        http.push_str(&format!("{{{m}route: {route}{timeout}}}, "));
    }
    let tcp = if rng.u8(0..3) == 0 {
        let w = rng.u8(0..=100);
        format!(
            ", tcp: [{{route: [{{destination: {{host: {host}, subset: v1}}, weight: {w}}}, {{destination: {{host: {host}, subset: v2}}, weight: {}}}]}}]",
            100 - w
        )
    } else {
        String::new()
    };
    let hosts = if rng.u8(0..4) == 0 {
        format!("[{host}, \"*.example.com\"]")
    } else {
        format!("[{host}]")
    };
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: bookinfo}}\nspec: {{hosts: {hosts}, gateways: {}, http: [{http}]{tcp}}}\n",
        gateways[rng.usize(0..gateways.len())]
    )
}

#[test]
fn random_virtual_service_edits_of_the_examples_give_what_a_full_translation_gives() {
    let ingress = Proxy {
        kind: translate::ProxyKind::Gateway,
        pod: "ingressgateway".into(),
        ..Proxy::sidecar(
            "router~127.0.0.1~ingressgateway.bookinfo~bookinfo.svc.cluster.local",
            "bookinfo",
            &[],
        )
    };
    let grpc = Proxy {
        kind: translate::ProxyKind::Grpc,
        ..Proxy::sidecar("sidecar~127.0.0.1~c.bookinfo~bookinfo", "bookinfo", &[])
    };
    let reviews = Proxy {
        pod: "reviews-v1".into(),
        ..Proxy::sidecar(
            "sidecar~127.0.0.1~reviews-v1.bookinfo~bookinfo",
            "bookinfo",
            &[],
        )
    };
    let elsewhere = Proxy::sidecar("sidecar~10.9.0.1~x.other~other", "other", &[]);
    let proxies = [
        crate::translate::test_inputs::productpage(),
        reviews,
        ingress,
        grpc,
        elsewhere,
    ];
    let hosts = [
        "reviews",
        "ratings",
        "details",
        "productpage",
        "httpbin",
        "mysql",
        "nowhere",
    ];
    let mut rng = fastrand::Rng::with_seed(4);
    let cache = Translations::default();
    // The examples and a TCP service, whose listener TCP routes route.
    let mysql = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: mysql, namespace: bookinfo}\nspec: {hosts: [mysql.bookinfo.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC, ports: [{number: 3306, name: tcp, protocol: TCP}], endpoints: [{address: 10.0.5.1}]}\n";
    let mut g = edit(&generation(1, TestMesh::examples()), 1, mysql, &[], None);
    let mut resolved: Vec<Resolved> = proxies.iter().map(|_| Resolved::default()).collect();
    for (p, r) in proxies.iter().zip(&mut resolved) {
        cache.get_for(&g, p, r);
    }
    for version in 2..42 {
        let existing: Vec<ResourceKey> = g
            .config
            .of_kind(Kind::VirtualService)
            .map(|r| r.key())
            .collect();
        let (add, remove) = match rng.u8(0..4) {
            0 if !existing.is_empty() => (
                String::new(),
                vec![existing[rng.usize(0..existing.len())].clone()],
            ),
            1 if !existing.is_empty() => {
                // Rewrite one that exists (the examples' own included).
                let k = &existing[rng.usize(0..existing.len())];
                let host = hosts[rng.usize(0..hosts.len())];
                (random_virtual_service(&mut rng, &k.name, host), vec![])
            }
            _ => {
                let host = hosts[rng.usize(0..hosts.len())];
                let name = format!("vs-{}", rng.u8(0..6));
                (random_virtual_service(&mut rng, &name, host), vec![])
            }
        };
        let next = edit(&g, version, &add, &remove, None);
        for (p, r) in proxies.iter().zip(&mut resolved) {
            let got = cache.get_for(&next, p, r);
            assert_same(
                &format!("{version}: {add}{remove:?} for {}", p.id),
                &got,
                &fresh(&next, p),
            );
        }
        g = next;
    }
    assert!(
        cache.made.routing.load(Ordering::Relaxed) > 20,
        "the incremental path ran"
    );
    assert_eq!(
        cache.made.resolved.load(Ordering::Relaxed),
        proxies.len() as u64,
        "VirtualServices never resolve a proxy again"
    );
}
