//! Turning the user's binary into an image: checks first (before any VM
//! exists), then the rootfs ([`rootfs`]: the cpio writer; [`size`]: the
//! `--memory` sizes).

pub mod archive;
pub mod deps;
pub mod gather;
mod index;
pub mod rootfs;
pub mod sites;
pub mod size;
pub mod stored;

use std::path::Path;

use anyhow::{Context, Result};
use optivolt_abi::elf::Elf;

use rootfs::CpioWriter;

/// A read-only mapping of a file (the page cache, not a copy).
pub struct MappedFile {
    ptr: *mut libc::c_void,
    len: usize,
    /// The file, kept open so that the monitor can map it into guest RAM too.
    file: std::fs::File,
}

impl MappedFile {
    /// Maps `path`, read in now; empty files are refused (they cannot be
    /// executables).
    pub fn open(path: &Path) -> std::io::Result<MappedFile> {
        Self::open_with(path, libc::MAP_POPULATE)
    }

    /// Maps `path` without reading it: for a file the monitor maps into the
    /// guest itself, so that volt's own view costs no memory.
    pub fn open_lazy(path: &Path) -> std::io::Result<MappedFile> {
        Self::open_with(path, 0)
    }

    fn open_with(path: &Path, flags: libc::c_int) -> std::io::Result<MappedFile> {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(path)?;
        let meta = f.metadata()?;
        if meta.is_dir() {
            return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
        }
        let len = usize::try_from(meta.len())
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EFBIG))?;
        if len == 0 {
            return Ok(MappedFile {
                ptr: std::ptr::null_mut(),
                len: 0,
                file: f,
            });
        }
        // SAFETY: a fresh read-only private mapping of an open file; the
        // pointer is checked and owned by the returned value.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | flags,
                f.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(MappedFile { ptr, len, file: f })
    }

    /// The mapped file.
    pub fn file(&self) -> &std::fs::File {
        &self.file
    }
}

impl std::ops::Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr..ptr+len` is a live PROT_READ mapping owned by self.
        // (Another process truncating or rewriting the file while volt packs
        // it is the user's race; the worst outcome is a bad image.)
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: unmapping the mapping created in `open`, once.
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}

/// The executable, read into memory or mapped.
pub enum Program {
    /// Read (from a --rootfs tree).
    Owned(Vec<u8>),
    /// Mapped (a lone binary: no copy before it reaches guest memory).
    Mapped(MappedFile),
    /// A member of the rootfs archive (the mapped file that is the first
    /// rootfs part: an image's), at this offset with this length.
    InRootfs { offset: usize, len: usize },
}

/// A piece of the rootfs.
pub enum Part {
    /// cpio headers and small files.
    Bytes(Vec<u8>),
    /// The program's bytes, in place.
    Program,
    /// A whole file (a cached rootfs), mapped.
    File(MappedFile),
}

/// A packed application.
pub struct AppImage {
    /// The rootfs (cpio newc), in pieces.
    pub rootfs: Vec<Part>,
    /// Path of the program inside it.
    pub exec_path: String,
    /// Bytes the program's loadable segments span.
    pub load_size: u64,
    /// The executable itself (the monitor places its segments).
    pub program: Program,
    /// Shared libraries in the image (guest paths, which are also their host
    /// paths): volt finds their `syscall` sites ahead of time too.
    pub libraries: Vec<std::path::PathBuf>,
}

impl AppImage {
    /// The rootfs piece that is the whole program file, with the file: the
    /// monitor maps it from the page cache instead of copying it.
    pub fn mapped_part(&self) -> Option<(usize, &std::fs::File)> {
        if let Some((i, Part::File(f))) = self
            .rootfs
            .iter()
            .enumerate()
            .find(|(_, p)| matches!(p, Part::File(_)))
        {
            return Some((i, f.file()));
        }
        let Program::Mapped(m) = &self.program else {
            return None;
        };
        let i = self
            .rootfs
            .iter()
            .position(|p| matches!(p, Part::Program))?;
        Some((i, m.file()))
    }

    /// The file the program's bytes are mapped from, if they are, and
    /// where in it they start.
    pub fn program_file(&self) -> Option<(&std::fs::File, u64)> {
        match &self.program {
            Program::Mapped(m) => Some((m.file(), 0)),
            Program::Owned(_) => None,
            Program::InRootfs { offset, .. } => match self.rootfs.first() {
                Some(Part::File(f)) => Some((f.file(), *offset as u64)),
                _ => None,
            },
        }
    }

    /// The program's bytes.
    pub fn program_bytes(&self) -> &[u8] {
        match &self.program {
            Program::Owned(v) => v,
            Program::Mapped(m) => m,
            Program::InRootfs { offset, len } => match self.rootfs.first() {
                Some(Part::File(f)) => f.get(*offset..offset.saturating_add(*len)).unwrap_or(&[]),
                _ => &[],
            },
        }
    }

    /// The rootfs pieces as slices, in order.
    pub fn rootfs_slices(&self) -> Vec<&[u8]> {
        self.rootfs
            .iter()
            .map(|p| match p {
                Part::Bytes(b) => b.as_slice(),
                Part::Program => self.program_bytes(),
                Part::File(f) => &f[..],
            })
            .collect()
    }
}

/// Builds the image: with `rootfs`, the directory becomes the guest's `/` and
/// `binary` is looked up inside it first (`/bin/app`), else taken from the
/// host and added as `/<name>`; without, the binary alone.
pub fn pack(
    binary: &Path,
    rootfs: Option<&Path>,
    include: &[std::path::PathBuf],
) -> Result<AppImage> {
    let Some(root) = rootfs else {
        return pack_binary(binary, include);
    };
    if let Some(i) = include.first() {
        anyhow::bail!(
            "--include {} is for host binaries: with --rootfs, put the files in the rootfs",
            i.display()
        );
    }
    let meta = std::fs::metadata(root).with_context(|| format!("--rootfs {}", root.display()))?;
    if !meta.is_dir() {
        anyhow::bail!("--rootfs {}: not a directory", root.display());
    }
    let inside = root.join(binary.strip_prefix("/").unwrap_or(binary));
    let in_rootfs = binary.is_absolute() && std::fs::symlink_metadata(&inside).is_ok();
    let (exec_path, host_file, add_binary) = if in_rootfs {
        (binary.to_string_lossy().into_owned(), inside.clone(), false)
    } else {
        let name = binary
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("app")
            .to_string();
        if std::fs::symlink_metadata(root.join(&name)).is_ok() {
            anyhow::bail!(
                "{} would be added as /{name}, which already exists in --rootfs {}",
                binary.display(),
                root.display()
            );
        }
        (format!("/{name}"), binary.to_path_buf(), true)
    };
    // Follow symlinks inside the rootfs (never out of it) to check the program.
    let real = resolve_inside(root, Path::new(&exec_path)).unwrap_or(host_file.clone());
    let data = std::fs::read(if in_rootfs { &real } else { &host_file })
        .with_context(|| format!("cannot read {}", binary.display()))?;
    let elf = Elf::parse(&data).map_err(|e| anyhow::anyhow!("{}: {e}", binary.display()))?;
    if elf.interpreter().is_some() {
        // Everything it needs must be in the rootfs: say what is not, now.
        deps::closure(&deps::Tree::rootfs(root), Path::new(&exec_path), &elf).map_err(|e| {
            anyhow::anyhow!("{}: {e:#} in --rootfs {}", binary.display(), root.display())
        })?;
    }
    let (lo, hi) = elf.load_bounds();
    let load_size = (hi.div_ceil(4096) * 4096).saturating_sub(lo & !4095);
    let mut w = CpioWriter::new();
    add_tree(&mut w, root, Path::new(""))?;
    if add_binary {
        w.file(&exec_path, 0o755, mtime_of(&host_file), &data);
    }
    Ok(AppImage {
        rootfs: vec![Part::Bytes(w.finish())],
        exec_path,
        load_size,
        program: Program::Owned(data),
        libraries: Vec::new(),
    })
}

/// Resolves `path` (absolute, inside the guest) against the rootfs on the
/// host, following symlinks as the guest would, never leaving `root`.
fn resolve_inside(root: &Path, path: &Path) -> Option<std::path::PathBuf> {
    let tree = deps::Tree::rootfs(root);
    tree.resolve(path).map(|r| tree.host_path(&r.real))
}

fn mtime_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Adds the directory `root/rel` recursively (sorted, so images are reproducible).
fn add_tree(w: &mut CpioWriter, root: &Path, rel: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot read {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = rel.join(e.file_name());
        let host = root.join(&path);
        let name = format!("/{}", path.to_string_lossy());
        let m = std::fs::symlink_metadata(&host)
            .with_context(|| format!("cannot stat {}", host.display()))?;
        let perm = m.permissions().mode() & 0o7777;
        let ft = m.file_type();
        if ft.is_symlink() {
            let t = std::fs::read_link(&host)
                .with_context(|| format!("cannot read link {}", host.display()))?;
            w.symlink(&name, &t.to_string_lossy());
        } else if ft.is_dir() {
            w.dir(&name, perm);
            add_tree(w, root, &path)?;
        } else if ft.is_file() {
            if m.len() > u32::MAX as u64 {
                anyhow::bail!(
                    "{}: files over 4 GiB do not fit a cpio newc rootfs",
                    host.display()
                );
            }
            let data =
                std::fs::read(&host).with_context(|| format!("cannot read {}", host.display()))?;
            w.file(&name, perm, mtime_of(&host), &data);
        }
        // Sockets, FIFOs and device nodes are not part of an image.
    }
    Ok(())
}

/// Maps and checks `binary`, then packs it as `/<name>` in a rootfs whose
/// file data is the mapping itself.
pub fn pack_binary(binary: &Path, include: &[std::path::PathBuf]) -> Result<AppImage> {
    let data = MappedFile::open_lazy(binary)
        .with_context(|| format!("cannot read {}", binary.display()))?;
    let elf = Elf::parse(&data).map_err(|e| anyhow::anyhow!("{}: {e}", binary.display()))?;
    let (lo, hi) = elf.load_bounds();
    let load_size = (hi.div_ceil(4096) * 4096).saturating_sub(lo & !4095);
    if elf.interpreter().is_some() {
        return gather::pack_dynamic(binary, data, load_size, include);
    }
    if let Some(i) = include.first() {
        anyhow::bail!(
            "--include {}: a static binary gets no gathered rootfs; use --rootfs DIR",
            i.display()
        );
    }
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("app")
        .to_string();
    if data.len() > u32::MAX as usize {
        anyhow::bail!(
            "{}: files over 4 GiB do not fit a cpio newc rootfs",
            binary.display()
        );
    }
    let exec_path = format!("/{name}");
    let (header, trailer) = rootfs::single_file(&exec_path, 0o755, mtime_of(binary), data.len());
    Ok(AppImage {
        rootfs: vec![Part::Bytes(header), Part::Program, Part::Bytes(trailer)],
        exec_path,
        load_size,
        program: Program::Mapped(data),
        libraries: Vec::new(),
    })
}
