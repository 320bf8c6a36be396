//! Energy estimates with the Cloud Carbon Footprint method, for instances
//! (voltd's metrics) and units of work (the benchmark report): a vCPU
//! draws its minimum watts while allocated and up to its maximum in
//! proportion to its use; memory draws a fixed number of watts per GB; the
//! data centre's PUE multiplies both. The coefficients, with their sources,
//! are in `data/energy-coefficients.json` (embedded; `VOLT_ENERGY_COEFFICIENTS`
//! names another file, `VOLT_ENERGY_PROVIDER` another provider in it).
//!
//! ```text
//! compute Wh = min W × vCPU-hours allocated + (max W − min W) × CPU-hours used
//! memory Wh  = W per GB × GB-hours
//! energy     = (compute + memory) × PUE
//! ```
//! This host exposes no RAPL counters (it is itself a VM), so this model is
//! what every energy figure here comes from.
use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

static EMBEDDED: &str = include_str!("../data/energy-coefficients.json");

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub min_watts_per_vcpu: f64,
    pub max_watts_per_vcpu: f64,
    pub pue: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    model: String,
    source: String,
    provider: String,
    providers: BTreeMap<String, Provider>,
    memory_watts_per_gb: f64,
    #[allow(dead_code)]
    notes: String,
}

/// The coefficients in use.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// What the figures follow, and where they come from.
    pub name: String,
    pub source: String,
    pub provider: String,
    pub cpu: Provider,
    pub memory_watts_per_gb: f64,
}

/// What an instance (or a run) used.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Wall-clock seconds it held its vCPUs.
    pub seconds: f64,
    /// vCPUs allocated to it.
    pub vcpus: f64,
    /// Host CPU-seconds it used.
    pub cpu_seconds: f64,
    /// Memory held, in byte-seconds.
    pub memory_byte_seconds: f64,
}

impl Model {
    /// Parses a coefficients file, choosing `provider` (default: the file's).
    pub fn parse(text: &str, provider: Option<&str>) -> Result<Model> {
        let f: File = serde_json::from_str(text).context("the energy coefficients file")?;
        let p = provider.unwrap_or(&f.provider).to_string();
        let Some(cpu) = f.providers.get(&p).copied() else {
            bail!(
                "no energy coefficients for provider {p:?} (the file has: {})",
                f.providers.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        if !(cpu.min_watts_per_vcpu >= 0.0
            && cpu.max_watts_per_vcpu >= cpu.min_watts_per_vcpu
            && cpu.pue >= 1.0
            && f.memory_watts_per_gb >= 0.0)
        {
            bail!(
                "energy coefficients for {p:?} are out of range (need 0 <= min <= max, PUE >= 1)"
            );
        }
        Ok(Model {
            name: f.model,
            source: f.source,
            provider: p,
            cpu,
            memory_watts_per_gb: f.memory_watts_per_gb,
        })
    }

    /// The embedded coefficients, or those the environment names.
    pub fn from_env() -> Result<Model> {
        let provider = std::env::var("VOLT_ENERGY_PROVIDER").ok();
        match std::env::var_os("VOLT_ENERGY_COEFFICIENTS") {
            Some(p) => {
                let text = std::fs::read_to_string(&p).with_context(|| {
                    format!("cannot read {}", std::path::Path::new(&p).display())
                })?;
                Model::parse(&text, provider.as_deref())
            }
            None => Model::parse(EMBEDDED, provider.as_deref()),
        }
    }

    /// Joules for `u`.
    pub fn joules(&self, u: &Usage) -> f64 {
        let c = &self.cpu;
        let compute_ws = c.min_watts_per_vcpu * u.vcpus * u.seconds
            + (c.max_watts_per_vcpu - c.min_watts_per_vcpu) * u.cpu_seconds;
        let memory_ws = self.memory_watts_per_gb * u.memory_byte_seconds / 1e9;
        (compute_ws + memory_ws) * c.pue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_file_reads_and_names_its_source() {
        let m = Model::parse(EMBEDDED, None).unwrap();
        assert_eq!(m.provider, "aws");
        assert_eq!(m.cpu.max_watts_per_vcpu, 3.5);
        assert!(m.source.contains("cloudcarbonfootprint.org"));
        assert_eq!(Model::parse(EMBEDDED, Some("gcp")).unwrap().cpu.pue, 1.1);
        let e = Model::parse(EMBEDDED, Some("ibm")).unwrap_err().to_string();
        assert!(e.contains("aws, azure, gcp"), "{e}");
    }

    #[test]
    fn the_formula_is_the_methods() {
        let m = Model::parse(EMBEDDED, None).unwrap();
        // One vCPU for an hour, half used, with 1 GB: (0.74 + 0.5 × 2.76) W·h
        // of compute and 0.392 W·h of memory, × 1.135.
        let u = Usage {
            seconds: 3600.0,
            vcpus: 1.0,
            cpu_seconds: 1800.0,
            memory_byte_seconds: 1e9 * 3600.0,
        };
        let wh = (0.74 + 0.5 * (3.5 - 0.74) + 0.392) * 1.135;
        assert!((m.joules(&u) - wh * 3600.0).abs() < 1e-6);
        assert_eq!(m.joules(&Usage::default()), 0.0);
    }

    #[test]
    fn bad_coefficients_are_refused() {
        let bad = EMBEDDED.replace("\"pue\": 1.135", "\"pue\": 0.5");
        assert!(Model::parse(&bad, None).is_err());
        assert!(Model::parse("{}", None).is_err());
    }
}
