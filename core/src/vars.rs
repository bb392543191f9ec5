//! Variables at run time: builtins, probe vars and captures, with seeded randomness.

use std::collections::HashMap;

use indexmap::IndexMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The variables of one probe.
pub struct Vars {
    values: HashMap<String, String>,
    env: IndexMap<String, String>,
    unique: String,
    seed: u64,
    rng: StdRng,
    /// Inside `repeat` or `burst`: the number of the current request.
    pub index: Option<usize>,
    /// The probe's cookie jar: what responses set (and did not delete), sent with later requests.
    pub cookies: IndexMap<String, String>,
}

/// A 64-bit FNV-1a hash, stable across runs and platforms (std's hasher is not).
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Vars {
    /// Variables for one probe: randomness derives from the run's seed, the challenge and the probe, so
    /// `--seed` reproduces every random value. `{{unique}}` also carries a stamp of the run's id, so that a rerun
    /// with the same seed against a service that kept its state never reuses a key of the earlier run.
    pub fn new(seed: u64, run_id: &str, challenge: &str, probe: &str, env: IndexMap<String, String>) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ stable_hash(&format!("{challenge}/{probe}")));
        let unique = format!(
            "u{:012x}{:06x}",
            rng.random::<u64>() >> 16,
            stable_hash(run_id) & 0xff_ffff
        );
        Self {
            values: HashMap::new(),
            env,
            unique,
            seed,
            rng,
            index: None,
            cookies: IndexMap::new(),
        }
    }

    /// Keeps the cookies a response sets in the probe's jar (a deleted one leaves it).
    pub fn absorb_cookies(&mut self, response: &crate::expect::Response) {
        for cookie in crate::expect::cookies::set_cookies(response) {
            if crate::expect::cookies::cleared(&cookie) {
                self.cookies.shift_remove(cookie.name());
            } else {
                self.cookies
                    .insert(cookie.name().to_string(), cookie.value().to_string());
            }
        }
    }

    /// The `Cookie` header of the jar, if it holds any.
    pub fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Sets (or, with `None`, removes) what `{{env.NAME}}` reads, as a step changed the service's env.
    pub fn set_env(&mut self, name: &str, value: Option<String>) {
        match value {
            Some(value) => {
                self.env.insert(name.to_string(), value);
            }
            None => {
                self.env.shift_remove(name);
            }
        }
    }

    /// Sets a variable (probe vars, captures).
    pub fn set(&mut self, name: &str, value: String) {
        self.values.insert(name.to_string(), value);
    }

    /// `text` with its placeholders filled in; empty when a name is undefined (validation rules that out).
    pub fn render(&mut self, text: &str) -> String {
        crate::spec::template::render(text, |name| self.lookup(name)).unwrap_or_default()
    }

    /// The value of a placeholder name; random builtins draw a fresh value each time.
    pub fn lookup(&mut self, name: &str) -> Option<String> {
        if let Some(value) = self.values.get(name) {
            return Some(value.clone());
        }
        match name {
            "unique" => Some(self.unique.clone()),
            "seed" => Some(self.seed.to_string()),
            "now" => Some(crate::types::unix_seconds(std::time::SystemTime::now()).to_string()),
            "index" => self.index.map(|i| i.to_string()),
            "httpdate" => Some(httpdate::fmt_http_date(std::time::SystemTime::now())),
            _ if name.starts_with("tamper.") => crate::spec::template::tamper_target(name)
                .and_then(|var| self.values.get(var))
                .map(|value| crate::spec::template::tamper(value)),
            _ if name.starts_with("filler.") => crate::spec::template::filler_size(name).map(|n| "x".repeat(n)),
            _ if name.starts_with("now") => crate::spec::template::now_offset(name)
                .map(|offset| (crate::types::unix_seconds(std::time::SystemTime::now()) as i64 + offset).to_string()),
            "random" => Some(format!("{:016x}", self.rng.random::<u64>())),
            "uuid" => {
                let bytes: [u8; 16] = self.rng.random();
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                Some(format!(
                    "{}-{}-4{}-{:x}{}-{}",
                    &hex[..8],
                    &hex[8..12],
                    &hex[13..16],
                    8 | (bytes[8] & 3),
                    &hex[17..20],
                    &hex[20..32]
                ))
            }
            _ => name.strip_prefix("env.").and_then(|key| self.env.get(key).cloned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_values_and_probes_differ() {
        let mut a = Vars::new(7, "r1", "c", "p", IndexMap::new());
        let mut b = Vars::new(7, "r1", "c", "p", IndexMap::new());
        let mut other = Vars::new(7, "r1", "c", "q", IndexMap::new());
        let mut rerun = Vars::new(7, "r2", "c", "p", IndexMap::new());
        assert_eq!(a.lookup("unique"), b.lookup("unique"));
        assert_eq!(a.lookup("uuid"), b.lookup("uuid"));
        assert_ne!(a.lookup("unique"), other.lookup("unique"));
        assert_eq!(
            a.lookup("unique"),
            a.lookup("unique"),
            "unique is stable within a probe"
        );
        assert_ne!(a.lookup("random"), a.lookup("random"), "random is fresh at each use");
        assert_ne!(
            a.lookup("unique"),
            rerun.lookup("unique"),
            "a rerun with the same seed must not reuse the keys of the first run"
        );
        assert_eq!(
            Vars::new(7, "r1", "c", "p", IndexMap::new()).lookup("uuid"),
            Vars::new(7, "r2", "c", "p", IndexMap::new()).lookup("uuid"),
            "the seed still fixes random values"
        );
    }

    #[test]
    fn uuids_have_the_v4_shape_and_env_and_sets_resolve() {
        let env: IndexMap<String, String> = [("KEY".to_string(), "v".to_string())].into_iter().collect();
        let mut vars = Vars::new(1, "r", "c", "p", env);
        let uuid = vars.lookup("uuid").expect("uuid");
        let re =
            regex::Regex::new("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$").expect("regex");
        assert!(re.is_match(&uuid), "{uuid}");
        assert_eq!(vars.lookup("env.KEY").as_deref(), Some("v"));
        assert_eq!(vars.lookup("env.NOPE"), None);
        vars.set("id", "42".into());
        assert_eq!(vars.lookup("id").as_deref(), Some("42"));
        assert_eq!(vars.lookup("index"), None);
    }
}
