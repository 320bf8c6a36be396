//! The image commands: `volt build`, `volt images`, `volt rmi`, `volt tag`,
//! `volt image inspect|prune|ls|rm`.
use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use crate::store::registry::Progress;
use crate::store::{build, Image, Reference, Store, CREATED};

/// How listings print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns.
    #[default]
    Table,
    /// One JSON document.
    Json,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and tag the image (repeatable), e.g. web:1 or localhost:5000/web:1.
    #[arg(short, long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// The Voltfile (default: CONTEXT/Voltfile).
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Print only the image ID.
    #[arg(short, long)]
    pub quiet: bool,
    /// The directory the Voltfile and its rootfs are in.
    #[arg(default_value = ".")]
    pub context: PathBuf,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// table or json.
    #[arg(long, short = 'o', value_enum, default_value_t)]
    pub output: Output,
    /// Print only the image IDs.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Images (name or ID prefix).
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// The image (name or ID prefix).
    pub source: String,
    /// The new name.
    pub target: String,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Images (name or ID prefix).
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TransferArgs {
    /// The image, with its registry: HOST[:PORT]/NAME[:TAG] (localhost
    /// registries are spoken to over plain HTTP, others over HTTPS).
    pub image: String,
    /// Print only the manifest digest.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry, HOST[:PORT].
    pub registry: String,
    /// The user name.
    #[arg(short, long)]
    pub username: String,
    /// Read the password from stdin (it never goes on the command line).
    #[arg(long, required = true)]
    pub password_stdin: bool,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images (as `volt images`).
    Ls(ListArgs),
    /// Remove images (as `volt rmi`).
    Rm(RmiArgs),
    /// Print images' manifests and configurations as JSON.
    Inspect(InspectArgs),
    /// Delete blobs and rootfs archives no image uses.
    Prune,
}

fn progress() -> (indicatif::ProgressBar, impl Fn(&str)) {
    let bar = indicatif::ProgressBar::with_draw_target(
        None,
        indicatif::ProgressDrawTarget::stderr_with_hz(10),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    let b = bar.clone();
    (bar, move |m: &str| b.set_message(m.to_string()))
}

/// A progress bar for a registry transfer.
struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn step(&self, msg: &str) {
        self.0.set_message(msg.to_string());
    }
    fn bytes(&self, done: u64, total: u64) {
        self.0.set_length(total);
        self.0.set_position(done);
    }
}

fn transfer_bar() -> Bar {
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(0),
        indicatif::ProgressDrawTarget::stderr_with_hz(10),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Bar(bar)
}

fn parse_remote(s: &str) -> Result<Reference> {
    let r = Reference::parse(s).map_err(anyhow::Error::msg)?;
    if r.registry.is_none() {
        bail!("{s} names no registry: use HOST[:PORT]/{}", r.repository);
    }
    Ok(r)
}

pub fn push(a: TransferArgs) -> Result<i32> {
    let store = Store::open_default()?;
    let r = parse_remote(&a.image)?;
    let bar = transfer_bar();
    let res = crate::store::registry::push(&store, &r, &bar);
    bar.0.finish_and_clear();
    let digest = res?;
    if a.quiet {
        println!("{digest}");
    } else {
        println!("pushed {r} {digest}");
    }
    Ok(0)
}

pub fn pull(a: TransferArgs) -> Result<i32> {
    let store = Store::open_default()?;
    let r = parse_remote(&a.image)?;
    let bar = transfer_bar();
    let res = crate::store::registry::pull(&store, &r, &bar);
    bar.0.finish_and_clear();
    let digest = res?;
    if a.quiet {
        println!("{digest}");
    } else {
        println!("pulled {r} {digest}");
    }
    Ok(0)
}

pub fn login(a: LoginArgs) -> Result<i32> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("cannot read the password from stdin")?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("no password on stdin");
    }
    crate::store::registry::login(&a.registry, &a.username, password)?;
    println!("login succeeded for {}", a.registry);
    Ok(0)
}

pub fn build(a: BuildArgs) -> Result<i32> {
    let store = Store::open_default()?;
    let file = crate::voltfile::find(&a.context, a.file.as_deref());
    if !file.is_file() {
        bail!(
            "{}: no Voltfile there (give one with -f FILE)",
            file.display()
        );
    }
    let (bar, say) = progress();
    let built = build::build(&store, &file, &a.tags, &say);
    bar.finish_and_clear();
    let built = built?;
    if a.quiet {
        println!("sha256:{}", built.id);
    } else {
        for t in &built.tags {
            println!("tagged {t}");
        }
        println!("image sha256:{}", built.id);
    }
    Ok(0)
}

/// What a listing shows of one image.
pub struct Row {
    pub reference: Reference,
    pub id: String,
    pub digest: String,
    pub size: u64,
    pub created: String,
}

pub fn rows(store: &Store) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for img in store.images()? {
        let m = store.manifest(&img)?;
        let size = m.config().size() + m.layers().iter().map(|l| l.size()).sum::<u64>();
        out.push(Row {
            id: m.config().digest().to_string()[7..].to_string(),
            digest: img.digest(),
            size,
            // Images made elsewhere may carry the time in their config only.
            created: m
                .annotations()
                .as_ref()
                .and_then(|a| a.get(CREATED))
                .cloned()
                .or_else(|| store.config(&m).ok().and_then(|c| c.created().clone()))
                .unwrap_or_default(),
            reference: img.reference,
        });
    }
    Ok(out)
}

/// `1.5MB`-style sizes, as docker prints them.
pub fn human_size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[u]
    }
}

pub fn list(a: ListArgs) -> Result<i32> {
    let store = Store::open_default()?;
    let rows = rows(&store)?;
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for r in &rows {
            writeln!(out, "{}", &r.id[..12])?;
        }
        return Ok(0);
    }
    match a.output {
        Output::Json => {
            let v: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "repository": r.reference.name(),
                        "tag": r.reference.tag,
                        "reference": r.reference.to_string(),
                        "id": format!("sha256:{}", r.id),
                        "digest": r.digest,
                        "size": r.size,
                        "created": r.created,
                    })
                })
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        Output::Table => {
            let w = rows
                .iter()
                .map(|r| r.reference.name().len())
                .max()
                .unwrap_or(0)
                .max(10);
            writeln!(
                out,
                "{:<w$}  {:<12}  {:<12}  {:<9}  CREATED",
                "REPOSITORY", "TAG", "IMAGE ID", "SIZE"
            )?;
            for r in &rows {
                writeln!(
                    out,
                    "{:<w$}  {:<12}  {:<12}  {:<9}  {}",
                    r.reference.name(),
                    r.reference.tag.as_deref().unwrap_or("<none>"),
                    &r.id[..12],
                    human_size(r.size),
                    r.created
                )?;
            }
        }
    }
    Ok(0)
}

fn find(store: &Store, name: &str) -> Result<Image> {
    store
        .find(name)?
        .with_context(|| format!("{name}: no such image (volt images lists them)"))
}

pub fn rmi(a: RmiArgs) -> Result<i32> {
    for r in remove_images(&a.images)? {
        println!("untagged {r}");
    }
    Ok(0)
}

/// Removes images (a name that tag, an ID every tag): what was untagged.
pub fn remove_images(names: &[String]) -> Result<Vec<Reference>> {
    let store = Store::open_default()?;
    let mut gone = Vec::new();
    // Every name is checked before anything is removed.
    let found = names
        .iter()
        .map(|n| find(&store, n).map(|i| (n, i)))
        .collect::<Result<Vec<_>>>()?;
    for (name, img) in found {
        // A name removes that tag; an ID removes every tag of the image.
        let by_ref = Reference::parse(name).is_ok_and(|r| r == img.reference);
        let doomed: Vec<Reference> = if by_ref {
            vec![img.reference.clone()]
        } else {
            store
                .images()?
                .into_iter()
                .filter(|i| i.digest() == img.digest())
                .map(|i| i.reference)
                .collect()
        };
        for r in doomed {
            store.untag(&r)?;
            gone.push(r);
        }
    }
    store.gc()?;
    Ok(gone)
}

pub fn tag(a: TagArgs) -> Result<i32> {
    let store = Store::open_default()?;
    let img = find(&store, &a.source)?;
    let r = Reference::parse(&a.target).map_err(anyhow::Error::msg)?;
    if r.digest.is_some() {
        bail!("{}: a tag cannot carry a digest", a.target);
    }
    store.tag(&img.manifest, &r)?;
    Ok(0)
}

pub fn inspect(a: InspectArgs) -> Result<i32> {
    let store = Store::open_default()?;
    let mut docs = Vec::new();
    for n in &a.images {
        let img = find(&store, n)?;
        let m = store.manifest(&img)?;
        let c = store.config(&m)?;
        docs.push(serde_json::json!({
            "reference": img.reference.to_string(),
            "id": m.config().digest().to_string(),
            "digest": img.digest(),
            "manifest": m,
            "config": c,
        }));
    }
    println!("{}", serde_json::to_string_pretty(&docs)?);
    Ok(0)
}

pub fn image(c: ImageCommand) -> Result<i32> {
    match c {
        ImageCommand::Ls(a) => list(a),
        ImageCommand::Rm(a) => rmi(a),
        ImageCommand::Inspect(a) => inspect(a),
        ImageCommand::Prune => {
            let freed = Store::open_default()?.gc()?;
            println!("freed {}", human_size(freed));
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_as_docker_prints_them() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(human_size(7_340_032), "7.34MB");
        assert_eq!(human_size(2_000_000_000), "2GB");
    }
}
