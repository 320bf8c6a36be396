//! An instance's log: what its program wrote, one JSON object per line
//! (`{"t": nanoseconds since the epoch, "s": "stdout"|"stderr", "l":
//! "the line"}`, like Docker's json-file driver), in `log.jsonl` in the
//! instance's directory, rotated at [`ROTATE_AT`] bytes to `log.1.jsonl`
//! (one old file kept).
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Size at which the log is rotated.
pub const ROTATE_AT: u64 = 16 << 20;

/// One line of output.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Nanoseconds since the epoch.
    pub t: i64,
    /// "stdout" or "stderr".
    pub s: String,
    /// The line, without its newline.
    pub l: String,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The current log file of the instance directory `dir`.
pub fn current(dir: &Path) -> PathBuf {
    dir.join("log.jsonl")
}

fn rotated(dir: &Path) -> PathBuf {
    dir.join("log.1.jsonl")
}

/// Appends lines to an instance's log.
pub struct Writer {
    dir: PathBuf,
    file: std::fs::File,
    size: u64,
    /// A line not finished yet, per stream (0 stdout, 1 stderr).
    partial: [Vec<u8>; 2],
}

impl Writer {
    pub fn open(dir: &Path) -> Result<Writer> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let p = current(dir);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .with_context(|| format!("cannot open {}", p.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Writer {
            dir: dir.to_path_buf(),
            file,
            size,
            partial: [Vec::new(), Vec::new()],
        })
    }

    fn line(&mut self, stream: usize, bytes: &[u8]) -> Result<()> {
        let e = Entry {
            t: now_ns(),
            s: if stream == 0 { "stdout" } else { "stderr" }.into(),
            l: String::from_utf8_lossy(bytes).into_owned(),
        };
        let mut text = serde_json::to_vec(&e)?;
        text.push(b'\n');
        if self.size + text.len() as u64 > ROTATE_AT && self.size > 0 {
            std::fs::rename(current(&self.dir), rotated(&self.dir))
                .context("cannot rotate the log")?;
            *self = Writer::open(&self.dir)?;
        }
        self.file.write_all(&text).context("cannot write the log")?;
        self.size += text.len() as u64;
        Ok(())
    }

    /// Takes `bytes` the program wrote on `stream` (0 stdout, 1 stderr).
    pub fn write(&mut self, stream: usize, bytes: &[u8]) -> Result<()> {
        let mut buf = std::mem::take(&mut self.partial[stream]);
        buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            self.line(stream, &buf[start..start + nl])?;
            start += nl + 1;
        }
        // Very long lines are cut rather than held without bound.
        let rest = buf[start..].to_vec();
        if rest.len() > 64 << 10 {
            self.line(stream, &rest)?;
        } else {
            self.partial[stream] = rest;
        }
        Ok(())
    }

    /// Writes out unfinished lines (at the program's end).
    pub fn flush(&mut self) -> Result<()> {
        for s in 0..2 {
            let rest = std::mem::take(&mut self.partial[s]);
            if !rest.is_empty() {
                self.line(s, &rest)?;
            }
        }
        Ok(())
    }
}

/// Reads the entries of the log in `dir` from `at` (a byte offset in the
/// current file; 0 also reads the rotated one); returns them and where the
/// current file ended.
pub fn read_from(dir: &Path, at: u64) -> (Vec<Entry>, u64) {
    let mut out = Vec::new();
    let mut files = Vec::new();
    if at == 0 {
        files.push((rotated(dir), 0));
    }
    files.push((current(dir), at));
    let mut end = at;
    for (p, from) in files {
        let Ok(f) = std::fs::File::open(&p) else {
            continue;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if from > len {
            // Rotated since: start this file again.
            return read_from(dir, 0);
        }
        let mut r = std::io::BufReader::new(f);
        if std::io::Seek::seek(&mut r, std::io::SeekFrom::Start(from)).is_err() {
            continue;
        }
        let mut pos = from;
        let mut line = String::new();
        while let Ok(n) = r.read_line(&mut line) {
            if n == 0 || !line.ends_with('\n') {
                break; // a line being written: next time
            }
            pos += n as u64;
            if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                out.push(e);
            }
            line.clear();
        }
        if p == current(dir) {
            end = pos;
        }
    }
    (out, end)
}

/// Prints entries to stdout and stderr as the program wrote them.
pub fn print(entries: &[Entry], timestamps: bool) -> Result<()> {
    let mut o = std::io::stdout().lock();
    let mut e = std::io::stderr().lock();
    for x in entries {
        let stamp = if timestamps {
            format!("{} ", crate::store::build::rfc3339(x.t / 1_000_000_000))
        } else {
            String::new()
        };
        if x.s == "stderr" {
            writeln!(e, "{stamp}{}", x.l)?;
        } else {
            writeln!(o, "{stamp}{}", x.l)?;
        }
    }
    o.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_kept_apart_by_stream_and_read_back_incrementally() {
        let d = std::env::temp_dir().join(format!("volt-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let mut w = Writer::open(&d).unwrap();
        w.write(0, b"one\ntw").unwrap();
        w.write(1, b"err\n").unwrap();
        w.write(0, b"o\n").unwrap();
        let (v, end) = read_from(&d, 0);
        let lines: Vec<(&str, &str)> = v.iter().map(|e| (e.s.as_str(), e.l.as_str())).collect();
        assert_eq!(
            lines,
            [("stdout", "one"), ("stderr", "err"), ("stdout", "two")]
        );
        w.write(0, b"three").unwrap();
        w.flush().unwrap();
        let (v, _) = read_from(&d, end);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].l, "three");
        let _ = std::fs::remove_dir_all(&d);
    }
}
