//! Path splitting helpers.

/// The components of `path`, skipping empty ones and `.` (`..` is kept: it is
/// resolved against the directory tree, not lexically).
pub fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
}

/// Splits `path` into (parent part, last component). The last component is
/// empty for "/" or a path ending in "/" or ".".
pub fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    let trimmed = {
        let mut p = path;
        while p.len() > 1 && p.ends_with(b"/") {
            p = &p[..p.len() - 1];
        }
        p
    };
    match trimmed.iter().rposition(|&c| c == b'/') {
        Some(i) => (&trimmed[..i + 1], &trimmed[i + 1..]),
        None => (b"", trimmed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        let c: Vec<_> = components(b"/a//b/./c/..").collect();
        assert_eq!(c, [&b"a"[..], b"b", b"c", b".."]);
        assert_eq!(split_last(b"/a/b"), (&b"/a/"[..], &b"b"[..]));
        assert_eq!(split_last(b"a"), (&b""[..], &b"a"[..]));
        assert_eq!(split_last(b"/a/b/"), (&b"/a/"[..], &b"b"[..]));
        assert_eq!(split_last(b"/"), (&b"/"[..], &b""[..]));
    }
}
