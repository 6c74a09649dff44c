// Target for the demangling tests: Rust functions in a crate named myapp.
use std::hint::black_box;

#[inline(never)]
fn parse(s: &str) -> usize {
    s.bytes().filter(|b| *b == b',').count() + 1
}

mod config {
    #[inline(never)]
    pub fn parse(s: &str) -> usize {
        s.len() * 2
    }
}

// Two instances of one generic function: under legacy mangling they
// demangle to the same path and differ only by their hash.
#[inline(never)]
fn ident<T: Copy + std::ops::Add<Output = T>>(x: T) -> T {
    black_box(x) + black_box(x)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let a = black_box(args[0].as_str());
    let n = parse(a) + config::parse(a) + ident(a.len() as u32) as usize + ident(a.len() as u64) as usize;
    std::process::exit((n & 1) as i32);
}
