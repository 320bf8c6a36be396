//! The suite's results and how they are written: `results.json` (every
//! sample), `results.csv` (one row per workload, metric and runtime),
//! `README.md` (tables, and the seed's claims checked against the
//! measurements) and `index.html` (the same with SVG charts, made with
//! plotters, inline so the page is one file).
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use schemars::JsonSchema;
use serde::Serialize;

/// A runtime and whether it ran.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RuntimeInfo {
    pub name: String,
    /// What it is (`runc 1.1.5`, `volt run (unikernel)`).
    pub what: String,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
}

/// One measured quantity of one workload on one runtime.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Measurement {
    pub workload: String,
    pub metric: String,
    pub unit: String,
    pub runtime: String,
    pub samples: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Whether less is better (times, memory, CPU) or more (throughput).
    pub lower_is_better: bool,
}

impl Measurement {
    pub fn new(
        workload: &str,
        metric: &str,
        unit: &str,
        runtime: &str,
        samples: Vec<f64>,
        lower_is_better: bool,
    ) -> Option<Measurement> {
        if samples.is_empty() || samples.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut s = samples.clone();
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Some(Measurement {
            workload: workload.into(),
            metric: metric.into(),
            unit: unit.into(),
            runtime: runtime.into(),
            median,
            min: s[0],
            max: s[n - 1],
            samples,
            lower_is_better,
        })
    }
}

/// Everything one run of the suite found.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Results {
    pub started: String,
    pub machine: String,
    pub command: String,
    pub runtimes: Vec<RuntimeInfo>,
    pub measurements: Vec<Measurement>,
    /// What could not be measured here, and why.
    pub notes: Vec<String>,
}

/// A reduction `cut` (percent less than the baseline) in words that cannot
/// be misread.
fn change(cut: f64) -> String {
    if cut >= 0.0 {
        format!("{cut:.0} % less")
    } else {
        format!("{:.0} % more", -cut)
    }
}

fn fmt(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

impl Results {
    fn workloads(&self) -> Vec<String> {
        let mut w: Vec<String> = Vec::new();
        for m in &self.measurements {
            if !w.contains(&m.workload) {
                w.push(m.workload.clone());
            }
        }
        w
    }

    fn metrics_of(&self, workload: &str) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = Vec::new();
        for m in self.measurements.iter().filter(|m| m.workload == workload) {
            let k = (m.metric.clone(), m.unit.clone());
            if !v.contains(&k) {
                v.push(k);
            }
        }
        v
    }

    fn find(&self, workload: &str, metric: &str, runtime: &str) -> Option<&Measurement> {
        self.measurements
            .iter()
            .find(|m| m.workload == workload && m.metric == metric && m.runtime == runtime)
    }

    fn ran(&self) -> Vec<&RuntimeInfo> {
        self.runtimes
            .iter()
            .filter(|r| r.skipped.is_none())
            .collect()
    }

    /// `results.csv`.
    pub fn csv(&self) -> String {
        let mut s = String::from("workload,metric,unit,runtime,n,median,min,max\n");
        for m in &self.measurements {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{}",
                m.workload,
                m.metric,
                m.unit,
                m.runtime,
                m.samples.len(),
                m.median,
                m.min,
                m.max
            );
        }
        s
    }

    /// The seed's claims against what was measured.
    fn claims(&self) -> Vec<String> {
        let mut out = Vec::new();
        let med = |w: &str, m: &str, r: &str| self.find(w, m, r).map(|x| x.median);
        let uk = "unikernel";
        if let Some(b) = med("hello", "boot to exit", uk) {
            let verdict = if b < 50.0 { "holds" } else { "does not hold" };
            out.push(format!(
                "\"Boot time < 50 ms\": the unikernel boots a C hello to its exit in {} ms (median): {verdict}.",
                fmt(b)
            ));
        }
        for base in ["runc", "docker", "podman", "process"] {
            if let (Some(u), Some(c)) = (med("idle", "PSS", uk), med("idle", "PSS", base)) {
                let cut = 100.0 * (1.0 - u / c);
                let verdict = if cut >= 90.0 {
                    "holds"
                } else {
                    "does not hold"
                };
                out.push(format!(
                    "\"RAM −90 %\" against {base}: an idle Go web server costs {} MiB PSS as a unikernel and {} MiB under {base}: {}, the claim {verdict}.",
                    fmt(u),
                    fmt(c),
                    change(cut)
                ));
            }
            if let (Some(u), Some(c)) = (
                med("web", "CPU per 100k requests", uk),
                med("web", "CPU per 100k requests", base),
            ) {
                let cut = 100.0 * (1.0 - u / c);
                let verdict = if cut >= 60.0 {
                    "holds"
                } else {
                    "does not hold"
                };
                out.push(format!(
                    "\"CPU −60 %\" against {base}: serving 100,000 requests costs {} CPU-s as a unikernel and {} under {base}: {}, the claim {verdict}.",
                    fmt(u),
                    fmt(c),
                    change(cut)
                ));
            }
        }
        out
    }

    /// `README.md`.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# OptiVolt benchmark report\n");
        let _ = writeln!(
            s,
            "Run {} on {}.\n\n```\n{}\n```\n",
            self.started, self.machine, self.command
        );
        let _ = writeln!(s, "## Runtimes\n");
        for r in &self.runtimes {
            match &r.skipped {
                None => {
                    let _ = writeln!(s, "- **{}**: {}", r.name, r.what);
                }
                Some(why) => {
                    let _ = writeln!(s, "- **{}**: not run — {why}", r.name);
                }
            }
        }
        let ran = self.ran();
        for w in self.workloads() {
            let _ = writeln!(s, "\n## {w}\n");
            let _ = write!(s, "| metric |");
            for r in &ran {
                let _ = write!(s, " {} |", r.name);
            }
            let _ = write!(s, "\n|---|");
            for _ in &ran {
                let _ = write!(s, "---|");
            }
            let _ = writeln!(s);
            for (metric, unit) in self.metrics_of(&w) {
                let _ = write!(s, "| {metric} ({unit}) |");
                for r in &ran {
                    match self.find(&w, &metric, &r.name) {
                        Some(m) => {
                            let _ =
                                write!(s, " {} ({}..{}) |", fmt(m.median), fmt(m.min), fmt(m.max));
                        }
                        None => {
                            let _ = write!(s, " — |");
                        }
                    }
                }
                let _ = writeln!(s);
            }
        }
        let claims = self.claims();
        if !claims.is_empty() {
            let _ = writeln!(s, "\n## The seed's claims\n");
            for c in claims {
                let _ = writeln!(s, "- {c}");
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s, "\n## Not measured\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        let _ = writeln!(
            s,
            "\nMedians, with (min..max); every sample is in results.json, a row per figure in results.csv."
        );
        s
    }

    /// One bar chart (median, with a min–max whisker) per workload and metric.
    fn chart(&self, workload: &str, metric: &str, unit: &str) -> Result<String> {
        use plotters::prelude::*;
        let rows: Vec<&Measurement> = self
            .ran()
            .iter()
            .filter_map(|r| self.find(workload, metric, &r.name))
            .collect();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (560, 60 + 44 * rows.len() as u32))
                .into_drawing_area();
            root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
            let top = rows.iter().map(|m| m.max).fold(0.0f64, f64::max);
            // All zero (an idle server's CPU): still a readable axis.
            let top = if top > 0.0 { top * 1.15 } else { 1.0 };
            let lower = rows.first().is_none_or(|m| m.lower_is_better);
            let caption = format!(
                "{workload}: {metric} ({unit}, {} is better)",
                if lower { "less" } else { "more" }
            );
            let mut chart = ChartBuilder::on(&root)
                .caption(caption, ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(90)
                .build_cartesian_2d(0.0..top, (0..rows.len().saturating_sub(1)).into_segmented())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let names: Vec<String> = rows.iter().map(|m| m.runtime.clone()).collect();
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(rows.len())
                .y_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                    _ => String::new(),
                })
                .x_label_formatter(&|x| {
                    let t = format!("{x:.3}");
                    t.trim_end_matches('0').trim_end_matches('.').to_string()
                })
                .draw()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let colour = |r: &str| {
                if r.starts_with("unikernel") {
                    RGBColor(46, 139, 87)
                } else {
                    RGBColor(100, 116, 139)
                }
            };
            for (i, m) in rows.iter().enumerate() {
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (m.median, SegmentValue::Exact(i + 1)),
                    ],
                    colour(&m.runtime).filled(),
                );
                bar.set_margin(6, 6, 0, 0);
                chart
                    .draw_series(std::iter::once(bar))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![
                            (m.min, SegmentValue::CenterOf(i)),
                            (m.max, SegmentValue::CenterOf(i)),
                        ],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(svg)
    }

    /// `index.html`.
    pub fn html(&self) -> Result<String> {
        let esc = |t: &str| {
            t.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let mut s = String::from(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>OptiVolt benchmark report</title>\
             <style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#1e293b}\
             .charts{display:flex;flex-wrap:wrap;gap:12px}table{border-collapse:collapse}\
             td,th{border:1px solid #cbd5e1;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}\
             .skip{color:#64748b}</style></head><body>",
        );
        let _ = write!(
            s,
            "<h1>OptiVolt benchmark report</h1><p>Run {} on {}.</p><pre>{}</pre><h2>Runtimes</h2><ul>",
            esc(&self.started),
            esc(&self.machine),
            esc(&self.command)
        );
        for r in &self.runtimes {
            match &r.skipped {
                None => {
                    let _ = write!(s, "<li><b>{}</b>: {}</li>", esc(&r.name), esc(&r.what));
                }
                Some(w) => {
                    let _ = write!(
                        s,
                        "<li class=\"skip\"><b>{}</b>: not run — {}</li>",
                        esc(&r.name),
                        esc(w)
                    );
                }
            }
        }
        s.push_str("</ul>");
        let claims = self.claims();
        if !claims.is_empty() {
            s.push_str("<h2>The seed's claims</h2><ul>");
            for c in claims {
                let _ = write!(s, "<li>{}</li>", esc(&c));
            }
            s.push_str("</ul>");
        }
        for w in self.workloads() {
            let _ = write!(s, "<h2>{}</h2><div class=\"charts\">", esc(&w));
            for (metric, unit) in self.metrics_of(&w) {
                s.push_str(&self.chart(&w, &metric, &unit)?);
            }
            s.push_str("</div>");
        }
        if !self.notes.is_empty() {
            s.push_str("<h2>Not measured</h2><ul>");
            for n in &self.notes {
                let _ = write!(s, "<li>{}</li>", esc(n));
            }
            s.push_str("</ul>");
        }
        s.push_str("<p>Bars are medians, whiskers min..max. Every sample: <a href=\"results.json\">results.json</a>, <a href=\"results.csv\">results.csv</a>.</p></body></html>\n");
        Ok(s)
    }

    /// Writes the four files into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let w = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text)
                .with_context(|| format!("cannot write {}", dir.join(name).display()))
        };
        w("results.json", &serde_json::to_string_pretty(self)?)?;
        w("results.schema.json", &schema())?;
        w("results.csv", &self.csv())?;
        w("README.md", &self.markdown())?;
        w("index.html", &self.html()?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let m = |w: &str, metric: &str, unit: &str, r: &str, v: Vec<f64>, low| {
            Measurement::new(w, metric, unit, r, v, low).unwrap()
        };
        Results {
            started: "2026-12-01T00:00:00Z".into(),
            machine: "test".into(),
            command: "volt bench suite".into(),
            runtimes: vec![
                RuntimeInfo {
                    name: "process".into(),
                    what: "a Linux process".into(),
                    skipped: None,
                },
                RuntimeInfo {
                    name: "unikernel".into(),
                    what: "volt run".into(),
                    skipped: None,
                },
                RuntimeInfo {
                    name: "firecracker".into(),
                    what: String::new(),
                    skipped: Some("not given".into()),
                },
            ],
            measurements: vec![
                m(
                    "hello",
                    "boot to exit",
                    "ms",
                    "process",
                    vec![1.0, 3.0, 2.0],
                    true,
                ),
                m(
                    "hello",
                    "boot to exit",
                    "ms",
                    "unikernel",
                    vec![4.0, 5.0],
                    true,
                ),
                m("idle", "PSS", "MiB", "process", vec![1.0], true),
                m("idle", "PSS", "MiB", "unikernel", vec![3.0], true),
            ],
            notes: vec!["energy: no RAPL".into()],
        }
    }

    #[test]
    fn medians_tables_claims_and_charts() {
        let r = sample();
        assert_eq!(r.measurements[0].median, 2.0);
        assert_eq!(r.measurements[1].median, 4.5);
        assert!(Measurement::new("w", "m", "u", "r", vec![], true).is_none());
        let csv = r.csv();
        assert_eq!(csv.lines().count(), 5);
        assert!(
            csv.contains("hello,boot to exit,ms,unikernel,2,4.5,4,5"),
            "{csv}"
        );
        let md = r.markdown();
        assert!(
            md.contains("| boot to exit (ms) | 2.000 (1.000..3.000) | 4.500 (4.000..5.000) |"),
            "{md}"
        );
        assert!(md.contains("**firecracker**: not run — not given"), "{md}");
        assert!(md.contains("\"Boot time < 50 ms\""), "{md}");
        assert!(
            md.contains("−90 %\" against process") && md.contains("does not hold"),
            "{md}"
        );
        let html = r.html().unwrap();
        assert_eq!(html.matches("<svg").count(), 2, "one chart per metric");
        assert!(html.contains("energy: no RAPL"));
    }
}

/// The JSON Schema of `results.json`, pretty-printed with a final newline
/// (checked in as `docs/suite-results.schema.json`).
pub fn schema() -> String {
    let s = schemars::schema_for!(Results);
    let mut out = serde_json::to_string_pretty(&s).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn the_results_schema_in_docs_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/suite-results.schema.json");
        let now = super::schema();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &now).unwrap();
        }
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            doc == now,
            "docs/suite-results.schema.json is stale: run UPDATE_DOCS=1 cargo test -p optivolt-volt results_schema"
        );
    }
}
