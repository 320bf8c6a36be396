// Rust std: files under /tmp, directories, metadata, time and the environment.
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() {
    let tag = std::env::args().nth(1).unwrap_or_else(|| "x".into());
    let dir = format!("/tmp/optivolt-fsrust-{tag}");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(format!("{dir}/a/b")).unwrap();
    fs::write(format!("{dir}/a/one.txt"), b"one\n").unwrap();
    let mut f = fs::OpenOptions::new().create(true).append(true).open(format!("{dir}/a/one.txt")).unwrap();
    writeln!(f, "two").unwrap();
    drop(f);
    fs::rename(format!("{dir}/a/one.txt"), format!("{dir}/a/b/moved.txt")).unwrap();
    let text = fs::read_to_string(format!("{dir}/a/b/moved.txt")).unwrap();
    println!("moved: {text:?}");
    let mut f = fs::File::open(format!("{dir}/a/b/moved.txt")).unwrap();
    f.seek(SeekFrom::Start(4)).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    println!("from 4: {s:?}");
    let m = fs::metadata(format!("{dir}/a/b/moved.txt")).unwrap();
    println!("len {} file {} dir {}", m.len(), m.is_file(), m.is_dir());
    let modified = m.modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    println!("mtime is recent: {}", now.abs_diff(modified) < 120);
    let mut names: Vec<_> = fs::read_dir(format!("{dir}/a")).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    println!("a contains {names:?}");
    println!("missing: {:?}", fs::read(format!("{dir}/nope")).map_err(|e| e.kind()));
    fs::remove_file(format!("{dir}/a/b/moved.txt")).unwrap();
    fs::remove_dir(format!("{dir}/a/b")).unwrap();
    fs::remove_dir_all(&dir).unwrap();
    println!("cleaned: {}", !std::path::Path::new(&dir).exists());
    let t = Instant::now();
    let mut x = 0u64;
    for i in 0..1_000_000u64 {
        x = x.wrapping_add(i * i);
    }
    let el = t.elapsed();
    println!("elapsed is sane: {} ({x})", el < Duration::from_secs(5));
    println!("cwd: {:?}", std::env::current_dir().map(|p| p.is_absolute()));
    println!("exe: {:?}", std::env::current_exe().map(|p| p.file_name().map(|n| n.to_owned())));
    println!("HOME={:?}", std::env::var("HOME"));
}
