//! A mutation fuzzer for the loader, the dump, the check pipeline and the writer: real modules with bytes flipped, fields of
//! the ELF and section headers and relocation records overwritten with edge values, and the
//! file cut short. Nothing may panic.
//!
//! `cargo test --release --test fuzz` runs a short, fixed-seed round. The long run used
//! before releases (and in the foundation issue's note) is
//! `ORCTOOL_FUZZ_SECS=600 cargo test --release --test fuzz -- --ignored --nocapture`,
//! which prints the number of inputs tried. A panicking input is saved under
//! `target/fuzz-crashes/` and fails the test.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use common::*;
use orctool::cfg::symbols::Symbols;
use orctool::elf::{Object, input};
use orctool::orc::{self, OrcAbi};

/// Everything the library does with an object today.
fn exercise(bytes: &[u8]) {
    if let Some(c) = input::Compression::detect(bytes) {
        let _ = input::decompress(c, bytes);
        return;
    }
    let Ok(obj) = Object::parse(bytes) else {
        return;
    };
    let _ = orc::detect_abi(&obj);
    for abi in [OrcAbi::V6_12, OrcAbi::V6_1] {
        let mut out = String::new();
        let _ = orc::dump::dump(&obj, abi, &mut out);
    }
    // the whole check pipeline, and writing its result
    let opts = orctool::options::Options {
        orc: true,
        hack_jump_label: true,
        alt_unwind_check: true,
        ..Default::default()
    };
    if let Ok(out) = orctool::check::check(&obj, &opts, OrcAbi::V6_12) {
        if let Some(rows) = &out.orc {
            let _ = orctool::write::add_orc(
                &obj,
                rows,
                &orctool::write::WriteOptions {
                    force: true,
                    sync: false,
                },
            );
        }
    }
    // again with every parallel stage on (pieces, parallel indexes, owner stretches, call
    // effects, parallel walks): small inputs never take those paths by themselves
    let forced = orctool::options::Options {
        force_parallel: true,
        ..opts
    };
    let _ = orctool::check::check(&obj, &forced, OrcAbi::V6_12);
    if let Ok(index) = Symbols::read(&obj) {
        for sec in obj.section_ids() {
            for off in [0, 1, 0x40, u64::MAX] {
                let _ = index.func_containing(sec, off);
            }
        }
    }
}

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn edge_value(rng: &mut Rng, len: usize) -> u64 {
    const EDGES: [u64; 12] = [
        0,
        1,
        2,
        6,
        0x7f,
        0x80,
        0xff,
        0xffff,
        0x7fff_ffff,
        0xffff_ffff,
        u64::MAX,
        0x8000_0000_0000_0000,
    ];
    match rng.below(4) {
        0 => len as u64,
        1 => rng.below(len.max(1)) as u64,
        _ => EDGES[rng.below(EDGES.len())],
    }
}

fn write_at(b: &mut [u8], off: usize, v: u64, width: usize) {
    if let Some(dst) = b.get_mut(off..off + width) {
        dst.copy_from_slice(&v.to_le_bytes()[..width]);
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    let len = b.len();
    let width = [1, 2, 4, 8][rng.below(4)];
    let shoff = u64::from_le_bytes(
        b.get(0x28..0x30)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; 8]),
    ) as usize;
    let shnum = u16::from_le_bytes([
        b.get(0x3c).copied().unwrap_or(0),
        b.get(0x3d).copied().unwrap_or(0),
    ]) as usize;
    for _ in 0..1 + rng.below(3) {
        match rng.below(7) {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(len);
                    if let Some(x) = b.get_mut(i) {
                        *x ^= 1 << rng.below(8);
                    }
                }
            }
            1 => {
                let v = edge_value(rng, len);
                write_at(&mut b, rng.below(len), v, width);
            }
            2 | 3 => {
                // a field of a section header
                let sh = shoff + 64 * rng.below(shnum);
                let field = [0, 4, 8, 0x10, 0x18, 0x20, 0x28, 0x2c, 0x30, 0x38][rng.below(10)];
                let w = if field == 0 || field == 4 || field == 0x28 || field == 0x2c {
                    4
                } else {
                    8
                };
                let v = edge_value(rng, len);
                write_at(&mut b, sh + field, v, w);
            }
            4 => {
                // a field of the ELF header
                let (field, w) = [
                    (0x10, 2),
                    (0x12, 2),
                    (0x28, 8),
                    (0x3a, 2),
                    (0x3c, 2),
                    (0x3e, 2),
                ][rng.below(6)];
                let v = edge_value(rng, len);
                write_at(&mut b, field, v, w);
            }
            5 => {
                // somewhere in the last third, where relocations and symbols tend to be
                let off = len - len / 3 + rng.below(len / 3);
                let v = edge_value(rng, len);
                write_at(&mut b, off & !7, v, 8);
            }
            _ => b.truncate(rng.below(len)),
        }
    }
    b
}

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(fixtures().join("dump")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.to_string_lossy().into_owned();
        if name.contains(".ko") && !name.ends_with(".dump") {
            let data = input::open(&path).unwrap();
            seeds.push(data.to_vec());
            if name.ends_with(".xz") {
                seeds.push(std::fs::read(&path).unwrap()); // the compressed stream itself
            }
        }
    }
    let dir = Scratch::new("fuzz-seed");
    let obj = dir.path("allbits.o");
    assemble(&fixtures().join("dump/allbits.S"), &obj);
    seeds.push(std::fs::read(&obj).unwrap());
    seeds.sort();
    seeds
}

fn run(budget: Duration, max_inputs: u64, seed: u64) -> u64 {
    let seeds = seeds();
    let mut rng = Rng(seed);
    let start = Instant::now();
    let mut tried = 0u64;
    while tried < max_inputs && start.elapsed() < budget {
        let base = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, base);
        if catch_unwind(AssertUnwindSafe(|| exercise(&input))).is_err() {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-crashes");
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("crash-{seed:x}-{tried}"));
            std::fs::write(&path, &input).unwrap();
            panic!("input {tried} panicked; saved as {}", path.display());
        }
        tried += 1;
    }
    tried
}

#[test]
fn mutated_inputs_never_panic() {
    let tried = run(Duration::from_secs(60), 4000, 0x5eed);
    assert!(tried >= 1000, "only {tried} inputs");
}

#[test]
#[ignore = "long fuzz run: ORCTOOL_FUZZ_SECS=600 cargo test --release --test fuzz -- --ignored --nocapture"]
fn fuzz_long() {
    let secs = std::env::var("ORCTOOL_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let seed = std::env::var("ORCTOOL_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0bad_5eed);
    let tried = run(Duration::from_secs(secs), u64::MAX, seed);
    eprintln!("fuzz: {tried} inputs tried in {secs} s, no panic");
}
