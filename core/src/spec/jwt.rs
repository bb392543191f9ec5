//! Probe variables that are JSON Web Tokens minted by proctor: valid ones, and every kind of bad one a service
//! must refuse (alg none, foreign key, tampered payload, expired, not yet valid, wrong audience or issuer).

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use indexmap::IndexMap;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::template::{self, Undefined};

/// A probe variable: text with placeholders, or a JWT to mint.
#[derive(Debug, Clone)]
pub enum VarSpec {
    /// Text; `{{...}}` placeholders are filled in order.
    Text(String),
    /// A token proctor signs (or deliberately breaks).
    Jwt(Box<JwtSpec>),
}

/// How to sign a minted token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JwtSign {
    /// HMAC-SHA256 with `secret`.
    #[default]
    Hs256,
    /// HMAC-SHA384 with `secret` (a service pinned to HS256 must refuse it).
    Hs384,
    /// HMAC-SHA512 with `secret`.
    Hs512,
    /// No signature at all (the `alg: none` attack); the header's `alg` defaults to `none`.
    None,
}

/// A JWT to mint. Claims and the secret may use placeholders; a claim that is a single placeholder rendering to
/// an integer (`"{{now+600}}"`) becomes a JSON number, as NumericDate claims must be.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtSpec {
    /// An earlier JWT variable of the probe this token starts from: its header, claims, secret and signing are
    /// taken, then this token's fields change them (a claim or header field set to `null` is removed). A
    /// deliberately bad token written this way differs from an accepted one only in what it states.
    pub base: Option<String>,
    /// Header fields; `alg` and `typ` are filled in when absent.
    #[serde(default)]
    pub header: IndexMap<String, serde_json::Value>,
    /// The claims.
    #[serde(default)]
    pub claims: IndexMap<String, serde_json::Value>,
    /// The HMAC secret (usually `{{env.JWT_SECRET}}`, or another key to forge with).
    pub secret: Option<String>,
    /// `hs256` (the default), `hs384`, `hs512` or `none`.
    pub sign: Option<JwtSign>,
    /// Claims changed *after* signing: a tampered payload with the original signature.
    #[serde(default)]
    pub tamper: IndexMap<String, serde_json::Value>,
}

/// The `{ jwt: ... }` form, for the schema.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JwtVar {
    /// A token proctor mints.
    jwt: JwtSpec,
}

impl<'de> Deserialize<'de> for VarSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = VarSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("text, or { jwt: { claims, secret, ... } }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<VarSpec, E> {
                Ok(VarSpec::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<VarSpec, E> {
                Ok(VarSpec::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<VarSpec, E> {
                Ok(VarSpec::Text(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<VarSpec, A::Error> {
                let var = JwtVar::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(VarSpec::Jwt(Box::new(var.jwt)))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl JsonSchema for VarSpec {
    fn schema_name() -> Cow<'static, str> {
        "Var".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let jwt = generator.subschema_for::<JwtVar>();
        json_schema!({
            "description": "Text with {{...}} placeholders, or { jwt: ... } for a token proctor mints.",
            "oneOf": [ { "type": ["string", "number"] }, jwt ]
        })
    }
}

impl JwtSpec {
    /// Every string in the spec that may hold placeholders.
    pub fn texts(&self) -> Vec<&str> {
        let mut texts: Vec<&str> = Vec::new();
        for value in self
            .header
            .values()
            .chain(self.claims.values())
            .chain(self.tamper.values())
        {
            texts.extend(template::json_strings(value));
        }
        texts.extend(self.secret.as_deref());
        texts
    }

    /// The token as minted: its fields over those of its `base`, looked up among the tokens resolved before it;
    /// `None` when the base is not one of them.
    pub fn resolve(&self, earlier: &std::collections::HashMap<&str, JwtSpec>) -> Option<JwtSpec> {
        match &self.base {
            None => Some(self.clone()),
            Some(base) => earlier.get(base.as_str()).map(|base| self.over(base)),
        }
    }

    /// This token's fields applied over `base` (already merged with its own base).
    fn over(&self, base: &JwtSpec) -> JwtSpec {
        fn merge(
            base: &IndexMap<String, serde_json::Value>,
            changes: &IndexMap<String, serde_json::Value>,
        ) -> IndexMap<String, serde_json::Value> {
            let mut out = base.clone();
            for (name, value) in changes {
                if value.is_null() {
                    out.shift_remove(name);
                } else {
                    out.insert(name.clone(), value.clone());
                }
            }
            out
        }
        JwtSpec {
            base: None,
            header: merge(&base.header, &self.header),
            claims: merge(&base.claims, &self.claims),
            secret: self.secret.clone().or_else(|| base.secret.clone()),
            sign: self.sign.or(base.sign),
            tamper: merge(&base.tamper, &self.tamper),
        }
    }

    /// How the token is signed.
    pub fn signing(&self) -> JwtSign {
        self.sign.unwrap_or_default()
    }
}

fn render_claims(
    claims: &IndexMap<String, serde_json::Value>,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<serde_json::Map<String, serde_json::Value>, Undefined> {
    let mut out = serde_json::Map::new();
    for (name, value) in claims {
        let rendered = template::render_json(value, lookup)?;
        let single_placeholder = value.as_str().is_some_and(|s| {
            s.trim().starts_with("{{") && s.trim().ends_with("}}") && template::placeholders(s).len() == 1
        });
        let rendered = match (&rendered, single_placeholder) {
            (serde_json::Value::String(s), true) => s.parse::<i64>().map(serde_json::Value::from).unwrap_or(rendered),
            _ => rendered,
        };
        out.insert(name.clone(), rendered);
    }
    Ok(out)
}

fn encode(value: &serde_json::Map<String, serde_json::Value>) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::Value::Object(value.clone()).to_string())
}

/// The base64url HMAC of `input` under `secret` with the given digest.
macro_rules! hmac_b64 {
    ($digest:ty, $secret:expr, $input:expr) => {{
        let mut mac = Hmac::<$digest>::new_from_slice($secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update($input.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }};
}

/// Mints the token the spec describes (its `base` already applied).
pub fn mint(spec: &JwtSpec, lookup: &mut dyn FnMut(&str) -> Option<String>) -> Result<String, Undefined> {
    let mut header = render_claims(&spec.header, lookup)?;
    let sign = spec.signing();
    let default_alg = match sign {
        JwtSign::None => "none",
        JwtSign::Hs256 => "HS256",
        JwtSign::Hs384 => "HS384",
        JwtSign::Hs512 => "HS512",
    };
    header.entry("alg").or_insert_with(|| default_alg.into());
    header.entry("typ").or_insert_with(|| "JWT".into());
    let claims = render_claims(&spec.claims, lookup)?;
    let signing_input = format!("{}.{}", encode(&header), encode(&claims));
    let secret = template::render(spec.secret.as_deref().unwrap_or_default(), &mut *lookup)?;
    let signature = match sign {
        JwtSign::None => String::new(),
        JwtSign::Hs256 => hmac_b64!(sha2::Sha256, secret, signing_input),
        JwtSign::Hs384 => hmac_b64!(sha2::Sha384, secret, signing_input),
        JwtSign::Hs512 => hmac_b64!(sha2::Sha512, secret, signing_input),
    };
    if spec.tamper.is_empty() {
        return Ok(format!("{signing_input}.{signature}"));
    }
    let mut tampered = claims;
    tampered.extend(render_claims(&spec.tamper, lookup)?);
    Ok(format!("{}.{}.{signature}", encode(&header), encode(&tampered)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> JwtSpec {
        match serde_yaml::from_str::<VarSpec>(yaml).expect("parses") {
            VarSpec::Jwt(spec) => *spec,
            VarSpec::Text(_) => panic!("expected a jwt"),
        }
    }

    fn parts(token: &str) -> (serde_json::Value, serde_json::Value, String) {
        let mut it = token.split('.');
        let mut decode = || {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap_or_default()).expect("base64"))
                .expect("json")
        };
        let header = decode();
        let claims = decode();
        (header, claims, it.next().unwrap_or_default().to_string())
    }

    #[test]
    fn mints_the_rfc_7515_hs256_example_shape_and_numeric_dates() {
        let s =
            spec("jwt: { claims: { sub: '{{user}}', exp: '{{now+600}}', aud: api }, secret: '{{env.JWT_SECRET}}' }");
        let mut lookup = |name: &str| match name {
            "user" => Some("alice".to_string()),
            "now+600" => Some("1700000600".to_string()),
            "env.JWT_SECRET" => Some("s3cret".to_string()),
            _ => None,
        };
        let token = mint(&s, &mut lookup).expect("mints");
        let (header, claims, signature) = parts(&token);
        assert_eq!(header, serde_json::json!({"alg": "HS256", "typ": "JWT"}));
        assert_eq!(
            claims,
            serde_json::json!({"sub": "alice", "exp": 1700000600, "aud": "api"})
        );
        // Recompute the signature independently of `mint`.
        let input = token.rsplit_once('.').expect("three parts").0;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").expect("key");
        mac.update(input.as_bytes());
        assert_eq!(signature, URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    }

    #[test]
    fn alg_none_has_no_signature_and_tampering_keeps_the_old_one() {
        let mut none = |_: &str| None;
        let token = mint(
            &spec("jwt: { sign: none, header: { alg: nOnE }, claims: { sub: x } }"),
            &mut none,
        )
        .expect("mints");
        assert!(token.ends_with('.'));
        assert_eq!(parts(&token).0["alg"], "nOnE");
        let honest = mint(&spec("jwt: { claims: { sub: x, admin: false }, secret: k }"), &mut none).expect("mints");
        let forged = mint(
            &spec("jwt: { claims: { sub: x, admin: false }, secret: k, tamper: { admin: true } }"),
            &mut none,
        )
        .expect("mints");
        assert_eq!(parts(&honest).2, parts(&forged).2, "the signature is the honest one");
        assert_eq!(parts(&forged).1["admin"], true);
    }

    #[test]
    fn plain_text_vars_stay_text_and_unknown_jwt_fields_are_refused() {
        assert!(matches!(serde_yaml::from_str::<VarSpec>("'{{unique}}'"), Ok(VarSpec::Text(t)) if t == "{{unique}}"));
        assert!(serde_yaml::from_str::<VarSpec>("jwt: { clams: {} }").is_err());
        assert!(serde_yaml::from_str::<VarSpec>("token: {}").is_err());
    }
}
