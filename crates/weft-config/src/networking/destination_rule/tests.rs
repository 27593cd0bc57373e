use super::*;
use crate::diag::Code;
use crate::load::Loaded;
use crate::test_util::{self, found, indent, lines, load_named, load_spec, read_sample, samples};

fn load(spec: &str) -> Loaded {
    load_spec("networking.istio.io/v1", "DestinationRule", "ns", spec)
}

#[track_caller]
fn expect(spec: &str, code: Code, path: &str) {
    test_util::expect(&load(spec), code, path);
}

/// A policy under `trafficPolicy:` of host `r`.
#[track_caller]
fn expect_tp(policy: &str, code: Code, path: &str) {
    expect(
        &format!("host: r\ntrafficPolicy:\n{}", indent(policy)),
        code,
        path,
    );
}

const FULL: &str = r#"host: reviews.prod.svc.cluster.local
trafficPolicy:
  loadBalancer:
    simple: LEAST_REQUEST
    localityLbSetting:
      distribute:
      - from: us-west/zone1/*
        to: {"us-west/zone1/*": 80, "us-west/zone2/*": 20}
      - from: us-west/zone2/*
        to: {"us-west/zone1/*": 20, "us-west/zone2/*": 80}
      enabled: true
    warmup: {duration: 60s, minimumPercent: 10, aggression: 1.5}
  connectionPool:
    tcp:
      maxConnections: 100
      connectTimeout: 30ms
      tcpKeepalive: {probes: 3, time: 7200s, interval: 75s}
      maxConnectionDuration: 1h
      idleTimeout: 10m
    http:
      http1MaxPendingRequests: 10
      http2MaxRequests: 1000
      maxRequestsPerConnection: 10
      maxRetries: 3
      idleTimeout: 30s
      h2UpgradePolicy: UPGRADE
      useClientProtocol: false
      maxConcurrentStreams: 100
      http2KeepAlive: {interval: 15s, timeout: 5s}
  outlierDetection:
    splitExternalLocalOriginErrors: true
    consecutiveLocalOriginFailures: 5
    consecutiveGatewayErrors: 3
    consecutive5xxErrors: 5
    interval: 10s
    baseEjectionTime: 30s
    maxEjectionPercent: 50
    minHealthPercent: 20
    outlierDetectionHttpErrorCodes: [429, 500, 503]
  tls:
    mode: MUTUAL
    clientCertificate: /etc/certs/cert.pem
    privateKey: /etc/certs/key.pem
    caCertificates: /etc/certs/ca.pem
    subjectAltNames: [reviews.prod]
    sni: reviews.prod.svc.cluster.local
    insecureSkipVerify: false
    caCrl: /etc/certs/crl.pem
  portLevelSettings:
  - port: {number: 9080}
    loadBalancer:
      consistentHash:
        httpCookie:
          name: user
          path: /
          ttl: 0s
          attributes: [{name: SameSite, value: Strict}, {name: Secure}]
        ringHash: {minimumRingSize: 1024}
    connectionPool: {tcp: {maxConnections: 10}}
    outlierDetection: {consecutive5xxErrors: 3}
    tls: {mode: SIMPLE, credentialName: reviews-cred}
  proxyProtocol: {version: V2}
  retryBudget: {percent: 25.5, minRetryConcurrency: 5, budgetInterval: 10s}
subsets:
- name: v1
  labels: {version: v1}
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}
    tunnel: {protocol: CONNECT, targetHost: egress.example.com, targetPort: 8443}
- name: v2
  labels: {version: v2}
  trafficPolicy:
    loadBalancer:
      consistentHash: {useSourceIp: true}
      localityLbSetting:
        failover: [{from: us-east, to: eu-west}]
        failoverPriority: [topology.istio.io/network, "version=v2"]
    outlierDetection: {consecutive5xxErrors: 5}
- name: v3
  trafficPolicy:
    loadBalancer: {consistentHash: {httpQueryParameterName: user}}
- name: v4
  labels: {version: v4}
  trafficPolicy:
    retryBudget: {budgetInterval: 0s}
exportTo: [.]
workloadSelector: {matchLabels: {app: productpage}}
"#;

#[test]
fn fully_populated_rule_loads_clean() {
    let l = load(FULL);
    assert!(l.diagnostics.is_empty(), "{:#?}", lines(&l));
    let dr = l.resources[0]
        .spec_as::<DestinationRule>()
        .expect("a DestinationRule");
    let tp = dr.traffic_policy.as_ref().expect("policy");
    let http = tp
        .connection_pool
        .as_ref()
        .and_then(|c| c.http.as_ref())
        .expect("http");
    assert_eq!(http.h2_upgrade_policy, H2UpgradePolicy::Upgrade);
    assert_eq!(
        tp.outlier_detection
            .as_ref()
            .and_then(|o| o.consecutive_5xx_errors),
        Some(5)
    );
    assert_eq!(
        tp.load_balancer
            .as_ref()
            .and_then(|l| l.warmup.as_ref())
            .and_then(|w| w.aggression),
        Some(1.5)
    );
    assert_eq!(
        tp.proxy_protocol.as_ref().map(|p| p.version),
        Some(ProxyProtocolVersion::V2)
    );
    let budget = tp.retry_budget.as_ref().expect("retry budget");
    assert_eq!(budget.percent, Some(25.5));
    assert_eq!(budget.min_retry_concurrency, 5);
    assert_eq!(
        budget.budget_interval.map(|d| d.get()),
        Some(std::time::Duration::from_secs(10))
    );
    assert_eq!(
        tp.outlier_detection
            .as_ref()
            .map(|o| o.outlier_detection_http_error_codes.clone()),
        Some(vec![429, 500, 503])
    );
    assert_eq!(dr.subsets.len(), 4);
}

#[test]
fn retry_budget() {
    for bad in ["120", "-1", "100.5"] {
        expect_tp(
            &format!("retryBudget: {{percent: {bad}}}\n"),
            Code::InvalidValue,
            "spec.trafficPolicy.retryBudget.percent",
        );
    }
    // A policy with only a retry budget is not empty (istio/istio#57322).
    let l = load("host: r\ntrafficPolicy: {retryBudget: {}}\n");
    assert!(l.diagnostics.is_empty(), "{:#?}", lines(&l));
    let l = load("host: r\ntrafficPolicy: {retryBudget: {percent: 0, budgetInterval: 0s}}\n");
    assert!(l.diagnostics.is_empty(), "{:#?}", lines(&l));
    // Only the host-wide (and subset) policy has one, not a port's.
    expect_tp(
        "portLevelSettings: [{port: {number: 80}, retryBudget: {percent: 20}}]\n",
        Code::UnknownField,
        "spec.trafficPolicy.portLevelSettings[0].retryBudget",
    );
}

#[test]
fn outlier_detection_http_error_codes() {
    expect_tp(
        "outlierDetection: {outlierDetectionHttpErrorCodes: [99]}\n",
        Code::InvalidValue,
        "spec.trafficPolicy.outlierDetection.outlierDetectionHttpErrorCodes[0]",
    );
    expect_tp(
        "outlierDetection: {outlierDetectionHttpErrorCodes: [503, 600]}\n",
        Code::InvalidValue,
        "spec.trafficPolicy.outlierDetection.outlierDetectionHttpErrorCodes[1]",
    );
    expect_tp(
        "outlierDetection: {outlierDetectionHttpErrorCodes: [-1]}\n",
        Code::WrongType,
        "spec.trafficPolicy.outlierDetection.outlierDetectionHttpErrorCodes[0]",
    );
}

#[test]
fn host() {
    expect("subsets: [{name: v1}]\n", Code::RequiredField, "spec.host");
    expect("host: \"a..b\"\n", Code::InvalidValue, "spec.host");
    expect("host: \"foo*\"\n", Code::InvalidValue, "spec.host");
    let l = load("host: \"*.example.com\"\n");
    assert!(l.diagnostics.is_empty(), "{:#?}", lines(&l));
}

#[test]
fn subsets() {
    expect(
        "host: r\nsubsets: [{labels: {v: a}}]\n",
        Code::RequiredField,
        "spec.subsets[0].name",
    );
    expect(
        "host: r\nsubsets: [{name: v_1}]\n",
        Code::InvalidValue,
        "spec.subsets[0].name",
    );
    expect(
        "host: r\nsubsets: [{name: v1}, {name: v1}]\n",
        Code::InvalidValue,
        "spec.subsets[1].name",
    );
    expect(
        "host: r\nsubsets: [{name: v1, labels: {version: \"v 1\"}}]\n",
        Code::InvalidValue,
        "spec.subsets[0].labels[version]",
    );
    expect(
        "host: r\nsubsets: [{name: v1, trafficPolicy: {}}]\n",
        Code::InvalidValue,
        "spec.subsets[0].trafficPolicy",
    );
}

#[test]
fn export_to_and_selector() {
    expect(
        "host: r\nexportTo: [\"~\"]\n",
        Code::InvalidValue,
        "spec.exportTo[0]",
    );
    expect(
        "host: r\nexportTo: [\"*\", a]\n",
        Code::InvalidValue,
        "spec.exportTo",
    );
    expect(
        "host: r\nexportTo: [other]\nworkloadSelector: {matchLabels: {app: a}}\n",
        Code::InvalidValue,
        "spec.exportTo",
    );
    expect(
        "host: r\nexportTo: [., other]\nworkloadSelector: {matchLabels: {app: a}}\n",
        Code::InvalidValue,
        "spec.exportTo",
    );
    expect(
        "host: r\nworkloadSelector: {matchLabels: {app: \"*\"}}\n",
        Code::InvalidValue,
        "spec.workloadSelector.matchLabels[app]",
    );
    expect(
        "host: r\nworkloadSelector: {}\n",
        Code::Suspicious,
        "spec.workloadSelector",
    );
    expect(
        "host: r\nworkloadSelector: {labels: {app: a}}\n",
        Code::UnknownField,
        "spec.workloadSelector.labels",
    );
}

#[test]
fn traffic_policy_shape() {
    expect(
        "host: r\ntrafficPolicy: {}\n",
        Code::InvalidValue,
        "spec.trafficPolicy",
    );
    expect_tp(
        "tunnel: {targetHost: a.com, targetPort: 80}\nproxyProtocol: {version: V1}\n",
        Code::ConflictingFields,
        "spec.trafficPolicy",
    );
    expect_tp(
        "proxyProtocol: {version: V3}\n",
        Code::InvalidValue,
        "spec.trafficPolicy.proxyProtocol.version",
    );
}

#[test]
fn port_level_settings() {
    expect_tp(
        "portLevelSettings: [{loadBalancer: {simple: RANDOM}}]\n",
        Code::RequiredField,
        "spec.trafficPolicy.portLevelSettings[0].port",
    );
    expect_tp(
        "portLevelSettings: [{port: {number: 80}}]\n",
        Code::InvalidValue,
        "spec.trafficPolicy.portLevelSettings[0]",
    );
    expect_tp(
        "portLevelSettings:\n- {port: {number: 80}, loadBalancer: {simple: RANDOM}}\n- {port: {number: 80}, loadBalancer: {simple: ROUND_ROBIN}}\n",
        Code::InvalidValue,
        "spec.trafficPolicy.portLevelSettings[1].port",
    );
    expect_tp(
        "portLevelSettings: [{port: {number: 0}, loadBalancer: {simple: RANDOM}}]\n",
        Code::InvalidValue,
        "spec.trafficPolicy.portLevelSettings[0].port.number",
    );
    expect_tp(
        "portLevelSettings: [{port: {number: 80}, connectionPool: {tcp: {maxConnections: -1}}}]\n",
        Code::InvalidValue,
        "spec.trafficPolicy.portLevelSettings[0].connectionPool.tcp.maxConnections",
    );
}

#[test]
fn load_balancer() {
    let lb = "spec.trafficPolicy.loadBalancer";
    expect_tp(
        "loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}\n",
        Code::ConflictingFields,
        lb,
    );
    expect_tp(
        "loadBalancer: {simple: LEAST_CONN}\n",
        Code::Deprecated,
        &format!("{lb}.simple"),
    );
    expect_tp(
        "loadBalancer: {simple: FASTEST}\n",
        Code::InvalidValue,
        &format!("{lb}.simple"),
    );
    expect_tp(
        "loadBalancer: {simple: RANDOM, warmup: {duration: 10s}}\n",
        Code::Suspicious,
        lb,
    );
}

#[test]
fn consistent_hash() {
    let ch = "spec.trafficPolicy.loadBalancer.consistentHash";
    let tp = |s: &str| format!("loadBalancer:\n  consistentHash: {s}\n");
    expect_tp(
        &tp("{ringHash: {minimumRingSize: 10}}"),
        Code::InvalidValue,
        ch,
    );
    expect_tp(
        &tp("{httpHeaderName: x-user, useSourceIp: true}"),
        Code::ConflictingFields,
        ch,
    );
    expect_tp(
        &tp("{httpHeaderName: \"x user\"}"),
        Code::InvalidValue,
        &format!("{ch}.httpHeaderName"),
    );
    expect_tp(
        &tp("{httpQueryParameterName: \"\"}"),
        Code::InvalidValue,
        &format!("{ch}.httpQueryParameterName"),
    );
    expect_tp(
        &tp("{useSourceIp: false}"),
        Code::Suspicious,
        &format!("{ch}.useSourceIp"),
    );
    expect_tp(
        &tp("{httpCookie: {ttl: 10s}}"),
        Code::RequiredField,
        &format!("{ch}.httpCookie.name"),
    );
    expect_tp(
        &tp("{httpCookie: {name: a, attributes: [{value: x}]}}"),
        Code::RequiredField,
        &format!("{ch}.httpCookie.attributes[0].name"),
    );
    expect_tp(
        &tp("{useSourceIp: true, ringHash: {minimumRingSize: 1}, maglev: {tableSize: 65537}}"),
        Code::ConflictingFields,
        ch,
    );
    expect_tp(
        &tp("{useSourceIp: true, minimumRingSize: 1024}"),
        Code::Deprecated,
        &format!("{ch}.minimumRingSize"),
    );
    expect_tp(
        &tp("{useSourceIp: true, minimumRingSize: 1024, ringHash: {minimumRingSize: 1}}"),
        Code::InvalidValue,
        &format!("{ch}.minimumRingSize"),
    );
    expect_tp(
        &tp("{useSourceIp: true, ringHash: {minimumRingSize: 9000000}}"),
        Code::InvalidValue,
        &format!("{ch}.ringHash.minimumRingSize"),
    );
    expect_tp(
        &tp("{useSourceIp: true, maglev: {}}"),
        Code::RequiredField,
        &format!("{ch}.maglev.tableSize"),
    );
    expect_tp(
        &tp("{useSourceIp: true, maglev: {tableSize: 65536}}"),
        Code::InvalidValue,
        &format!("{ch}.maglev.tableSize"),
    );
    expect_tp(
        &tp("{useSourceIp: true, maglev: {tableSize: 5000011}}"),
        Code::InvalidValue,
        &format!("{ch}.maglev.tableSize"),
    );
}

#[test]
fn locality_lb_setting() {
    let ll = "spec.trafficPolicy.loadBalancer.localityLbSetting";
    let tp = |s: &str| {
        format!(
            "outlierDetection: {{consecutive5xxErrors: 5}}\nloadBalancer:\n  localityLbSetting: {s}\n"
        )
    };
    expect_tp(
        &tp("{distribute: [{from: a, to: {b: 100}}], failover: [{from: a, to: b}]}"),
        Code::ConflictingFields,
        ll,
    );
    expect_tp(
        &tp("{distribute: [{from: a, to: {b: 60, c: 30}}]}"),
        Code::InvalidValue,
        &format!("{ll}.distribute[0].to"),
    );
    expect_tp(
        &tp("{distribute: [{from: a, to: {b: 0, c: 100}}]}"),
        Code::InvalidValue,
        &format!("{ll}.distribute[0].to[b]"),
    );
    expect_tp(
        &tp("{distribute: [{to: {b: 100}}]}"),
        Code::RequiredField,
        &format!("{ll}.distribute[0].from"),
    );
    expect_tp(
        &tp("{distribute: [{from: \"a/*/c\", to: {b: 100}}]}"),
        Code::InvalidValue,
        &format!("{ll}.distribute[0].from"),
    );
    expect_tp(
        &tp("{distribute: [{from: a, to: {b: 100}}, {from: a/z, to: {b: 100}}]}"),
        Code::InvalidValue,
        &format!("{ll}.distribute[1].from"),
    );
    expect_tp(
        &tp("{distribute: [{from: a, to: {\"b/*\": 50, b/z: 50}}]}"),
        Code::InvalidValue,
        &format!("{ll}.distribute[0].to[b/z]"),
    );
    expect_tp(
        &tp("{failover: [{from: a, to: a}]}"),
        Code::InvalidValue,
        &format!("{ll}.failover[0]"),
    );
    expect_tp(
        &tp("{failover: [{from: a/z, to: b}]}"),
        Code::InvalidValue,
        &format!("{ll}.failover[0]"),
    );
    expect_tp(
        &tp("{failover: [{from: \"a*\", to: b}]}"),
        Code::InvalidValue,
        &format!("{ll}.failover[0]"),
    );
    expect_tp(
        &tp("{failover: [{from: a}]}"),
        Code::RequiredField,
        &format!("{ll}.failover[0].to"),
    );
    expect_tp(
        &tp("{failover: [{from: a, to: b}], failoverPriority: [topology.kubernetes.io/zone]}"),
        Code::InvalidValue,
        &format!("{ll}.failoverPriority[0]"),
    );
    expect_tp(
        &tp("{failoverPriority: [\"\"]}"),
        Code::InvalidValue,
        &format!("{ll}.failoverPriority[0]"),
    );
    expect_tp(
        "loadBalancer:\n  localityLbSetting: {failover: [{from: a, to: b}]}\n",
        Code::Suspicious,
        ll,
    );
}

#[test]
fn warmup() {
    let lb = "spec.trafficPolicy.loadBalancer";
    expect_tp(
        "loadBalancer: {warmup: {minimumPercent: 5}}\n",
        Code::RequiredField,
        &format!("{lb}.warmup.duration"),
    );
    expect_tp(
        "loadBalancer: {warmup: {duration: 10s, minimumPercent: 150}}\n",
        Code::InvalidValue,
        &format!("{lb}.warmup.minimumPercent"),
    );
    expect_tp(
        "loadBalancer: {warmup: {duration: 10s, aggression: 0.5}}\n",
        Code::InvalidValue,
        &format!("{lb}.warmup.aggression"),
    );
    expect_tp(
        "loadBalancer: {warmup: {duration: 0s}}\n",
        Code::InvalidValue,
        &format!("{lb}.warmup.duration"),
    );
    expect_tp(
        "loadBalancer: {warmupDurationSecs: 10s}\n",
        Code::Deprecated,
        &format!("{lb}.warmupDurationSecs"),
    );
    expect_tp(
        "loadBalancer: {warmupDurationSecs: 10s, warmup: {duration: 10s}}\n",
        Code::ConflictingFields,
        lb,
    );
}

#[test]
fn connection_pool() {
    let cp = "spec.trafficPolicy.connectionPool";
    expect_tp("connectionPool: {}\n", Code::InvalidValue, cp);
    for (field, path) in [
        ("http1MaxPendingRequests", "http"),
        ("http2MaxRequests", "http"),
        ("maxRequestsPerConnection", "http"),
        ("maxRetries", "http"),
        ("maxConcurrentStreams", "http"),
        ("maxConnections", "tcp"),
    ] {
        expect_tp(
            &format!("connectionPool: {{{path}: {{{field}: -1}}}}\n"),
            Code::InvalidValue,
            &format!("{cp}.{path}.{field}"),
        );
    }
    for (field, path) in [
        ("idleTimeout", "http"),
        ("connectTimeout", "tcp"),
        ("maxConnectionDuration", "tcp"),
        ("idleTimeout", "tcp"),
        ("tcpKeepalive: {time", "tcp"),
        ("tcpKeepalive: {interval", "tcp"),
        ("http2KeepAlive: {timeout", "http"),
    ] {
        let close = if field.contains('{') { "}" } else { "" };
        let shown = field.replace(": {", ".");
        expect_tp(
            &format!("connectionPool: {{{path}: {{{field}: 500us{close}}}}}\n"),
            Code::InvalidValue,
            &format!("{cp}.{path}.{shown}"),
        );
    }
    expect_tp(
        "connectionPool: {tcp: {connectTimeout: 1500us}}\n",
        Code::InvalidValue,
        &format!("{cp}.tcp.connectTimeout"),
    );
    expect_tp(
        "connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}\n",
        Code::ConflictingFields,
        &format!("{cp}.http"),
    );
    expect_tp(
        "connectionPool: {tcp: {connectTimeout: 10}}\n",
        Code::WrongType,
        &format!("{cp}.tcp.connectTimeout"),
    );
}

#[test]
fn outlier_detection() {
    let od = "spec.trafficPolicy.outlierDetection";
    expect_tp(
        "outlierDetection: {interval: 0s}\n",
        Code::InvalidValue,
        &format!("{od}.interval"),
    );
    expect_tp(
        "outlierDetection: {baseEjectionTime: 100us}\n",
        Code::InvalidValue,
        &format!("{od}.baseEjectionTime"),
    );
    expect_tp(
        "outlierDetection: {maxEjectionPercent: 101}\n",
        Code::InvalidValue,
        &format!("{od}.maxEjectionPercent"),
    );
    expect_tp(
        "outlierDetection: {minHealthPercent: -1}\n",
        Code::InvalidValue,
        &format!("{od}.minHealthPercent"),
    );
    expect_tp(
        "outlierDetection: {consecutiveErrors: 5}\n",
        Code::Deprecated,
        &format!("{od}.consecutiveErrors"),
    );
    expect_tp(
        "outlierDetection: {consecutiveLocalOriginFailures: 3}\n",
        Code::InvalidValue,
        &format!("{od}.consecutiveLocalOriginFailures"),
    );
}

#[test]
fn client_tls() {
    let tls = "spec.trafficPolicy.tls";
    expect_tp(
        "tls: {mode: MUTUAL, privateKey: /k}\n",
        Code::RequiredField,
        &format!("{tls}.clientCertificate"),
    );
    expect_tp(
        "tls: {mode: MUTUAL, clientCertificate: /c}\n",
        Code::RequiredField,
        &format!("{tls}.privateKey"),
    );
    let l = load("host: r\ntrafficPolicy: {tls: {mode: MUTUAL, credentialName: cred}}\n");
    assert!(l.diagnostics.is_empty(), "{:#?}", lines(&l));
    expect_tp(
        "tls: {mode: MUTUAL, credentialName: cred, clientCertificate: /c}\n",
        Code::ConflictingFields,
        tls,
    );
    expect_tp(
        "tls: {mode: SIMPLE, credentialName: cred, caCrl: /crl}\n",
        Code::ConflictingFields,
        tls,
    );
    expect_tp(
        "tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca}\n",
        Code::ConflictingFields,
        tls,
    );
    expect_tp(
        "tls: {mode: MUTUAL, insecureSkipVerify: true, credentialName: c, subjectAltNames: [a]}\n",
        Code::ConflictingFields,
        tls,
    );
    expect_tp(
        "tls: {mode: SIMPLE, credentialName: \"configmap://other/ca\"}\n",
        Code::InvalidValue,
        &format!("{tls}.credentialName"),
    );
    let l = load(
        "host: r\ntrafficPolicy: {tls: {mode: SIMPLE, credentialName: \"configmap://ns/ca\"}}\n",
    );
    assert!(l.diagnostics.is_empty(), "{:#?}", lines(&l));
    expect_tp(
        "tls: {mode: ISTIO_MUTUAL, privateKey: /k}\n",
        Code::Suspicious,
        &format!("{tls}.privateKey"),
    );
    expect_tp(
        "tls: {mode: SIMPLE, sni: \"*.example.com\"}\n",
        Code::InvalidValue,
        &format!("{tls}.sni"),
    );
    expect_tp(
        "tls: {mode: SIMPLE, subjectAltNames: [\"\"]}\n",
        Code::InvalidValue,
        &format!("{tls}.subjectAltNames[0]"),
    );
    expect_tp(
        "tls: {mode: STRICT}\n",
        Code::InvalidValue,
        &format!("{tls}.mode"),
    );
}

#[test]
fn tunnel() {
    let t = "spec.trafficPolicy.tunnel";
    expect_tp(
        "tunnel: {protocol: GET, targetHost: a.com, targetPort: 80}\n",
        Code::InvalidValue,
        &format!("{t}.protocol"),
    );
    expect_tp(
        "tunnel: {targetPort: 80}\n",
        Code::RequiredField,
        &format!("{t}.targetHost"),
    );
    expect_tp(
        "tunnel: {targetHost: \"a_b\", targetPort: 80}\n",
        Code::InvalidValue,
        &format!("{t}.targetHost"),
    );
    expect_tp(
        "tunnel: {targetHost: a.com}\n",
        Code::RequiredField,
        &format!("{t}.targetPort"),
    );
    expect_tp(
        "tunnel: {targetHost: 10.0.0.1, targetPort: 70000}\n",
        Code::InvalidValue,
        &format!("{t}.targetPort"),
    );
}

#[test]
fn istio_destination_rule_samples() {
    let dir = samples();
    for f in [
        "crds/destinationrule-valid.yaml",
        "datasets-head/networking-v1-DestinationRule.yaml",
        "bookinfo/destination-rule-all.yaml",
        "bookinfo/destination-rule-all-mtls.yaml",
    ] {
        let l = load_named(&read_sample(&dir, f), f);
        assert!(l.diagnostics.is_empty(), "{f}\n{:#?}", lines(&l));
        assert!(!l.resources.is_empty());
    }
    let text = read_sample(&dir, "crds/destinationrule-invalid.yaml");
    let docs: Vec<&str> = text.split("\n---\n").collect();
    assert_eq!(docs.len(), 3);
    for doc in docs {
        let (err, body) = doc.split_once('\n').expect("an _err line first");
        let want = err
            .trim_start_matches("_err: ")
            .trim_matches('\'')
            .split(": ")
            .next()
            .expect("a path")
            .to_string();
        let l = load_named(body, "dr.yaml");
        assert!(l.resources.is_empty(), "{body}");
        assert!(
            l.diagnostics
                .iter()
                .any(|d| d.is_error()
                    && d.path.as_ref().map(|p| p.to_string()) == Some(want.clone())),
            "{want}\n{:#?}",
            lines(&l)
        );
    }
    let f = "galley-2021/networking-v1beta-DestinationRule-invalid.yaml";
    let l = load_named(&read_sample(&dir, f), f);
    assert_eq!(
        found(&l),
        vec![(Code::RequiredField, "spec.host".to_string())]
    );
}

#[test]
fn primes() {
    assert!(is_prime(65537) && is_prime(2) && is_prime(3) && is_prime(131071));
    assert!(!is_prime(0) && !is_prime(1 << 16) && !is_prime(9) && !is_prime(65535));
}
