//! Standard Webhooks 1.0 signatures: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
//! with the key the `whsec_` secret's base64 decodes to.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};

/// The key of a secret: the base64 after `whsec_` (a secret that is not base64 is used as its bytes).
pub fn key(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(encoded).unwrap_or_else(|_| secret.as_bytes().to_vec())
}

/// The `v1,<base64>` signature of a message.
pub fn sign(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key(secret)).expect("HMAC takes a key of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Checks a delivery's headers and raw body: the three headers present, the timestamp within `tolerance`
/// seconds of `now` (Unix seconds), and one of the space-separated signatures right.
pub fn verify(
    secret: &str,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    now: u64,
    tolerance: u64,
) -> Result<(), String> {
    let mut missing = Vec::new();
    let mut get = |name: &'static str| {
        let value = header(name);
        if value.is_none() {
            missing.push(name);
        }
        value.unwrap_or_default()
    };
    let (id, timestamp, signatures) = (get("webhook-id"), get("webhook-timestamp"), get("webhook-signature"));
    if !missing.is_empty() {
        return Err(format!("no {} header", missing.join(", no ")));
    }
    let Ok(seconds) = timestamp.trim().parse::<u64>() else {
        return Err(format!("webhook-timestamp `{timestamp}` is not Unix seconds"));
    };
    if seconds.abs_diff(now) > tolerance {
        return Err(format!(
            "webhook-timestamp is {} s from the time of the call (at most {tolerance} s allowed)",
            seconds.abs_diff(now)
        ));
    }
    let expected = sign(secret, &id, &timestamp, body);
    if signatures.split(' ').any(|s| s.trim() == expected) {
        Ok(())
    } else {
        Err(format!(
            "no signature in `{signatures}` is {expected} (HMAC-SHA256 of the id, the timestamp and the raw body)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_example_verifies() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let headers = |name: &str| match name {
            "webhook-id" => Some("msg_p5jXN8AQM9LWM0D4loKWxJek".to_string()),
            "webhook-timestamp" => Some("1614265330".to_string()),
            "webhook-signature" => Some(format!("v1,bogus= {signature}")),
            _ => None,
        };
        assert_eq!(verify(secret, &headers, body, 1614265330, 300), Ok(()));
        assert!(verify(secret, &headers, b"{\"test\": 2432232315}", 1614265330, 300).is_err());
        assert!(verify(secret, &headers, body, 1614265330 + 301, 300).is_err());
        assert!(verify("whsec_AAAA", &headers, body, 1614265330, 300).is_err());
    }
}
