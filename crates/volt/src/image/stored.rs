//! Running an image from the store: its rootfs archive (made once, see
//! `store::derive`) is mapped as it is, and the program is the archive's
//! member, so its read-only segments come from the same page cache as every
//! other instance's.
use std::ffi::OsString;

use anyhow::{bail, Context, Result};
use optivolt_abi::elf::Elf;

use super::archive::{read_toc, TocEntry};
use super::{AppImage, MappedFile, Part, Program};
use crate::store::{derive, tree, Image, Store, ANN_MEMORY};

/// An image ready to boot.
pub struct StoredApp {
    pub app: AppImage,
    /// argv, argv[0] first.
    pub argv: Vec<String>,
    /// The image's environment (`KEY=VALUE`).
    pub env: Vec<String>,
    /// The memory the image asks for, if it does.
    pub memory: Option<u64>,
    /// The table of patchable sites.
    pub sites: Vec<u8>,
    /// The image's working directory, if not `/`.
    pub workdir: Option<String>,
}

/// Prepares `img`; `args` (if any) replace the image's `cmd`.
pub fn pack_image(store: &Store, img: &Image, args: &[OsString]) -> Result<StoredApp> {
    let m = store.manifest(img)?;
    let c = store.config(&m)?;
    let cfg = c.config().clone().unwrap_or_default();
    let mut argv: Vec<String> = cfg.entrypoint().clone().unwrap_or_default();
    if args.is_empty() {
        argv.extend(cfg.cmd().clone().unwrap_or_default());
    } else {
        argv.extend(args.iter().map(|a| a.to_string_lossy().into_owned()));
    }
    let Some(argv0) = argv.first().cloned() else {
        bail!(
            "{}: the image has no command: give one after its name",
            img.reference
        );
    };
    let env: Vec<String> = cfg.env().clone().unwrap_or_default();
    let workdir = cfg
        .working_dir()
        .clone()
        .filter(|w| w.starts_with('/') && w != "/");
    let path = derive::ensure_rootfs(store, img)?;
    let file = MappedFile::open_lazy(&path)
        .with_context(|| format!("cannot map the rootfs of {}", img.reference))?;
    let toc = read_toc(&file).with_context(|| {
        format!(
            "the rootfs of {} is damaged: rm it and run again",
            img.reference
        )
    })?;
    let lookup = |p: &str| -> Option<Option<String>> {
        let e = toc.get(p)?;
        Some(
            (e.mode & 0o170000 == 0o120000)
                .then(|| String::from_utf8_lossy(&file[e.offset..e.offset + e.len]).into_owned()),
        )
    };
    let regular = |p: &str| -> Option<TocEntry> {
        let real = tree::resolve_with(p, lookup)?;
        toc.get(&real)
            .copied()
            .filter(|e| e.mode & 0o170000 == 0o100000)
    };
    let exec = if argv0.contains('/') {
        Some(argv0.clone()).filter(|p| regular(p).is_some())
    } else {
        env.iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(derive::DEFAULT_PATH)
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{argv0}", d.trim_end_matches('/')))
            .find(|p| regular(p).is_some())
    };
    let Some(exec) = exec else {
        bail!("{}: {argv0}: no such file in the image", img.reference);
    };
    let entry = regular(&exec).context("the program vanished from the archive")?;
    let bytes = &file[entry.offset..entry.offset + entry.len];
    let elf = Elf::parse(bytes).map_err(|e| anyhow::anyhow!("{}: {exec}: {e}", img.reference))?;
    let (lo, hi) = elf.load_bounds();
    let load_size = (hi.div_ceil(4096) * 4096).saturating_sub(lo & !4095);
    let sites = match derive::read_sites(&path) {
        Some((p, table)) if p == exec => table,
        Some((_, table)) => derive::with_program_section(&table, bytes),
        None => derive::program_pairs(bytes),
    };
    let memory = m
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ANN_MEMORY))
        .and_then(|s| s.parse::<u64>().ok());
    let exec_path = if exec.starts_with('/') {
        exec
    } else {
        format!("/{exec}")
    };
    let program = if entry.offset.is_multiple_of(4096) {
        Program::InRootfs {
            offset: entry.offset,
            len: entry.len,
        }
    } else {
        Program::Owned(bytes.to_vec())
    };
    Ok(StoredApp {
        app: AppImage {
            rootfs: vec![Part::File(file)],
            exec_path,
            load_size,
            program,
            libraries: Vec::new(),
        },
        argv,
        env,
        memory,
        sites,
        workdir,
    })
}
