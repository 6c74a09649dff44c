// A Rust target: myapp::parse is called N times. Usage: rusttarget N
use std::hint::black_box;

#[inline(never)]
fn parse(s: &str) -> usize {
    black_box(s).len()
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
        eprintln!("usage: rusttarget N");
        std::process::exit(2)
    });
    let mut total = 0;
    for i in 0..n {
        total += parse(if i % 2 == 0 { "even" } else { "odd" });
    }
    println!("total={}", total);
}
