//! `volt bench` (filled in below).
use anyhow::Result;
use clap::Args;

#[derive(Args, Debug)]
pub struct BenchArgs {}

pub fn bench(_a: BenchArgs) -> Result<i32> {
    anyhow::bail!("not yet")
}
