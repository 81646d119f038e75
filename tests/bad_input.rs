//! Hostile and broken inputs: each gets one line `orctool: FILE: <what is wrong>` on stderr,
//! nothing on stdout, and exit status 1 — never a panic.

mod common;

use std::path::Path;

use common::*;
use object::read::elf::SectionHeader as _;
use orctool::elf::{LE, Object, input};

/// The decompressed bytes of a real 6.12 module that has ORC.
fn module() -> Vec<u8> {
    let packed = std::fs::read(fixtures().join("dump/xt_rateest-6.12.ko.xz")).unwrap();
    input::decompress(input::Compression::Xz, &packed).unwrap()
}

/// Runs `orctool dump` on `bytes` and returns its one error line, with the path as `FILE`.
fn dump_error(dir: &Scratch, name: &str, bytes: &[u8]) -> String {
    let path = dir.path(name);
    std::fs::write(&path, bytes).unwrap();
    dump_error_at(&path)
}

fn dump_error_at(path: &Path) -> String {
    let out = orctool(&["dump", path.to_str().unwrap()]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    stderr.trim_end().replace(path.to_str().unwrap(), "FILE")
}

fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// File offset of the section header called `name`.
fn shdr_offset(bytes: &[u8], name: &[u8]) -> usize {
    let obj = Object::parse(bytes).unwrap();
    let id = obj.section_by_name(name).unwrap();
    let shoff = obj.header().e_shoff.get(LE) as usize;
    shoff + id.0 as usize * 64
}

#[test]
fn not_elf() {
    let d = Scratch::new("notelf");
    insta::assert_snapshot!(dump_error(&d, "a.ko", b"hello, world\n"), @"orctool: FILE: not an ELF file");
    insta::assert_snapshot!(dump_error(&d, "empty.o", b""), @"orctool: FILE: not an ELF file");
}

#[test]
fn missing_file() {
    let d = Scratch::new("missing");
    insta::assert_snapshot!(dump_error_at(&d.path("nope.o")), @"orctool: FILE: No such file or directory");
}

#[test]
fn elf32() {
    let d = Scratch::new("elf32");
    let src = d.path("a.S");
    std::fs::write(&src, ".text\nf: ret\n").unwrap();
    let obj = d.path("a.o");
    let st = std::process::Command::new("as")
        .args(["--32", "-o"])
        .arg(&obj)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    insta::assert_snapshot!(dump_error_at(&obj), @"orctool: FILE: not a 64-bit ELF file (ELF class 1)");
}

#[test]
fn wrong_machine_and_endianness() {
    let d = Scratch::new("machine");
    let mut b = module();
    b[0x12..0x14].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    insta::assert_snapshot!(dump_error(&d, "arm.ko", &b), @"orctool: FILE: not an x86-64 object (e_machine 183)");
    let mut b = module();
    b[5] = 2; // ELFDATA2MSB
    insta::assert_snapshot!(dump_error(&d, "be.ko", &b), @"orctool: FILE: not a little-endian ELF file (ELF data encoding 2)");
}

#[test]
fn truncated() {
    let d = Scratch::new("trunc");
    let b = module();
    insta::assert_snapshot!(dump_error(&d, "hdr.ko", &b[..30]), @"orctool: FILE: truncated ELF header (30 bytes)");
    // The section header table sits at the end of the file.
    insta::assert_snapshot!(dump_error(&d, "half.ko", &b[..b.len() / 2]), @"orctool: FILE: truncated: the section header table ends at byte 14184 but the file has 7243 bytes");
    let packed = std::fs::read(fixtures().join("dump/xt_rateest-6.12.ko.xz")).unwrap();
    insta::assert_snapshot!(dump_error(&d, "cut.ko.xz", &packed[..packed.len() / 2]), @"orctool: FILE: truncated xz data: the compressed stream ends early");
}

#[test]
fn section_headers_outside_the_file() {
    let d = Scratch::new("shoff");
    let mut b = module();
    put_u64(&mut b, 0x28, 0xffff_ffff_0000); // e_shoff
    insta::assert_snapshot!(dump_error(&d, "shoff.ko", &b), @"orctool: FILE: malformed ELF: the section header table (at byte 281474976645120) lies outside the file (14487 bytes)");
    let mut b = module();
    let sh = shdr_offset(&b, b".orc_unwind");
    put_u64(&mut b, sh + 0x18, 0x7fff_ffff_ffff); // sh_offset
    insta::assert_snapshot!(dump_error(&d, "data.ko", &b), @"orctool: FILE: malformed ELF: section 17 (.orc_unwind) data lies outside the file");
}

#[test]
fn symbol_index_out_of_range() {
    let d = Scratch::new("symidx");
    let mut b = module();
    let obj = Object::parse(&b).unwrap();
    let rela = obj
        .section(obj.section_by_name(b".rela.orc_unwind_ip").unwrap())
        .unwrap();
    let first = rela.sh_offset(LE) as usize + 24 * 3; // record 3's r_info
    put_u64(&mut b, first + 8, (0x00ff_ffffu64 << 32) | 2);
    insta::assert_snapshot!(dump_error(&d, "sym.ko", &b), @"orctool: FILE: malformed ELF: relocation symbol index 16777215 out of range (51 symbols)");
}

/// ORC sections whose sizes do not fit each other, made with the assembler.
#[test]
fn inconsistent_orc_sections() {
    let d = Scratch::new("orcsize");
    let head = ".text\nf: ret\n.section .orc_unwind,\"a\"\n";
    let bad_size = assemble_text(
        &d,
        "size",
        &format!("{head}.byte 1,2,3,4,5,6,7\n.section .orc_unwind_ip,\"a\"\n.long .text - .\n"),
    );
    insta::assert_snapshot!(dump_error_at(&bad_size), @"orctool: FILE: .orc_unwind size 0x7 is not a multiple of 6");
    let count = assemble_text(
        &d,
        "count",
        &format!(
            "{head}.short 8,0\n.byte 5,2\n.section .orc_unwind_ip,\"a\"\n.long .text - .\n.long .text + 1 - .\n"
        ),
    );
    insta::assert_snapshot!(dump_error_at(&count), @"orctool: FILE: .orc_unwind has 1 entries but .orc_unwind_ip has 2");
    let relocs = assemble_text(
        &d,
        "relocs",
        &format!(
            "{head}.short 8,0,8,0\n.byte 5,2,5,2\n.section .orc_unwind_ip,\"a\"\n.long .text - .\n.long 0\n"
        ),
    );
    insta::assert_snapshot!(dump_error_at(&relocs), @"orctool: FILE: .rela.orc_unwind_ip has 1 relocations for 2 ORC entries");
}

/// The remaining files of a run are still dumped after a bad one; the status is 1.
#[test]
fn bad_file_among_good_ones() {
    let d = Scratch::new("mixed");
    let bad = d.path("bad.o");
    std::fs::write(&bad, b"junk").unwrap();
    let good = fixtures().join("dump/nf_dup_ipv6-6.12.ko.xz");
    let out = orctool(&["dump", bad.to_str().unwrap(), good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(".text+0:type:call sp:sp+8 bp:(und) signal:0"),
        "{text}"
    );
}
