//! `RequestAuthentication`: which JSON Web Tokens a workload accepts, where
//! it finds them and what it does with their claims.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::diag::Code;
use crate::duration::Duration;
use crate::security::{LabelSelector, PolicyTargetReference, check_policy_scope};
use crate::validate::{Validate, Validator, check_duration, check_header_name, is_token};

/// `RequestAuthentication` spec (`security.istio.io`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestAuthentication {
    /// Workloads the policy applies to (not with `targetRef(s)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// A single Gateway API target (deprecated form of `targetRefs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateway API targets (Gateway, GatewayClass, Service, ServiceEntry).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Accepted token issuers and how to verify their tokens.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub jwt_rules: Vec<JwtRule>,
}

/// `JWTRule`: one accepted issuer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JwtRule {
    /// Expected `iss` claim; tokens with another issuer are rejected.
    pub issuer: String,
    /// Accepted `aud` values; empty accepts the service name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// URL of the issuer's JSON Web Key Set (`http://` or `https://`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jwks_uri: String,
    /// Inline JSON Web Key Set (instead of `jwksUri`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jwks: String,
    /// Headers the token may be in (default: `Authorization: Bearer`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from_headers: Vec<JwtHeader>,
    /// Query parameters the token may be in (default: `access_token`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from_params: Vec<String>,
    /// Header to copy the verified payload to (base64 JSON).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub output_payload_to_header: String,
    /// Cookies the token may be in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from_cookies: Vec<String>,
    /// Keep the token in the request forwarded upstream (default false).
    pub forward_original_token: bool,
    /// Claims to copy into request headers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// Timeout for fetching the JWKS (default 5s; at least 1ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Extra claims whose space-separated values are split into a list
    /// (besides `scope` and `permission`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub space_delimited_claims: Vec<String>,
}

/// `JWTHeader`: a header carrying the token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JwtHeader {
    /// Header name.
    pub name: String,
    /// Prefix stripped before the token (e.g. `"Bearer "`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// `ClaimToHeader`: copy one claim to one header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClaimToHeader {
    /// Header to set (overwritten if present).
    pub header: String,
    /// Claim to copy (`a.b` for nested claims; string, int or bool only).
    pub claim: String,
}

impl Validate for RequestAuthentication {
    fn validate(&self, v: &mut Validator) {
        check_policy_scope(v, &self.selector, &self.target_ref, &self.target_refs);
        let mut issuers: BTreeSet<String> = BTreeSet::new();
        v.each("jwtRules", &self.jwt_rules, |v, rule| {
            rule.validate(v);
            if !rule.issuer.is_empty() && !issuers.insert(rule.issuer.clone()) {
                v.field("issuer", |v| {
                    v.warn(format!("issuer {:?} is named by more than one jwtRule", rule.issuer))
                        .hint("merge the rules, or give each issuer one rule (several keys go in one JWKS)");
                });
            }
        });
    }
}

impl Validate for JwtRule {
    fn validate(&self, v: &mut Validator) {
        if self.issuer.is_empty() {
            // Istio 1.27+ accepts a rule without issuer when it has a
            // jwksUri; Weft does not: such a rule accepts a token whatever
            // its `iss`, from anyone holding a key of that JWKS.
            v.required("issuer").hint(
                "name the token issuer, e.g. `issuer: https://accounts.example.com`; a rule without one would accept tokens of any issuer",
            );
        } else if self.issuer.trim() != self.issuer {
            v.field("issuer", |v| {
                v.report(
                    Code::NeverMatches,
                    format!(
                        "issuer {:?} has leading or trailing spaces: no token's `iss` claim will equal it",
                        self.issuer
                    ),
                );
            });
        }
        v.each("audiences", &self.audiences, |v, aud| {
            if aud.is_empty() {
                v.error("audience must be non-empty string");
            }
        });
        if !self.jwks_uri.is_empty() {
            v.field("jwksUri", |v| check_http_url(v, &self.jwks_uri));
        }
        if !self.jwks.is_empty() {
            v.field("jwks", |v| check_jwks(v, &self.jwks));
        }
        if !self.jwks.is_empty() && !self.jwks_uri.is_empty() {
            v.conflict("only one of jwks or jwksUri can be set")
                .hint("keep the inline `jwks` or the `jwksUri` to fetch it from, not both");
        }
        let mut seen_headers = BTreeSet::new();
        v.each("fromHeaders", &self.from_headers, |v, h| {
            if h.name.is_empty() {
                v.required("name")
                    .hint("name the header the token comes in, e.g. `x-jwt-assertion`");
            } else {
                v.field("name", |v| check_header_name(v, &h.name));
                if !seen_headers.insert(h.name.to_ascii_lowercase()) {
                    v.field("name", |v| {
                        v.warn(format!("header {:?} is listed twice", h.name));
                    });
                }
            }
        });
        v.each("fromParams", &self.from_params, |v, p| {
            if p.is_empty() {
                v.error("location query must be non-empty string");
            }
        });
        v.each("fromCookies", &self.from_cookies, |v, c| {
            if c.is_empty() {
                v.error("cookie name must be non-empty string");
            } else if !is_token(c) {
                v.error(format!(
                    "cookie name {c:?} is invalid: use letters, digits and !#$%&'*+-.^_`|~"
                ));
            }
        });
        if !self.output_payload_to_header.is_empty() {
            v.field("outputPayloadToHeader", |v| {
                check_header_name(v, &self.output_payload_to_header)
            });
        }
        let mut out_headers = BTreeSet::new();
        v.each("outputClaimToHeaders", &self.output_claim_to_headers, |v, c| {
            if c.header.is_empty() {
                v.required("header");
            } else {
                v.field("header", |v| {
                    check_header_name(v, &c.header);
                    if !out_headers.insert(c.header.to_ascii_lowercase()) {
                        v.error(format!(
                            "header {:?} is set by more than one outputClaimToHeaders entry",
                            c.header
                        ))
                        .hint("each header may be written from one claim only");
                    }
                });
            }
            if c.claim.is_empty() {
                v.required("claim");
            } else if c.claim.chars().any(char::is_whitespace)
                || c.claim.starts_with('.')
                || c.claim.ends_with('.')
                || c.claim.contains("..")
            {
                v.field("claim", |v| {
                    v.error(format!(
                        "claim {:?} is invalid: a claim name has no spaces; nested claims are written `a.b`",
                        c.claim
                    ));
                });
            }
        });
        if let Some(t) = self.timeout {
            v.field("timeout", |v| check_duration(v, t));
        }
        v.each(
            "spaceDelimitedClaims",
            &self.space_delimited_claims,
            |v, c| {
                if c.is_empty() {
                    v.error("claim name must be non-empty string");
                }
            },
        );
    }
}

/// Checks an `http://` or `https://` URL with a host and an optional valid
/// port.
pub(crate) fn check_http_url(v: &mut Validator, url: &str) {
    let lower = url.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix("https://") {
        r
    } else if let Some(r) = lower.strip_prefix("http://") {
        r
    } else {
        v.error(format!(
            "{url:?} is not a valid URL: url must have scheme http:// or https://"
        ))
        .hint("write the full URL, e.g. https://example.com/.well-known/jwks.json");
        return;
    };
    if url.chars().any(|c| c.is_whitespace() || c == '\\') {
        v.error(format!(
            "{url:?} is not a valid URL: it contains spaces or backslashes"
        ));
        return;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => ("", None),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        v.error(format!("{url:?} is not a valid URL: it has no host"));
        return;
    }
    if let Some(p) = port {
        match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => {}
            _ => {
                v.error(format!(
                    "{url:?} is not a valid URL: port {p:?} must be between 1-65535"
                ));
            }
        }
    }
}

/// Checks an inline JWKS: a JSON object with a `keys` list of keys that
/// name their `kty`.
fn check_jwks(v: &mut Validator, jwks: &str) {
    let value: serde_json::Value = match serde_json::from_str(jwks) {
        Ok(j) => j,
        Err(e) => {
            v.error(format!("jwks parse error: not valid JSON: {e}"))
                .hint("paste the JSON Web Key Set, e.g. {\"keys\": [{\"kty\": \"RSA\", ...}]}");
            return;
        }
    };
    let keys = match value.get("keys") {
        Some(serde_json::Value::Array(keys)) => keys.as_slice(),
        Some(_) => {
            v.error("jwks parse error: \"keys\" must be a list");
            return;
        }
        // A single JWK is accepted too.
        None if value.get("kty").is_some() => std::slice::from_ref(&value),
        None => {
            v.error("jwks parse error: a JSON Web Key Set has a \"keys\" list");
            return;
        }
    };
    if keys.is_empty() {
        v.error("jwks parse error: the key set has no keys: no token can be verified");
    }
    for (i, key) in keys.iter().enumerate() {
        if key.get("kty").and_then(|k| k.as_str()).is_none() {
            v.error(format!("jwks parse error: key {i} has no \"kty\""));
        }
    }
}

#[cfg(test)]
mod tests;
