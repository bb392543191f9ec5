//! Container resource limits: proctor's defaults, the bounds a spec or the command line may move them within,
//! and how the three combine (command line over spec over defaults). Pure.

use std::ops::RangeInclusive;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::types::ByteSize;

/// Container resource limits. A spec can only lower or raise these within proctor's bounds; it can never ask
/// for privileged mode, host networking or host mounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory (swap is set equal, so none is added), e.g. `256MiB`.
    pub memory: Option<ByteSize>,
    /// CPUs, e.g. `0.5`.
    pub cpus: Option<f64>,
    /// The most processes and threads.
    pub pids: Option<u32>,
}

/// Default memory limit: 512 MiB (swap equal to it, so none is added).
pub const DEFAULT_MEMORY: u64 = 512 << 20;
/// Default CPU limit.
pub const DEFAULT_CPUS: f64 = 1.0;
/// Default process and thread limit.
pub const DEFAULT_PIDS: u32 = 256;
/// Open files limit (soft and hard).
pub const NOFILE: i64 = 4096;
/// Size of the tmpfs mounted at /tmp (the root filesystem is read-only).
pub const TMPFS: &str = "rw,noexec,nosuid,size=64m";

/// Memory bounds.
pub const MEMORY: RangeInclusive<u64> = (16 << 20)..=(16 << 30);
/// CPU bounds.
pub const CPUS: RangeInclusive<f64> = 0.1..=64.0;
/// Process bounds.
pub const PIDS: RangeInclusive<u32> = 16..=8192;

/// Limits with every value decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolved {
    /// Memory in bytes.
    pub memory: u64,
    /// CPUs.
    pub cpus: f64,
    /// Processes and threads.
    pub pids: u32,
}

/// Problems with limits, as (field, message), for spec validation and the command line alike.
pub fn check(limits: &Limits) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if let Some(ByteSize(memory)) = limits.memory
        && !MEMORY.contains(&memory)
    {
        problems.push((
            "memory",
            format!("memory must be between 16MiB and 16GiB, not {} MiB", memory >> 20),
        ));
    }
    if let Some(cpus) = limits.cpus
        && !CPUS.contains(&cpus)
    {
        problems.push(("cpus", format!("cpus must be between 0.1 and 64, not {cpus}")));
    }
    if let Some(pids) = limits.pids
        && !PIDS.contains(&pids)
    {
        problems.push(("pids", format!("pids must be between 16 and 8192, not {pids}")));
    }
    problems
}

/// Command line over spec over defaults.
pub fn resolve(spec: &Limits, cli: &Limits) -> Resolved {
    Resolved {
        memory: cli.memory.or(spec.memory).map_or(DEFAULT_MEMORY, |b| b.0),
        cpus: cli.cpus.or(spec.cpus).unwrap_or(DEFAULT_CPUS),
        pids: cli.pids.or(spec.pids).unwrap_or(DEFAULT_PIDS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_wins_over_the_spec_which_wins_over_defaults() {
        let spec = Limits {
            memory: Some(ByteSize(256 << 20)),
            cpus: Some(0.5),
            pids: None,
        };
        let cli = Limits {
            memory: None,
            cpus: Some(2.0),
            pids: None,
        };
        assert_eq!(
            resolve(&spec, &cli),
            Resolved {
                memory: 256 << 20,
                cpus: 2.0,
                pids: DEFAULT_PIDS
            }
        );
        assert_eq!(
            resolve(&Limits::default(), &Limits::default()),
            Resolved {
                memory: DEFAULT_MEMORY,
                cpus: DEFAULT_CPUS,
                pids: DEFAULT_PIDS
            }
        );
    }

    #[test]
    fn out_of_bounds_values_are_refused() {
        let bad = Limits {
            memory: Some(ByteSize(1 << 20)),
            cpus: Some(128.0),
            pids: Some(1),
        };
        let fields: Vec<&str> = check(&bad).into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, vec!["memory", "cpus", "pids"]);
        assert!(
            check(&Limits {
                memory: Some(ByteSize(64 << 20)),
                cpus: Some(0.5),
                pids: Some(64)
            })
            .is_empty()
        );
    }
}
