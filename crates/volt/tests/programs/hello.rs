// A Rust std program: collections, formatting, env, stderr, an exit status.
use std::collections::{BTreeMap, HashMap};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut counts: HashMap<char, usize> = HashMap::new();
    for c in args.join(" ").chars() {
        *counts.entry(c).or_default() += 1;
    }
    let sorted: BTreeMap<_, _> = counts.into_iter().collect();
    println!("args: {args:?}");
    println!("letters: {sorted:?}");
    println!("GREETING={:?}", std::env::var("GREETING").ok());
    let v: Vec<u64> = (1..=100_000).collect();
    println!("sum={} float={:.4}", v.iter().sum::<u64>(), (2.0f64).sqrt());
    let boxed: Vec<Box<[u8]>> = (0..100).map(|i| vec![i as u8; 4096 * (i % 7 + 1)].into_boxed_slice()).collect();
    println!("allocated {} bytes", boxed.iter().map(|b| b.len()).sum::<usize>());
    eprintln!("a line on stderr");
    let code = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
    std::process::exit(code);
}
