//! Helpers shared by the integration tests: run the binary, assemble `.S` files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs the `orctool` binary with `args`.
pub fn orctool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orctool"))
        .args(args)
        .output()
        .expect("run orctool")
}

/// The standard output of a command that must have succeeded (else the test fails with
/// its standard error).
pub fn stdout_ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A scratch directory removed at drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("orctool-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Assembles `src` (GNU as syntax, x86-64) into `out`.
/// Assembles `src` into `out`; `.include` files are found next to `src` (the rule fixtures
/// share tests/fixtures/cfi/kernel-macros.inc).
pub fn assemble(src: &Path, out: &Path) {
    let dir = src.parent().unwrap_or(Path::new("."));
    run(Command::new("as")
        .arg("-I")
        .arg(dir)
        .arg("-o")
        .arg(out)
        .arg(src));
}

/// Assembles assembly text into `dir/name.o`.
pub fn assemble_text(dir: &Scratch, name: &str, text: &str) -> PathBuf {
    let src = dir.path(&format!("{name}.S"));
    std::fs::write(&src, text).expect("write .S");
    let obj = dir.path(&format!("{name}.o"));
    assemble(&src, &obj);
    obj
}

/// Links `obj` into an executable image with its text at the kernel's usual address.
pub fn link_at_kernel_base(obj: &Path, out: &Path) {
    run(Command::new("ld")
        .arg("-Ttext=0xffffffff81000000")
        .args(["-e", "0", "-o"])
        .arg(out)
        .arg(obj));
}

/// The `.S` fixtures of `tests/fixtures/SET`, sorted by name: each one's name and the
/// objtool arguments of its first line (`# args: …`).
pub fn fixture_cases(set: &str) -> Vec<(String, Vec<String>)> {
    let dir = fixtures().join(set);
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("S") {
            continue;
        }
        let name = p.file_stem().unwrap().to_str().unwrap().to_owned();
        let src = std::fs::read_to_string(&p).unwrap();
        let first = src.lines().next().unwrap_or("");
        let args = first
            .strip_prefix("# args:")
            .unwrap_or_else(|| panic!("{name}.S: first line must be '# args: …'"))
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        out.push((name, args));
    }
    out.sort();
    out
}

/// A large object (`vmlinux.o`-like in shape: code, then tens of MB of non-code data, then
/// the symbol table) with one row per 16 bytes of code. With `shifted`, the large section
/// starts 64 bytes later than libelf would put it, so the writer moves nearly every byte
/// (as for a `vmlinux.o` that `ld -r` laid out). With `relocs`, the large section has
/// relocations (MBs of them, several chunks of the writer) against the global `f`, which
/// the section symbol created for `.text` moves: they are renumbered as they are written.
pub fn large_object(shifted: bool, relocs: bool) -> (Vec<u8>, Vec<orctool::write::OrcRow>) {
    use object::read::elf::SectionHeader as _;
    use object::write;
    let mut obj = write::Object::new(
        object::BinaryFormat::Elf,
        object::Architecture::X86_64,
        object::Endianness::Little,
    );
    let text = obj.section_id(write::StandardSection::Text);
    let mut code = vec![0x90u8; 1 << 16];
    *code.last_mut().unwrap() = 0xc3;
    obj.append_section_data(text, &code, 16);
    let f = obj.add_symbol(write::Symbol {
        name: b"f".to_vec(),
        value: 0,
        size: code.len() as u64,
        kind: object::SymbolKind::Text,
        scope: object::SymbolScope::Linkage,
        weak: false,
        section: write::SymbolSection::Section(text),
        flags: object::SymbolFlags::None,
    });
    let debug = obj.add_section(
        Vec::new(),
        b".debug_info".to_vec(),
        object::SectionKind::Debug,
    );
    let mut big = vec![0u8; 48 << 20];
    let mut x = 0x1234_5678_9abc_def0u64;
    for chunk in big.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    obj.append_section_data(debug, &big, 8);
    if relocs {
        // 2.6 MB of records, every 5th against f
        let local = obj.section_symbol(debug);
        for i in 0..110_000u64 {
            obj.add_relocation(
                debug,
                write::Relocation {
                    offset: 8 * i,
                    symbol: if i % 5 == 0 { f } else { local },
                    addend: i as i64,
                    flags: object::RelocationFlags::Elf {
                        r_type: object::elf::R_X86_64_64,
                    },
                },
            )
            .unwrap();
        }
    }
    let mut bytes = obj.write().unwrap();
    let parsed = orctool::elf::Object::parse(&bytes).unwrap();
    let text_id = parsed.section_by_name(b".text").unwrap();
    let rows: Vec<orctool::write::OrcRow> = (0..code.len() as u64 / 16)
        .map(|i| orctool::write::OrcRow {
            section: text_id,
            offset: i * 16,
            entry: [i as u8, 0, 8, 0, 0x15, 0],
        })
        .collect();
    if shifted {
        let debug_id = parsed.section_by_name(b".debug_info").unwrap();
        let at = parsed
            .section(debug_id)
            .unwrap()
            .sh_offset(object::LittleEndian);
        bytes = shift(&bytes, at, 64);
    }
    (bytes, rows)
}

/// `bytes` with `n` zero bytes inserted at `at` and the offsets after it moved.
pub fn shift(bytes: &[u8], at: u64, n: u64) -> Vec<u8> {
    let mut out = bytes[..at as usize].to_vec();
    out.extend(std::iter::repeat_n(0u8, n as usize));
    out.extend_from_slice(&bytes[at as usize..]);
    let shoff = u64::from_le_bytes(out[0x28..0x30].try_into().unwrap());
    let shoff = if shoff >= at { shoff + n } else { shoff };
    out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
    let count = u16::from_le_bytes([out[0x3c], out[0x3d]]) as u64;
    for i in 1..count {
        let h = (shoff + 64 * i) as usize;
        let off = u64::from_le_bytes(out[h + 24..h + 32].try_into().unwrap());
        if off >= at {
            out[h + 24..h + 32].copy_from_slice(&(off + n).to_le_bytes());
        }
    }
    out
}
