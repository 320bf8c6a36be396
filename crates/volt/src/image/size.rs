//! Parsing memory sizes such as `4M`, `512MiB`, `1G`, `65536K` (a bare number is MiB).

/// Parses a size into bytes.
pub fn parse(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size '{s}' (expected e.g. 64M, 1G)"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "m" | "mb" | "mib" => 1 << 20,
        "k" | "kb" | "kib" => 1 << 10,
        "g" | "gb" | "gib" => 1 << 30,
        "b" => 1,
        _ => return Err(format!("invalid size unit in '{s}' (use K, M or G)")),
    };
    n.checked_mul(mult)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("invalid size '{s}'"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn units() {
        assert_eq!(parse("4M"), Ok(4 << 20));
        assert_eq!(parse("64"), Ok(64 << 20));
        assert_eq!(parse("1G"), Ok(1 << 30));
        assert_eq!(parse("512KiB"), Ok(512 << 10));
        assert!(parse("x").is_err());
        assert!(parse("4T").is_err());
        assert!(parse("0").is_err());
        assert!(parse("99999999999999999999G").is_err());
    }
}
