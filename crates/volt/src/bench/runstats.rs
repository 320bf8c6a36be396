//! Reading what `volt run --stats` printed at exit, so benchmarks can
//! report exits and trapped system calls per unit of work.
use std::collections::BTreeMap;

/// One `--stats` line: `label  TOTAL: N part, N part, …` (or `TOTAL (…)`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Line {
    pub total: u64,
    /// The named parts after the colon: "by jump" → N, "read cr2" → N, …
    pub parts: BTreeMap<String, u64>,
}

/// The `--stats` report in `stderr`, by label ("system calls", "exits", …).
pub fn parse(stderr: &str) -> BTreeMap<String, Line> {
    let mut out = BTreeMap::new();
    for l in stderr.lines() {
        let Some(rest) = l.strip_prefix("  ") else {
            continue;
        };
        // The label ends where its run of spaces does.
        let Some(gap) = rest.find("  ") else {
            continue;
        };
        let label = rest[..gap].trim();
        let value = rest[gap..].trim();
        let num_end = value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len());
        let Ok(total) = value[..num_end].parse() else {
            continue;
        };
        let mut parts = BTreeMap::new();
        if let Some(list) = value[num_end..].strip_prefix(':') {
            for p in list.split(',') {
                let p = p.trim();
                // "2842065 by jump" or "console 10".
                let words: Vec<&str> = p.split_whitespace().collect();
                if let Some(n) = words.first().and_then(|w| w.parse().ok()) {
                    parts.insert(words[1..].join(" "), n);
                } else if let Some(n) = words.last().and_then(|w| w.parse().ok()) {
                    parts.insert(words[..words.len() - 1].join(" "), n);
                }
            }
        }
        out.entry(label.to_string())
            .or_insert(Line { total, parts });
    }
    out
}

/// What a unit of work cost between two reports: exits (all, then by kind)
/// and trapped system calls.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cost {
    pub exits: f64,
    pub exits_by_kind: BTreeMap<String, f64>,
    pub trapped_calls: f64,
    pub calls: f64,
}

/// (`after` − `before`) / `units`, from two parsed reports.
pub fn per_unit(
    after: &BTreeMap<String, Line>,
    before: &BTreeMap<String, Line>,
    units: f64,
) -> Option<Cost> {
    let d = |label: &str, part: Option<&str>| -> Option<f64> {
        let get = |m: &BTreeMap<String, Line>| {
            let l = m.get(label)?;
            match part {
                None => Some(l.total),
                Some(p) => Some(l.parts.get(p).copied().unwrap_or(0)),
            }
        };
        Some(get(after)?.saturating_sub(get(before).unwrap_or(0)) as f64 / units)
    };
    let exits_by_kind = after
        .get("exits")?
        .parts
        .keys()
        .filter_map(|k| Some((k.clone(), d("exits", Some(k))?)))
        .collect();
    Some(Cost {
        exits: d("exits", None)?,
        exits_by_kind,
        trapped_calls: d("system calls", Some("by trap"))?,
        calls: d("system calls", None)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "volt stats (guest):
  system calls        2843116: 2842065 by jump, 1051 by trap
  patched sites       40 (1009 traps from sites left as they are)
  page faults         1
  guest CPU time      405.556 ms
volt stats (monitor):
  exits               1056: console 10, exit 1, read cr2 1001, tlb flush 3
  ticks injected      3 (24 more taken at the end of a system call)
";

    #[test]
    fn a_report_parses_into_totals_and_parts() {
        let r = parse(REPORT);
        assert_eq!(r["system calls"].total, 2843116);
        assert_eq!(r["system calls"].parts["by trap"], 1051);
        assert_eq!(r["patched sites"].total, 40);
        assert_eq!(r["exits"].parts["read cr2"], 1001);
        assert_eq!(r["exits"].parts["console"], 10);
        assert_eq!(r["page faults"].total, 1);
    }

    #[test]
    fn costs_are_differences_per_unit() {
        let before = parse(
            "  system calls        100: 90 by jump, 10 by trap\n  exits               6: console 4, exit 2\n",
        );
        let after = parse(
            "  system calls        1100: 1070 by jump, 30 by trap\n  exits               26: console 4, exit 2, block 20\n",
        );
        let c = per_unit(&after, &before, 10.0).expect("both have the lines");
        assert_eq!(c.calls, 100.0);
        assert_eq!(c.trapped_calls, 2.0);
        assert_eq!(c.exits, 2.0);
        assert_eq!(c.exits_by_kind["block"], 2.0);
        assert_eq!(c.exits_by_kind["console"], 0.0);
        assert!(per_unit(&parse(""), &before, 1.0).is_none());
    }
}
