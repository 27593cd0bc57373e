use super::*;
use crate::diag::Diagnostic;
use crate::test_util::{found_in, load_named, path_of};

fn parse(text: &str) -> (MeshConfig, Vec<Diagnostic>) {
    parse_mesh(text).unwrap_or_else(|d| panic!("unreadable: {d}"))
}

/// (code, path) of every diagnostic, including a value that could not be
/// read at all (an unknown enum value).
fn diags(text: &str) -> Vec<(Code, String)> {
    match parse_mesh(text) {
        Ok((_, d)) => found_in(&d),
        Err(d) => found_in(&[*d]),
    }
}

#[track_caller]
fn one(text: &str) -> (Code, String) {
    let d = diags(text);
    assert_eq!(d.len(), 1, "{d:#?}");
    d[0].clone()
}

const FULL: &str = r#"proxyListenPort: 15001
proxyInboundListenPort: 15006
proxyHttpPort: 15080
connectTimeout: 10s
tcpKeepalive: {time: 7200s, interval: 75s, probes: 9}
ingressClass: istio
ingressService: istio-ingressgateway
ingressControllerMode: STRICT
ingressSelector: ingressgateway
enableTracing: true
accessLogFile: /dev/stdout
accessLogFormat: '{"code": "%RESPONSE_CODE%"}'
accessLogEncoding: JSON
enableEnvoyAccessLogService: false
disableEnvoyListenerLog: true
defaultConfig:
  configPath: ./etc/istio/proxy
  binaryPath: /usr/local/bin/envoy
  tracingServiceName: CANONICAL_NAME_ONLY
  drainDuration: 45s
  discoveryAddress: istiod.istio-system.svc:15012
  statsdUdpAddress: 10.0.0.1:8125
  proxyAdminPort: 15000
  controlPlaneAuthPolicy: MUTUAL_TLS
  customConfigFile: /etc/envoy.json
  statNameLength: 189
  concurrency: 2
  proxyBootstrapTemplatePath: /var/lib/istio/envoy/envoy_bootstrap_tmpl.json
  interceptionMode: TPROXY
  tracing:
    zipkin: {address: "zipkin.istio-system:9411"}
    sampling: 1.0
  envoyAccessLogService: {address: als.istio-system:9000}
  envoyMetricsService: {address: "metrics.istio-system:9000", tcpKeepalive: {probes: 3}}
  proxyMetadata: {ISTIO_META_DNS_CAPTURE: "true"}
  runtimeValues: {"overload.global_downstream_max_connections": "50000"}
  statusPort: 15020
  extraStatTags: [request_host]
  gatewayTopology: {numTrustedProxies: 1}
  terminationDrainDuration: 5s
  meshId: mesh1
  readinessProbe: {httpGet: {path: /ready, port: 8080}}
  proxyStatsMatcher: {inclusionPrefixes: [cluster.outbound]}
  holdApplicationUntilProxyStarts: true
  caCertificatesPem: ["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"]
  image: {imageType: distroless}
  privateKeyProvider: {cryptomb: {pollDelay: 10ms}}
  proxyHeaders: {server: {disabled: true}}
  fileFlushInterval: 1s
  fileFlushMinSizeKb: 64
outboundTrafficPolicy: {mode: REGISTRY_ONLY}
inboundTrafficPolicy: {mode: LOCALHOST}
configSources: [{address: "k8s://", subscribedResources: [SERVICE_REGISTRY]}]
enableAutoMtls: true
trustDomain: cluster.local
trustDomainAliases: [old.local, "td2."]
caCertificates:
- pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
  certSigners: [clusterissuers.cert-manager.io/foo]
  trustDomains: [cluster.local]
- spiffeBundleUrl: https://bundle.example.com/bundle
defaultServiceExportTo: ["*"]
defaultVirtualServiceExportTo: ["."]
defaultDestinationRuleExportTo: [istio-system, "."]
rootNamespace: istio-system
localityLbSetting: {enabled: true}
dnsRefreshRate: 60s
h2UpgradePolicy: UPGRADE
inboundClusterStatName: "%SERVICE%_%SERVICE_PORT%"
outboundClusterStatName: "%SERVICE_FQDN%_%SUBSET_NAME%"
serviceSettings:
- settings: {clusterLocal: true}
  hosts: ["*.kube-system.svc.cluster.local", kubernetes.default.svc.cluster.local]
enablePrometheusMerge: true
ca:
  address: custom-ca.default.svc.cluster.local:8932
  tlsSettings: {mode: DISABLE}
  requestTimeout: 10s
  istiodSide: true
extensionProviders:
- name: ext-authz-http
  envoyExtAuthzHttp:
    service: ext-authz.foo.svc.cluster.local
    port: 8000
    timeout: 2s
    pathPrefix: /check
    failOpen: false
    statusOnError: "503"
    includeRequestHeadersInCheck: [x-ext-authz, "x-prefix-*"]
    includeAdditionalHeadersInCheck: {x-added: value}
    includeRequestBodyInCheck: {maxRequestBytes: 1024, allowPartialMessage: true, packAsBytes: false}
    headersToUpstreamOnAllow: [authorization]
    headersToDownstreamOnDeny: [x-reason]
    headersToDownstreamOnAllow: ["*-cookie"]
- name: ext-authz-grpc
  envoyExtAuthzGrpc:
    service: foo/ext-authz.foo.svc.cluster.local
    port: 9000
    timeout: 500ms
    failOpen: true
    statusOnError: "403"
    includeRequestBodyInCheck: {maxRequestBytes: 4096, packAsBytes: true}
- name: zipkin
  zipkin:
    service: zipkin.istio-system.svc.cluster.local
    port: 9411
    maxTagLength: 256
    enable64bitTraceId: true
    timeout: 5s
    headers: [{name: authorization, envName: ZIPKIN_TOKEN}, {name: x-tenant, value: mesh}]
- name: datadog
  datadog: {service: datadog-agent.datadog.svc.cluster.local, port: 8126}
- name: stackdriver
  stackdriver: {maxTagLength: 256, logging: {labels: {path: request.url_path}}}
- name: skywalking
  skywalking: {service: tracing.istio-system.svc.cluster.local, port: 11800, accessToken: token}
- name: otel
  opentelemetry:
    service: opentelemetry-collector.istio-system.svc.cluster.local
    port: 4317
    maxTagLength: 256
    grpc: {timeout: 3s, initialMetadata: [{name: authentication, value: token}]}
    resourceDetectors: {environment: {}}
- name: otel-http
  opentelemetry:
    service: otel.example.com
    port: 4318
    http: {path: /v1/traces, timeout: 3s, headers: [{name: x-key, envName: API_KEY}]}
    dynatraceSampler: {tenant: abc, clusterId: 123}
- name: prom
  prometheus: {}
- name: file
  envoyFileAccessLog: {path: /dev/stdout, logFormat: {labels: {code: "%RESPONSE_CODE%"}}}
- name: http-als
  envoyHttpAls: {service: als.istio-system.svc.cluster.local, port: 9000, logName: http, additionalRequestHeadersToLog: [x-a]}
- name: tcp-als
  envoyTcpAls: {service: als.istio-system.svc.cluster.local, port: 9000, filterStateObjectsToLog: [a]}
- name: otel-als
  envoyOtelAls: {service: otel.istio-system.svc.cluster.local, port: 4317, logName: otel, logFormat: {text: "%REQ(:PATH)%", labels: {a: b}}}
- name: vault-sds
  sds: {name: vault, service: vault.vault.svc.cluster.local, port: 8200}
defaultProviders:
  tracing: [otel]
  metrics: [prometheus, stackdriver]
  accessLogging: [envoy, file]
discoverySelectors:
- matchLabels: {env: prod}
- matchExpressions: [{key: app, operator: In, values: [cassandra, spark]}, {key: skip, operator: DoesNotExist}]
pathNormalization: {normalization: MERGE_SLASHES}
defaultHttpRetryPolicy: {attempts: 2, retryOn: "connect-failure,refused-stream"}
meshMTLS: {minProtocolVersion: TLSV1_3}
tlsDefaults: {ecdhCurves: [P-256, X25519], cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256]}
serviceScopeConfigs:
- servicesSelector:
    matchExpressions: [{key: istio.io/global, operator: Exists}]
  scope: GLOBAL
"#;

#[test]
fn full_config_parses_clean() {
    let (mesh, diags) = parse(FULL);
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(mesh.proxy_inbound_listen_port, 15006);
    assert_eq!(mesh.access_log_encoding, AccessLogEncoding::Json);
    let dc = mesh.default_config.as_ref().expect("defaultConfig");
    assert_eq!(dc.concurrency, Some(2));
    assert_eq!(dc.file_flush_min_size_kb, Some(64));
    assert_eq!(dc.interception_mode, InterceptionMode::Tproxy);
    assert_eq!(mesh.extension_providers.len(), 14);
    let zipkin = mesh
        .extension_providers
        .iter()
        .find_map(|p| p.zipkin.as_ref())
        .expect("zipkin");
    assert_eq!(
        zipkin.timeout.map(|d| d.get()),
        Some(std::time::Duration::from_secs(5))
    );
    assert_eq!(zipkin.headers.len(), 2);
    assert_eq!(zipkin.headers[0].env_name, "ZIPKIN_TOKEN");
    assert_eq!(
        mesh.mesh_mtls.as_ref().map(|m| m.min_protocol_version),
        Some(MeshTlsProtocol::TlsV1_3)
    );
    assert_eq!(mesh.service_scope_configs[0].scope, ServiceScope::Global);
    assert_eq!(
        mesh.inbound_traffic_policy.map(|p| p.mode),
        Some(InboundTrafficMode::Localhost)
    );
}

#[test]
fn empty_and_typical_configs() {
    assert!(parse("").1.is_empty());
    assert!(
        parse("accessLogFile: /dev/stdout\ndefaultConfig:\n  serviceCluster: istio-proxy\n  discoveryAddress: istiod.istio-system.svc:15012\n  tracing: {}\nenablePrometheusMerge: true\nrootNamespace: istio-system\ntrustDomain: cluster.local\n")
            .1
            .is_empty()
    );
}

#[test]
fn unknown_fields_are_reported() {
    assert_eq!(
        one("defaultConfig:\n  discoveryAdress: istiod:15012\n"),
        (Code::UnknownField, "defaultConfig.discoveryAdress".into())
    );
}

#[test]
fn ports_in_range() {
    assert_eq!(
        one("proxyListenPort: 70000\n"),
        (Code::InvalidValue, "proxyListenPort".into())
    );
    assert_eq!(
        one("proxyHttpPort: -1\n"),
        (Code::InvalidValue, "proxyHttpPort".into())
    );
    assert_eq!(
        one("defaultConfig: {statusPort: 65536}\n"),
        (Code::InvalidValue, "defaultConfig.statusPort".into())
    );
}

#[test]
fn durations() {
    assert_eq!(
        one("connectTimeout: 0s\n"),
        (Code::InvalidValue, "connectTimeout".into())
    );
    assert_eq!(
        one("connectTimeout: 2h\n"),
        (Code::InvalidValue, "connectTimeout".into())
    );
    assert_eq!(
        one("dnsRefreshRate: 0s\n"),
        (Code::InvalidValue, "dnsRefreshRate".into())
    );
    assert_eq!(
        one("defaultConfig: {drainDuration: 1500ms}\n"),
        (Code::InvalidValue, "defaultConfig.drainDuration".into())
    );
    assert_eq!(
        diags("protocolDetectionTimeout: 100us\n"),
        vec![
            (Code::Deprecated, "protocolDetectionTimeout".into()),
            (Code::InvalidValue, "protocolDetectionTimeout".into())
        ]
    );
}

#[test]
fn trust_domains_and_root_namespace() {
    assert_eq!(
        one("trustDomain: Cluster_Local\n"),
        (Code::InvalidValue, "trustDomain".into())
    );
    assert_eq!(
        one("trustDomainAliases: [ok.local, \"\"]\n"),
        (Code::InvalidValue, "trustDomainAliases[1]".into())
    );
    assert_eq!(
        one("rootNamespace: Istio.System\n"),
        (Code::InvalidValue, "rootNamespace".into())
    );
}

#[test]
fn access_log_encoding() {
    assert_eq!(
        one("accessLogEncoding: XML\n"),
        (Code::InvalidValue, "accessLogEncoding".into())
    );
    assert_eq!(
        one("accessLogEncoding: JSON\naccessLogFormat: \"%RESPONSE_CODE%\"\n"),
        (Code::InvalidValue, "accessLogFormat".into())
    );
}

#[test]
fn export_to_defaults() {
    assert_eq!(
        one("defaultServiceExportTo: [\"~\", foo]\n"),
        (Code::InvalidValue, "defaultServiceExportTo".into())
    );
    assert_eq!(
        one("defaultVirtualServiceExportTo: [Foo]\n"),
        (
            Code::InvalidValue,
            "defaultVirtualServiceExportTo[0]".into()
        )
    );
}

#[test]
fn extension_provider_names() {
    assert_eq!(
        one("extensionProviders:\n- name: a\n  prometheus: {}\n- name: a\n  prometheus: {}\n"),
        (Code::InvalidValue, "extensionProviders[1].name".into())
    );
    assert_eq!(
        one("extensionProviders:\n- prometheus: {}\n"),
        (Code::RequiredField, "extensionProviders[0].name".into())
    );
}

#[test]
fn extension_provider_exactly_one_type() {
    assert_eq!(
        one("extensionProviders:\n- name: a\n"),
        (Code::InvalidValue, "extensionProviders[0]".into())
    );
    assert_eq!(
        one(
            "extensionProviders:\n- name: a\n  prometheus: {}\n  zipkin: {service: z.ns.svc, port: 9411}\n"
        ),
        (Code::ConflictingFields, "extensionProviders[0]".into())
    );
}

#[test]
fn ext_authz_service_and_port() {
    assert_eq!(
        one("extensionProviders:\n- name: a\n  envoyExtAuthzHttp: {port: 80}\n"),
        (
            Code::RequiredField,
            "extensionProviders[0].envoyExtAuthzHttp.service".into()
        )
    );
    assert_eq!(
        one("extensionProviders:\n- name: a\n  envoyExtAuthzHttp: {service: a.b}\n"),
        (
            Code::RequiredField,
            "extensionProviders[0].envoyExtAuthzHttp.port".into()
        )
    );
    assert_eq!(
        one("extensionProviders:\n- name: a\n  envoyExtAuthzGrpc: {service: a.b, port: 70000}\n"),
        (
            Code::InvalidValue,
            "extensionProviders[0].envoyExtAuthzGrpc.port".into()
        )
    );
    assert_eq!(
        one(
            "extensionProviders:\n- name: a\n  envoyExtAuthzGrpc: {service: \"a_b.com\", port: 80}\n"
        ),
        (
            Code::InvalidValue,
            "extensionProviders[0].envoyExtAuthzGrpc.service".into()
        )
    );
    assert_eq!(
        one(
            "extensionProviders:\n- name: a\n  envoyExtAuthzGrpc: {service: foo/authz, port: 80}\n"
        ),
        (
            Code::InvalidValue,
            "extensionProviders[0].envoyExtAuthzGrpc.service".into()
        )
    );
    assert_eq!(
        one(
            "extensionProviders:\n- name: a\n  envoyExtAuthzHttp: {service: a.b, port: 80, statusOnError: \"999\"}\n"
        ),
        (
            Code::InvalidValue,
            "extensionProviders[0].envoyExtAuthzHttp.statusOnError".into()
        )
    );
    assert_eq!(
        one(
            "extensionProviders:\n- name: a\n  envoyExtAuthzHttp: {service: a.b, port: 80, pathPrefix: check}\n"
        ),
        (
            Code::InvalidValue,
            "extensionProviders[0].envoyExtAuthzHttp.pathPrefix".into()
        )
    );
    assert_eq!(
        one(
            "extensionProviders:\n- name: a\n  envoyExtAuthzHttp: {service: a.b, port: 80, includeRequestHeadersInCheck: [\"a*b\"]}\n"
        ),
        (
            Code::InvalidValue,
            "extensionProviders[0].envoyExtAuthzHttp.includeRequestHeadersInCheck[0]".into()
        )
    );
    assert_eq!(
        one(
            "extensionProviders:\n- name: a\n  envoyExtAuthzHttp: {service: 10.0.0.1, port: 80, timeout: 0s}\n"
        ),
        (
            Code::InvalidValue,
            "extensionProviders[0].envoyExtAuthzHttp.timeout".into()
        )
    );
}

#[test]
fn tracing_providers() {
    assert_eq!(
        diags("extensionProviders:\n- name: a\n  lightstep: {service: l.ns.svc, port: 8080}\n"),
        vec![
            (Code::Deprecated, "extensionProviders[0].lightstep".into()),
            (
                Code::RequiredField,
                "extensionProviders[0].lightstep.accessToken".into()
            )
        ]
    );
    assert_eq!(
        one(
            "extensionProviders:\n- name: a\n  opentelemetry: {service: o.ns.svc, port: 4317, http: {}, grpc: {}}\n"
        ),
        (
            Code::ConflictingFields,
            "extensionProviders[0].opentelemetry".into()
        )
    );
    assert_eq!(
        one(
            "extensionProviders:\n- name: a\n  opencensus: {service: o.ns.svc, port: 55678, context: [B3]}\n"
        ),
        (Code::Deprecated, "extensionProviders[0].opencensus".into())
    );
    let zipkin = |extra: &str| {
        format!(
            "extensionProviders:\n- name: z\n  zipkin: {{service: z.ns.svc, port: 9411, {extra}}}\n"
        )
    };
    assert_eq!(
        one(&zipkin("timeout: 0s")),
        (
            Code::InvalidValue,
            "extensionProviders[0].zipkin.timeout".into()
        )
    );
    assert_eq!(
        one(&zipkin("headers: [{value: x}]")),
        (
            Code::RequiredField,
            "extensionProviders[0].zipkin.headers[0].name".into()
        )
    );
    assert_eq!(
        one(&zipkin("headers: [{name: \"x y\", value: x}]")),
        (
            Code::InvalidValue,
            "extensionProviders[0].zipkin.headers[0].name".into()
        )
    );
    assert_eq!(
        one(&zipkin("headers: [{name: x-key, value: x, envName: KEY}]")),
        (
            Code::ConflictingFields,
            "extensionProviders[0].zipkin.headers[0]".into()
        )
    );
}

#[test]
fn log_format_is_one_of() {
    assert_eq!(
        one(
            "extensionProviders:\n- name: a\n  envoyFileAccessLog: {logFormat: {text: x, labels: {}}}\n"
        ),
        (
            Code::ConflictingFields,
            "extensionProviders[0].envoyFileAccessLog.logFormat".into()
        )
    );
}

#[test]
fn default_providers_must_be_defined() {
    let d = parse("defaultProviders: {tracing: [zipkin]}\n").1;
    assert_eq!(d.len(), 1);
    assert_eq!(path_of(&d[0]), "defaultProviders.tracing[0]");
    assert!(d[0].message.contains("not defined"), "{}", d[0].message);
    assert!(
        parse("defaultProviders: {metrics: [prometheus], accessLogging: [envoy]}\n")
            .1
            .is_empty()
    );
    assert_eq!(
        one(
            "extensionProviders: [{name: z, zipkin: {service: z.ns.svc, port: 9411}}]\ndefaultProviders: {metrics: [z]}\n"
        ),
        (Code::InvalidValue, "defaultProviders.metrics[0]".into())
    );
}

#[test]
fn mesh_tls() {
    assert_eq!(
        one("meshMTLS: {ecdhCurves: [P-256]}\n"),
        (Code::InvalidValue, "meshMTLS.ecdhCurves".into())
    );
    assert_eq!(
        diags("tlsDefaults: {ecdhCurves: [P-512, P-256, P-256], cipherSuites: [NOPE]}\n"),
        vec![
            (Code::Suspicious, "tlsDefaults.ecdhCurves[0]".into()),
            (Code::Suspicious, "tlsDefaults.ecdhCurves[2]".into()),
            (Code::Suspicious, "tlsDefaults.cipherSuites[0]".into())
        ]
    );
    assert_eq!(
        one("meshMTLS: {minProtocolVersion: TLSV1_1}\n"),
        (Code::InvalidValue, "meshMTLS.minProtocolVersion".into())
    );
}

#[test]
fn ca_certificates() {
    assert_eq!(
        one("caCertificates: [{}]\n"),
        (Code::InvalidValue, "caCertificates[0]".into())
    );
    assert_eq!(
        one("caCertificates: [{pem: x, spiffeBundleUrl: \"https://a.b\"}]\n"),
        (Code::ConflictingFields, "caCertificates[0]".into())
    );
    assert_eq!(
        one("caCertificates: [{pem: not-a-cert}]\n"),
        (Code::InvalidValue, "caCertificates[0].pem".into())
    );
    assert_eq!(
        one("caCertificates: [{spiffeBundleUrl: bundle.example.com}]\n"),
        (
            Code::InvalidValue,
            "caCertificates[0].spiffeBundleUrl".into()
        )
    );
}

#[test]
fn proxy_config_checks() {
    assert_eq!(
        one("defaultConfig: {discoveryAddress: istiod}\n"),
        (Code::InvalidValue, "defaultConfig.discoveryAddress".into())
    );
    assert_eq!(
        one("defaultConfig: {concurrency: -1}\n"),
        (Code::InvalidValue, "defaultConfig.concurrency".into())
    );
    assert_eq!(
        one("defaultConfig: {controlPlaneAuthPolicy: INHERIT}\n"),
        (
            Code::InvalidValue,
            "defaultConfig.controlPlaneAuthPolicy".into()
        )
    );
    assert_eq!(
        one("defaultConfig: {proxyMetadata: {ISTIO_META_DNS_AUTO_ALLOCATE: \"true\"}}\n"),
        (
            Code::Deprecated,
            "defaultConfig.proxyMetadata[ISTIO_META_DNS_AUTO_ALLOCATE]".into()
        )
    );
    assert_eq!(
        one("defaultConfig: {envoyAccessLogService: {address: \"als:0\"}}\n"),
        (
            Code::InvalidValue,
            "defaultConfig.envoyAccessLogService.address".into()
        )
    );
    assert_eq!(
        one("defaultConfig: {serviceCluster: a, tracingServiceName: CANONICAL_NAME_ONLY}\n"),
        (Code::ConflictingFields, "defaultConfig".into())
    );
    assert_eq!(
        one("defaultConfig: {interceptionMode: IPTABLES}\n"),
        (Code::InvalidValue, "defaultConfig.interceptionMode".into())
    );
}

#[test]
fn ca_needs_address() {
    assert_eq!(
        one("ca: {requestTimeout: 1s}\n"),
        (Code::RequiredField, "ca.address".into())
    );
}

#[test]
fn discovery_selectors() {
    assert_eq!(
        one("discoverySelectors: [{matchExpressions: [{key: a, operator: In}]}]\n"),
        (
            Code::RequiredField,
            "discoverySelectors[0].matchExpressions[0].values".into()
        )
    );
    assert_eq!(
        one("discoverySelectors: [{matchExpressions: [{key: a}]}]\n"),
        (
            Code::RequiredField,
            "discoverySelectors[0].matchExpressions[0].operator".into()
        )
    );
    assert_eq!(
        one("discoverySelectors: [{matchExpressions: [{key: a, operator: in}]}]\n"),
        (
            Code::InvalidValue,
            "discoverySelectors[0].matchExpressions[0].operator".into()
        )
    );
    assert_eq!(
        one("discoverySelectors: [{matchLabels: {\"a b\": c}}]\n"),
        (
            Code::InvalidValue,
            "discoverySelectors[0].matchLabels[a b]".into()
        )
    );
}

#[test]
fn service_settings_and_stat_names() {
    assert_eq!(
        one("serviceSettings: [{hosts: [\"a.*.com\"]}]\n"),
        (Code::InvalidValue, "serviceSettings[0].hosts[0]".into())
    );
    assert_eq!(
        one("inboundClusterStatName: \"%SERVICE_NAME%\"\n"),
        (Code::Suspicious, "inboundClusterStatName".into())
    );
}

#[test]
fn deprecated_fields() {
    assert_eq!(
        diags(
            "certificates: [{secretName: a}]\nthriftConfig: {rateLimitUrl: x}\nverifyCertificateAtClient: true\n"
        ),
        vec![
            (Code::Deprecated, "certificates".into()),
            (Code::Deprecated, "thriftConfig".into()),
            (Code::Deprecated, "verifyCertificateAtClient".into())
        ]
    );
}

#[test]
fn config_map_lines_point_into_the_file() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |-\n    accessLogFile: /dev/stdout\n    proxyListenPort: 0\n    rootNamespace: Bad_Ns\n";
    let l = load_named(text, "cm.yaml");
    assert!(l.mesh.is_none());
    assert_eq!(l.diagnostics.len(), 1, "{:#?}", l.diagnostics);
    assert_eq!(l.diagnostics[0].code, Code::InvalidValue);
    assert_eq!(path_of(&l.diagnostics[0]), "data.mesh.rootNamespace");
    assert_eq!(l.diagnostics[0].line, Some(8));
    let ok = text.replace("Bad_Ns", "istio-system");
    let l = load_named(&ok, "cm.yaml");
    assert!(l.mesh.is_some(), "{:#?}", l.diagnostics);
}

#[test]
fn settings_shared_with_networking_kinds_are_validated_by_them() {
    assert_eq!(
        one("defaultHttpRetryPolicy: {attempts: -1}\n"),
        (Code::InvalidValue, "defaultHttpRetryPolicy.attempts".into())
    );
    assert_eq!(
        one("tcpKeepalive: {time: 0s}\n"),
        (Code::InvalidValue, "tcpKeepalive.time".into())
    );
    assert_eq!(
        one("localityLbSetting: {distribute: [{from: a/b/*, to: {a/b/*: 50}}]}\n"),
        (
            Code::InvalidValue,
            "localityLbSetting.distribute[0].to".into()
        )
    );
    let d =
        diags("configSources: [{address: xds.example.com:15010, tlsSettings: {mode: MUTUAL}}]\n");
    assert!(
        d.contains(&(
            Code::RequiredField,
            "configSources[0].tlsSettings.clientCertificate".into()
        )),
        "{d:#?}"
    );
    let (m, d) = parse("defaultHttpRetryPolicy: {attempts: 3, retryOn: 5xx}\n");
    assert!(d.is_empty(), "{d:#?}");
    assert_eq!(m.default_http_retry_policy.map(|r| r.attempts), Some(3));
}
