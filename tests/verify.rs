//! `orctool verify` on objects the real objtool wrote ORC for (tests/fixtures/verify, made by
//! its `record` script), as written and with the table broken by hand.

mod common;

use std::path::{Path, PathBuf};

use common::{Scratch, orctool};
use object::read::elf::{ElfFile64, Rela as _, SectionHeader as _};
use object::{LittleEndian as LE, Object as _, ObjectSection as _};

fn fixture(name: &str) -> PathBuf {
    common::fixtures().join("verify").join(name)
}

/// Runs `orctool verify` on `path`: (exit code, stdout).
fn verify(path: &Path) -> (i32, String) {
    let out = orctool(&["verify", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "stderr: {stderr}");
    (out.status.code().unwrap_or(-1), stdout)
}

/// The file offset of the `.orc_unwind` entry whose `.orc_unwind_ip` relocation names
/// `.text + text_off`.
fn entry_offset(data: &[u8], text_off: u64) -> usize {
    let elf = ElfFile64::<LE>::parse(data).unwrap();
    let orc = elf.section_by_name(".orc_unwind").unwrap();
    let (orc_off, _) = orc.file_range().unwrap();
    let rela = elf.section_by_name(".rela.orc_unwind_ip").unwrap();
    let header = rela.elf_section_header();
    let (relas, _) = header.rela(LE, data).unwrap().unwrap();
    let idx = relas
        .iter()
        .position(|r| r.r_addend(LE) as u64 == text_off)
        .unwrap_or_else(|| panic!("no ORC entry at .text+{text_off:x}"));
    let i = relas[idx].r_offset(LE) as usize / 4;
    orc_off as usize + 6 * i
}

/// A copy of fixture `name` in `dir` with `edit` applied to the entry at `.text+text_off`.
fn broken(dir: &Scratch, name: &str, text_off: u64, edit: impl Fn(&mut [u8])) -> PathBuf {
    let mut data = std::fs::read(fixture(name)).unwrap();
    let at = entry_offset(&data, text_off);
    edit(&mut data[at..at + 6]);
    let out = dir.path(name);
    std::fs::write(&out, data).unwrap();
    out
}

#[test]
fn objtool_tables_verify_right() {
    for name in ["frames.o", "frames61.o"] {
        let (code, out) = verify(&fixture(name));
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(", wrong 0, "), "{out}");
        // h_nonstd (STACK_FRAME_NON_STANDARD): undefined on purpose, not wrong
        assert!(out.contains("(non-standard function 4)"), "{out}");
    }
    let (_, out) = verify(&fixture("frames.o"));
    assert!(
        out.ends_with("right 39, wrong 0, unprovable 4 (non-standard function 4)\n"),
        "{out}"
    );
}

#[test]
fn alternative_unwind_hazard_is_wrong() {
    // objtool 6.12 is silent on it and wrote its table; the return address of `call ext`
    // (f1+0x6) is looked up at f1+0x5, where the replacement's sp+24 entry lies.
    let (code, out) = verify(&fixture("alt_unwind_call.o"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "wrong: f1+0x1 [0x1]: return address − 1: wrong sp offset: expected type:call sp:sp+16 bp:(und), table has type:call sp:sp+24"
        ),
        "{out}"
    );
    assert!(out.contains("wrong 1,"), "{out}");
}

#[test]
fn dwarf_comparison_classifies_an_untold_push() {
    // .eh_frame relocated against .text; `pushf` is not in the CFI: one entry disagrees, and
    // the machine says ORC is right there
    let f = fixture("dwarf.o");
    let out = orctool(&["verify", "-v", "--dwarf", f.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains(
            "dwarf: d1+0x2 [0x2]: DWARF blind: DWARF cfa r7+16 bp same, ORC type:call sp:sp+24"
        ),
        "{out}"
    );
    assert!(
        out.contains("dwarf: .eh_frame: entries 5, both speak 5, agree 4 (80.00 %), disagree 1 (alternative 0, DWARF blind 1, ORC wrong 0,"),
        "{out}"
    );
}

#[test]
fn return_buffer_stuffing_is_a_push_not_a_frame() {
    // `call 2f; int3; 2: add $8,%rsp` in a loop: 2: is reached with the pushed return
    // address (sp+24, as the table says), the int3 by no path
    let (code, out) = verify(&fixture("rsb.o"));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.ends_with("checked 9, right 8, wrong 0, unprovable 1 (unreached 1)\n"),
        "{out}"
    );
}

#[test]
fn frame_pointer_reloaded_is_wrong() {
    // docs/findings.md: objtool keeps `sp:bp+16` after rbp is loaded with another value
    let (code, out) = verify(&fixture("guest_rbp.o"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("wrong: vcpu_run+0x9 [0x9]: CFA from rbp, which holds no frame: expected type:call sp:sp+24 bp:prevsp-16, table has type:call sp:bp+16 bp:prevsp-16"),
        "{out}"
    );
    assert!(out.contains("right 5, wrong 4, unprovable 0"), "{out}");
}

#[test]
fn changed_sp_offset_is_wrong() {
    let dir = Scratch::new("verify-sp");
    // g_noframe+0x3 (.text+0x2e): sp+24 → sp+32
    let f = broken(&dir, "frames.o", 0x2e, |e| e[0] += 8);
    let (code, out) = verify(&f);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("wrong: g_noframe+0x3 [0x2e]: wrong sp offset: expected type:call sp:sp+24 bp:prevsp-24, table has type:call sp:sp+32 bp:prevsp-24"),
        "{out}"
    );
    // the entry also covers the next instruction (until `sub $8,%rsp`)
    assert!(out.contains("wrong 2,"), "{out}");
}

#[test]
fn changed_bp_rule_is_wrong() {
    let dir = Scratch::new("verify-bp");
    // g_noframe+0xa (.text+0x35, `call ext`): bp:prevsp-24 → bp:(und), while rbp holds the
    // argument
    let f = broken(&dir, "frames.o", 0x35, |e| e[4] &= 0x0f);
    let (code, out) = verify(&f);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("wrong: g_noframe+0xa [0x35]: wrong rule for the caller's rbp"),
        "{out}"
    );
    // the entry also covers `add $8,%rsp` after the call
    assert!(out.contains("wrong: g_noframe+0xf [0x3a]"), "{out}");
    assert!(out.contains("wrong 2,"), "{out}");
}

#[test]
fn entry_removed_after_an_alternative_is_wrong() {
    let dir = Scratch::new("verify-removed");
    // k_alt: the entry at .text+0x4d restores sp+16 after the replacement's `push %rdi`
    // (.text+0x4c: sp+24). Giving it the previous entry's bytes removes it for the lookup.
    let mut data = std::fs::read(fixture("frames.o")).unwrap();
    let prev = entry_offset(&data, 0x4c);
    let at = entry_offset(&data, 0x4d);
    let copy: Vec<u8> = data[prev..prev + 6].to_vec();
    data[at..at + 6].copy_from_slice(&copy);
    let f = dir.path("frames.o");
    std::fs::write(&f, data).unwrap();
    let (code, out) = verify(&f);
    assert_eq!(code, 1, "{out}");
    // the original's second mov (k_alt+0x4), the replacement's pop's successor and the
    // mov after it (alternative 1), and the `pop %rbx` after the site
    assert!(
        out.contains("wrong: k_alt+0x4 [0x4e]: wrong sp offset"),
        "{out}"
    );
    assert!(
        out.contains("wrong: k_alt+0x7 [0x51]: wrong sp offset"),
        "{out}"
    );
    assert!(out.contains("(alternative 1)"), "{out}");
}

#[test]
fn undefined_entry_in_reachable_code_is_wrong() {
    let dir = Scratch::new("verify-undef");
    // f_frame+0x1 (.text+0x1): the entry after `push %rbp` made type:(und)
    let f = broken(&dir, "frames.o", 0x1, |e| e.fill(0));
    let (code, out) = verify(&f);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("wrong: f_frame+0x1 [0x1]: undefined entry in reachable code"),
        "{out}"
    );
}

#[test]
fn walk_given_up_leaves_reachable_code_undefined() {
    // docs/findings.md 3 (relocs_32.o): objtool gave up f at "falls through to next
    // function" (`die` returns for all it knows); what it had not reached is undefined
    let (code, out) = verify(&fixture("noreturn_abort.o"));
    assert_eq!(code, 1, "{out}");
    for at in ["f+0x6 [0x6]", "f+0x9 [0x9]", "f+0xa [0xa]", "f+0x10 [0x10]"] {
        assert!(
            out.contains(&format!("wrong: {at}: undefined entry in reachable code")),
            "{at}: {out}"
        );
    }
    // the padding after the first `call die` runs only if `die` returns
    assert!(
        out.contains("right 8, wrong 4, unprovable 1 (padding after a call that may not return 1)"),
        "{out}"
    );
}

#[test]
fn undefined_padding_reached_past_a_branch_is_wrong() {
    let dir = Scratch::new("verify-pad");
    // f_frame+0x4..0x25 undefined, the `nopl` at +0x18 included: it follows `je` (and,
    // earlier on its paths, calls), not a call directly, so it is no dead padding
    let f = broken(&dir, "frames.o", 0x4, |e| e.fill(0));
    let (code, out) = verify(&f);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("wrong: f_frame+0x18 [0x18]: undefined entry in reachable code"),
        "{out}"
    );
    assert!(!out.contains("padding after a call"), "{out}");
}

#[test]
fn abi_6_1_undefined_and_end_entries_are_wrong() {
    let dir = Scratch::new("verify-61");
    // g_noframe+0x3 in the 6.1 object (.text+0x29, after `push %rbp`): sp_reg
    // UNDEFINED without `end` is 6.1's undefined entry; with `end` it ends the stack
    let f = broken(&dir, "frames61.o", 0x29, |e| e[4] &= 0xf0);
    let (code, out) = verify(&f);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("g_noframe+0x3 [0x29]: undefined entry"),
        "{out}"
    );
    let f = broken(&dir, "frames61.o", 0x29, |e| {
        e[4] &= 0xf0;
        e[5] |= 4;
    });
    let (code, out) = verify(&f);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("g_noframe+0x3 [0x29]: end-of-stack entry"),
        "{out}"
    );
}

/// frames.o linked at the kernel's base with a `.orc_lookup` of 8 blocks and `_stext` /
/// `_etext` around its text, as vmlinux has them: the lookup goes through the blocks.
fn linked_frames(dir: &Scratch) -> PathBuf {
    let lookup = common::assemble_text(
        dir,
        "lookup",
        ".section .orc_lookup,\"aw\"\n.globl orc_lookup\norc_lookup: .fill 8,4,0\n.globl orc_lookup_end\norc_lookup_end:\n",
    );
    let out = dir.path("vmlinux");
    let status = std::process::Command::new("ld")
        .args(["-Ttext=0xffffffff81000000", "-e", "0"])
        .args(["--defsym", "_stext=0xffffffff81000000"])
        .args(["--defsym", "_etext=0xffffffff81000100"])
        .args([
            "--defsym",
            "ext=0xffffffff81000200",
            "--defsym",
            "ext2=0xffffffff81000200",
        ])
        .args(["--defsym", "key=0", "-o"])
        .arg(&out)
        .arg(fixture("frames.o"))
        .arg(lookup)
        .status()
        .expect("run ld");
    assert!(status.success());
    out
}

#[test]
fn linked_image_verifies_through_orc_lookup() {
    let dir = Scratch::new("verify-linked");
    let image = linked_frames(&dir);
    let (code, out) = verify(&image);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.ends_with("checked 43, right 39, wrong 0, unprovable 4 (non-standard function 4)\n"),
        "{out}"
    );
    // g_noframe+0x3: sp+24 → sp+32 in the linked table (entry i at sh_addr + 4i + value)
    let mut data = std::fs::read(&image).unwrap();
    let elf = ElfFile64::<LE>::parse(&*data).unwrap();
    let ips = elf.section_by_name(".orc_unwind_ip").unwrap();
    let (ips_off, ips_len) = ips.file_range().unwrap();
    let (orc_off, _) = elf
        .section_by_name(".orc_unwind")
        .unwrap()
        .file_range()
        .unwrap();
    let ips_addr = ips.address();
    let i = (0..ips_len as usize / 4)
        .find(|&i| {
            let at = ips_off as usize + 4 * i;
            let v = i32::from_le_bytes(data[at..at + 4].try_into().unwrap());
            (ips_addr + 4 * i as u64).wrapping_add(v as i64 as u64) == 0xffffffff8100002e
        })
        .expect("entry at g_noframe+0x3");
    data[orc_off as usize + 6 * i] += 8;
    std::fs::write(&image, data).unwrap();
    let (code, out) = verify(&image);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("wrong: g_noframe+0x3 [0xffffffff8100002e]: wrong sp offset"),
        "{out}"
    );
}

#[test]
fn file_without_orc_is_not_verified() {
    let dir = Scratch::new("verify-noorc");
    let obj = common::assemble_text(
        &dir,
        "plain",
        ".text\n.type f,@function\nf: ret\n.size f, .-f\n",
    );
    let out = orctool(&["verify", obj.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("plain.o: no ORC table: not verified\n")
    );
}
