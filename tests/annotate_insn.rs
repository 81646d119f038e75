//! Linux 6.13 and later replace the per-annotation `.discard.*` sections of 6.12 with one
//! `.discard.annotate_insn` section of (instruction, type) pairs. objtool 6.12 ignores it,
//! so these tests check that orctool reads each annotation the same way in both forms:
//! the same object written with the old section and with `.discard.annotate_insn` gives
//! the same warnings and the same ORC, and without the annotation the difference shows.

mod common;

use common::*;

/// `orctool check --orc --print-orc` of an assembled source: (stderr, stdout).
fn check(dir: &Scratch, name: &str, src: &str) -> (String, String) {
    let obj = assemble_text(dir, name, src);
    let out = orctool(&["check", "--orc", "--print-orc", obj.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).replace(obj.to_str().unwrap(), "FILE");
    (stderr, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn annotate_insn(label: &str, ty: u32) -> String {
    format!(
        ".pushsection .discard.annotate_insn,\"M\",@progbits,8\n.long {label} - .\n.long {ty}\n.popsection\n"
    )
}

/// A WARN()-style `ud2` followed by reachable code.
const REACHABLE: &str = "
	.text
	.globl f
	.type f,@function
f:
	push %rbx
	test %rdi,%rdi
	jz 2f
	ud2
1:	xor %eax, %eax
2:	pop %rbx
	ret
	.size f, .-f
";

#[test]
fn reachable() {
    let d = Scratch::new("annot-reachable");
    let legacy = format!("{REACHABLE}.pushsection .discard.reachable\n.long 1b\n.popsection\n");
    let new = format!("{REACHABLE}{}", annotate_insn("1b", 8));
    let (w0, _) = check(&d, "none", REACHABLE);
    assert!(w0.contains("unreachable instruction"), "{w0}");
    let a = check(&d, "legacy", &legacy);
    let b = check(&d, "new", &new);
    assert!(a.0.is_empty(), "{}", a.0);
    assert_eq!(a, b);
}

/// An annotated intra-function call (a retpoline-style `call 1f; ...; 1: add $8,%rsp`).
const INTRA_CALL: &str = "
	.text
	.globl f
	.type f,@function
f:
0:	call 1f
	int3
1:	add $8, %rsp
	ret
	.size f, .-f
";

#[test]
fn intra_function_call() {
    let d = Scratch::new("annot-ifc");
    let legacy =
        format!("{INTRA_CALL}.pushsection .discard.intra_function_calls\n.long 0b\n.popsection\n");
    let new = format!("{INTRA_CALL}{}", annotate_insn("0b", 7));
    let (w0, _) = check(&d, "none", INTRA_CALL);
    assert!(w0.contains("unannotated intra-function call"), "{w0}");
    let a = check(&d, "legacy", &legacy);
    let b = check(&d, "new", &new);
    assert!(a.0.is_empty(), "{}", a.0);
    assert!(a.1.contains("sp:sp+16"), "{}", a.1);
    assert_eq!(a, b);
}

/// ANNOTATE_IGNORE_ALTERNATIVE on a site whose replacement would conflict.
const IGNORE_ALTS: &str = "
	.text
	.globl f
	.type f,@function
f:
0:	push %rax
	nop
1:
	pop %rax
	ret
	.size f, .-f
	.pushsection .altinstructions,\"a\"
	.long 0b - .
	.long 3f - .
	.4byte 100
	.byte 1b-0b
	.byte 4f-3f
	.popsection
	.pushsection .altinstr_replacement,\"ax\"
3:	nop
	push %rax
4:
	.popsection
";

#[test]
fn ignore_alts() {
    let d = Scratch::new("annot-ignore");
    let legacy = format!("{IGNORE_ALTS}.pushsection .discard.ignore_alts\n.long 0b\n.popsection\n");
    let new = format!("{IGNORE_ALTS}{}", annotate_insn("0b", 6));
    let (w0, _) = check(&d, "none", IGNORE_ALTS);
    assert!(w0.contains("stack layout conflict in alternatives"), "{w0}");
    let a = check(&d, "legacy", &legacy);
    let b = check(&d, "new", &new);
    assert!(a.0.is_empty(), "{}", a.0);
    assert_eq!(a, b);
}
