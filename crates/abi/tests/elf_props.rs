//! Property tests of the ELF reader (`optivolt_abi::elf`), which parses
//! untrusted files on both sides: the monitor checks and places the user's
//! binary, the library OS loads it from the rootfs.
//!
//! The inputs are real x86-64 executables: a small C program linked with
//! `cc -static` (and `-static-pie` where the toolchain can), built once into
//! cargo's per-target temporary directory, plus `/bin/true` (dynamic, so it
//! must be refused cleanly). Each property mutates them — byte flips in the
//! ELF and program headers, truncations, extreme values written over the
//! offset, size and address fields — and runs every public parse and plan
//! function on the result. Nothing may panic, and whatever comes back as `Ok`
//! must lie inside the input and relocate without overflow.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use optivolt_abi::elf::{
    self, Elf, ElfError, LoadPlan, ET_DYN, ET_EXEC, PHDR_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE,
    PT_DYNAMIC, PT_GNU_STACK, PT_INTERP, PT_LOAD, PT_PHDR, PT_TLS,
};
use optivolt_abi::layout::{USER_PIE_BASE, USER_TOP};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

/// Cases per property: enough to reach the odd corners, a few seconds in all.
const CASES: u32 = 512;

/// The top of the application's address space as the library OS plans it
/// (its 8 MiB main stack sits below `USER_TOP`).
const PLAN_TOP: u64 = USER_TOP - (8 << 20);

const PROGRAM: &str = r#"
#include <stdio.h>
#include <string.h>
static __thread int calls = 1;     /* a PT_TLS segment */
static char buf[1 << 16];          /* .bss: p_memsz > p_filesz */
int main(int argc, char **argv) {
    calls += argc;
    strncpy(buf, argv[0], sizeof buf - 1);
    printf("%d %s\n", calls, buf);
    return 0;
}
"#;

/// One real executable to mutate.
struct Sample {
    name: &'static str,
    bytes: Vec<u8>,
    /// Linked statically: parses, plans and must keep doing so unmutated.
    is_static: bool,
}

/// The samples, built once per test process.
fn samples() -> &'static [Sample] {
    static SAMPLES: OnceLock<Vec<Sample>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        let mut v = Vec::new();
        match compile_static_samples() {
            Ok(built) => v.extend(built),
            Err(why) => eprintln!(
                "elf_props: SKIPPING the static-binary samples: {why} \
                 (install gcc and the static C library to run them)"
            ),
        }
        if let Ok(bytes) = std::fs::read("/bin/true") {
            if bytes.starts_with(b"\x7fELF") {
                v.push(Sample {
                    name: "/bin/true",
                    bytes,
                    is_static: false,
                });
            }
        }
        if v.is_empty() {
            eprintln!("elf_props: SKIPPING every property: no real ELF binary to mutate");
        }
        v
    })
}

/// `cc -static` (required) and `cc -static-pie` (optional) of [`PROGRAM`].
fn compile_static_samples() -> Result<Vec<Sample>, String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("elf_props");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let src = dir.join("hello.c");
    std::fs::write(&src, PROGRAM).map_err(|e| format!("cannot write {}: {e}", src.display()))?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let build = |flag: &str, name: &str| -> Result<Vec<u8>, String> {
        // The process id keeps parallel test processes from sharing a file.
        let out = dir.join(format!("{name}-{}", std::process::id()));
        let o = Command::new(&cc)
            .args([flag, "-O2", "-o"])
            .arg(&out)
            .arg(&src)
            .output()
            .map_err(|e| format!("cannot run `{cc}`: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "`{cc} {flag}` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        let bytes = std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let _ = std::fs::remove_file(&out);
        Ok(bytes)
    };
    let mut v = vec![Sample {
        name: "cc -static",
        bytes: build("-static", "hello-static")?,
        is_static: true,
    }];
    match build("-static-pie", "hello-static-pie") {
        Ok(bytes) => v.push(Sample {
            name: "cc -static-pie",
            bytes,
            is_static: true,
        }),
        Err(why) => eprintln!("elf_props: no static-pie sample: {why}"),
    }
    Ok(v)
}

/// One of the samples (only the static ones if `static_only`), if any.
fn pick(which: Index, static_only: bool) -> Option<&'static Sample> {
    let v: Vec<&Sample> = samples()
        .iter()
        .filter(|s| s.is_static || !static_only)
        .collect();
    (!v.is_empty()).then(|| *which.get(&v))
}

/// Bytes of the ELF header and program header table of an unmutated sample.
fn header_region(bytes: &[u8]) -> usize {
    let e = Elf::parse(bytes).expect("the samples are valid ELF files");
    let table = e.phoff as usize + e.phnum as usize * e.phentsize as usize;
    table.max(64).min(bytes.len())
}

/// A field of the ELF header or of one program header.
#[derive(Clone, Copy, Debug)]
enum Field {
    EType,
    EEntry,
    EPhoff,
    EPhentsize,
    EPhnum,
    PType(Index),
    POffset(Index),
    PVaddr(Index),
    PFilesz(Index),
    PMemsz(Index),
    PAlign(Index),
}

impl Field {
    /// File offset and width of the field in `orig` (an unmutated sample):
    /// program headers are found where the original table is.
    fn locate(self, orig: &[u8]) -> (usize, usize) {
        let e = Elf::parse(orig).expect("the samples are valid ELF files");
        let ph = |i: Index, off: usize| {
            let n = i.index(e.phnum as usize);
            e.phoff as usize + n * e.phentsize as usize + off
        };
        match self {
            Field::EType => (16, 2),
            Field::EEntry => (24, 8),
            Field::EPhoff => (32, 8),
            Field::EPhentsize => (54, 2),
            Field::EPhnum => (56, 2),
            Field::PType(i) => (ph(i, 0), 4),
            Field::POffset(i) => (ph(i, 8), 8),
            Field::PVaddr(i) => (ph(i, 16), 8),
            Field::PFilesz(i) => (ph(i, 32), 8),
            Field::PMemsz(i) => (ph(i, 40), 8),
            Field::PAlign(i) => (ph(i, 48), 8),
        }
    }
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        Just(Field::EType),
        Just(Field::EEntry),
        Just(Field::EPhoff),
        Just(Field::EPhentsize),
        Just(Field::EPhnum),
        any::<Index>().prop_map(Field::PType),
        any::<Index>().prop_map(Field::POffset),
        any::<Index>().prop_map(Field::PVaddr),
        any::<Index>().prop_map(Field::PFilesz),
        any::<Index>().prop_map(Field::PMemsz),
        any::<Index>().prop_map(Field::PAlign),
    ]
}

/// Values that sit on the edges: zero, the top of the range, sign bits,
/// the canonical-address boundary, and anything at all.
fn extreme() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 0xfff),
        Just(i64::MAX as u64),
        Just(1 << 63),
        Just(1 << 47),
        Just(0xfff),
        Just(0x1000),
        Just(u32::MAX as u64),
        Just(u16::MAX as u64),
        (u64::MAX - 0x1_0000)..=u64::MAX,
        0u64..0x10_0000,
        any::<u64>(),
    ]
}

/// One change to a sample.
#[derive(Clone, Debug)]
enum Mutation {
    /// XOR one byte of the original header region.
    Flip { at: Index, mask: u8 },
    /// Overwrite a header field with (the low bytes of) a value.
    Set { field: Field, value: u64 },
    /// Cut the file.
    Truncate { at: Index },
}

fn flip() -> impl Strategy<Value = Mutation> {
    (any::<Index>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask })
}

fn set() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (field(), extreme()).prop_map(|(field, value)| Mutation::Set { field, value }),
        // Turn a program header into another kind (a second PT_LOAD, a
        // PT_PHDR or PT_INTERP where there was none, ...).
        1 => (any::<Index>(), segment_type()).prop_map(|(i, t)| Mutation::Set {
            field: Field::PType(i),
            value: t as u64,
        }),
    ]
}

fn segment_type() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(PT_LOAD),
        Just(PT_DYNAMIC),
        Just(PT_INTERP),
        Just(PT_PHDR),
        Just(PT_TLS),
        Just(PT_GNU_STACK),
    ]
}

fn truncate() -> impl Strategy<Value = Mutation> {
    any::<Index>().prop_map(|at| Mutation::Truncate { at })
}

/// Applies `muts` in order to a copy of `orig`. Positions refer to the
/// original layout; a write past a previous truncation is dropped.
fn mutate(orig: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let region = header_region(orig);
    let mut b = orig.to_vec();
    for m in muts {
        match *m {
            Mutation::Flip { at, mask } => {
                if let Some(x) = b.get_mut(at.index(region)) {
                    *x ^= mask;
                }
            }
            Mutation::Set { field, value } => {
                let (off, width) = field.locate(orig);
                let bytes = value.to_le_bytes();
                for (k, &v) in bytes[..width].iter().enumerate() {
                    if let Some(x) = b.get_mut(off + k) {
                        *x = v;
                    }
                }
            }
            Mutation::Truncate { at } => {
                // Half the cuts land in (or just past) the headers, where the
                // parser looks first; the rest anywhere in the file.
                let len = if at.index(2) == 0 {
                    at.index(region + PHDR_SIZE + 1)
                } else {
                    at.index(orig.len() + 1)
                };
                b.truncate(len);
            }
        }
    }
    b
}

/// Where to plan: the library OS's own parameters, or anything page aligned.
fn plan_args() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        Just((USER_PIE_BASE, PLAN_TOP)),
        (extreme(), extreme()).prop_map(|(base, top)| (base & !0xfff, top)),
    ]
}

/// Whether `part` is a sub-slice of `whole`.
fn within(whole: &[u8], part: &[u8]) -> bool {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    p >= w && p - w <= whole.len() && part.len() <= whole.len() - (p - w)
}

/// Runs every public function of `abi::elf` on `data` and checks that what
/// they accept stays inside the file and relocates without overflow.
fn check_all(data: &[u8], pie_base: u64, user_top: u64) -> Result<(), TestCaseError> {
    let len = data.len() as u64;
    let parsed = Elf::parse(data);
    let strict = Elf::parse_static(data);
    // parse_static is parse plus one refusal.
    match (&parsed, &strict) {
        (Err(a), Err(b)) => prop_assert_eq!(a, b),
        (Ok(e), Err(ElfError::Dynamic)) => prop_assert!(e.interpreter().is_some()),
        (Ok(e), Ok(_)) => prop_assert!(e.interpreter().is_none()),
        (p, s) => prop_assert!(false, "parse {:?} but parse_static {:?}", p, s),
    }
    let e = match parsed {
        Ok(e) => e,
        Err(err) => {
            prop_assert!(!err.to_string().is_empty());
            return Ok(());
        }
    };

    prop_assert!(std::ptr::eq(e.data(), data));
    prop_assert!(e.e_type == ET_EXEC || e.e_type == ET_DYN);
    prop_assert!(e.phentsize as usize >= PHDR_SIZE);
    let table = e.phentsize as u64 * e.phnum as u64;
    prop_assert!(e.phoff.checked_add(table).is_some_and(|end| end <= len));
    prop_assert_eq!(e.program_headers().count(), e.phnum as usize);
    prop_assert!(e.program_header(e.phnum).is_none());
    prop_assert!(e.program_header(u16::MAX).is_none() || e.phnum == u16::MAX);

    let mut loads = 0;
    for ph in e.load_segments() {
        loads += 1;
        let file_end = ph.p_offset.checked_add(ph.p_filesz);
        prop_assert!(file_end.is_some_and(|end| end <= len), "{:?}", ph);
        prop_assert!(ph.p_filesz <= ph.p_memsz, "{:?}", ph);
        prop_assert!(ph.p_vaddr.checked_add(ph.p_memsz).is_some(), "{:?}", ph);
        let seg = e.segment_data(&ph);
        prop_assert_eq!(seg.len() as u64, ph.p_filesz);
        prop_assert!(within(data, seg));
        let prot = elf::segment_prot(&ph);
        prop_assert!(prot & PROT_READ != 0 && prot & !(PROT_READ | PROT_WRITE | PROT_EXEC) == 0);
    }
    prop_assert!(loads > 0);
    if let Some(interp) = e.interpreter() {
        prop_assert!(within(data, interp));
        prop_assert!(!interp.contains(&0));
    }
    let (lo, hi) = e.load_bounds();
    prop_assert!(lo <= hi);
    let _ = e.phdr_vaddr();

    match elf::plan(&e, pie_base, user_top) {
        Ok(p) => check_plan(&e, &p, pie_base, user_top),
        Err(err) => {
            prop_assert_eq!(err, ElfError::BadSegment);
            Ok(())
        }
    }
}

/// What a caller of `plan` relies on: every segment, relocated, lies in
/// `[start, end)` (the loaders compute `p_vaddr + bias` and
/// `vaddr - start` without checks), the entry relocates without overflow,
/// and AT_PHDR, when given, points at a table inside the image.
fn check_plan(
    e: &Elf<'_>,
    p: &LoadPlan,
    pie_base: u64,
    user_top: u64,
) -> Result<(), TestCaseError> {
    prop_assert!(
        0x1000 <= p.start && p.start <= p.end && p.end <= user_top,
        "{:?}",
        p
    );
    prop_assert_eq!(p.start & 0xfff, 0);
    prop_assert_eq!(p.end & 0xfff, 0);
    if e.e_type == ET_EXEC {
        prop_assert_eq!(p.bias, 0);
    } else {
        prop_assert_eq!(p.start, pie_base);
    }
    for ph in e.load_segments() {
        let at = ph.p_vaddr.checked_add(p.bias);
        let end = at.and_then(|a| a.checked_add(ph.p_memsz));
        prop_assert!(at.is_some_and(|a| a >= p.start), "{:?} {:?}", ph, p);
        prop_assert!(end.is_some_and(|x| x <= p.end), "{:?} {:?}", ph, p);
    }
    prop_assert_eq!(Some(p.entry), e.entry.checked_add(p.bias));
    let table = e.phentsize as u64 * e.phnum as u64;
    prop_assert!(
        p.phdr == 0 || (p.start <= p.phdr && p.phdr.checked_add(table).is_some_and(|t| t <= p.end)),
        "AT_PHDR {:#x} (+{:#x}) outside the image [{:#x}, {:#x})",
        p.phdr,
        table,
        p.start,
        p.end
    );
    prop_assert_eq!(p.phnum, e.phnum as u64);
    Ok(())
}

fn config() -> Config {
    Config {
        // PROPTEST_CASES=N runs a longer search locally.
        cases: std::env::var_os("PROPTEST_CASES").map_or(CASES, |_| Config::default().cases),
        // Failures print their minimal input; nothing is written into the
        // source tree.
        failure_persistence: None,
        ..Config::default()
    }
}

#[test]
fn the_unmutated_samples_parse_and_the_static_ones_plan() {
    for s in samples() {
        let e = Elf::parse(&s.bytes).unwrap_or_else(|err| panic!("{}: {err}", s.name));
        if s.is_static {
            assert!(Elf::parse_static(&s.bytes).is_ok(), "{}", s.name);
            let p = elf::plan(&e, USER_PIE_BASE, PLAN_TOP)
                .unwrap_or_else(|err| panic!("{}: {err}", s.name));
            assert_ne!(p.phdr, 0, "{}: the program headers are loaded", s.name);
        } else {
            assert!(e.interpreter().is_some(), "{}", s.name);
        }
        check_all(&s.bytes, USER_PIE_BASE, PLAN_TOP).unwrap_or_else(|f| panic!("{}: {f}", s.name));
    }
}

#[test]
fn a_dynamic_system_binary_is_told_apart_and_planned() {
    let Some(s) = samples().iter().find(|s| !s.is_static) else {
        eprintln!("elf_props: SKIPPING the dynamic-binary check: no /bin/true");
        return;
    };
    assert_eq!(Elf::parse_static(&s.bytes).unwrap_err(), ElfError::Dynamic);
    let e = Elf::parse(&s.bytes).unwrap();
    assert!(elf::plan(&e, USER_PIE_BASE, PLAN_TOP).is_ok());
    assert!(e.interpreter().unwrap().starts_with(b"/"));
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn header_byte_flips_never_panic_the_reader_or_the_planner(
        which in any::<Index>(),
        flips in prop::collection::vec(flip(), 1..8),
        (base, top) in plan_args(),
    ) {
        let Some(s) = pick(which, false) else { return Ok(()) };
        check_all(&mutate(&s.bytes, &flips), base, top)?;
    }

    #[test]
    fn truncated_binaries_are_refused_or_stay_within_what_is_left(
        which in any::<Index>(),
        cut in truncate(),
        (base, top) in plan_args(),
    ) {
        let Some(s) = pick(which, false) else { return Ok(()) };
        check_all(&mutate(&s.bytes, &[cut]), base, top)?;
    }

    #[test]
    fn extreme_header_fields_never_escape_the_file_or_overflow_addresses(
        which in any::<Index>(),
        sets in prop::collection::vec(set(), 1..5),
        (base, top) in plan_args(),
    ) {
        let Some(s) = pick(which, false) else { return Ok(()) };
        check_all(&mutate(&s.bytes, &sets), base, top)?;
    }

    #[test]
    fn mutated_static_binaries_never_panic_the_planner(
        which in any::<Index>(),
        muts in prop::collection::vec(prop_oneof![3 => flip(), 3 => set(), 1 => truncate()], 1..10),
        (base, top) in plan_args(),
    ) {
        let Some(s) = pick(which, true) else { return Ok(()) };
        check_all(&mutate(&s.bytes, &muts), base, top)?;
    }
}
