# args: --orc
# Rule (orctool's own check, not objtool's): the merged per-byte table must unwind every
#       alternative correctly, including a return address inside a call of one
#       alternative.  The original is `call ext` (5 bytes) + one byte of padding; the
#       replacement is `push %rax; nop; nop; nop; pop %r8` (6 bytes).  Their states agree
#       where both have an instruction boundary (offset 0: sp+16 after `push %rbx`), and
#       neither has a boundary where the other does at offsets 1-5, so objtool 6.12 sees
#       no conflict and is silent.  But the merged table says sp+24 for group offsets 1..5 (the
#       replacement's pushed %rax).  While `ext` runs with the original code installed, the
#       unwinder looks the return address f1+0x6 up at f1+0x5, finds sp+24 instead of the
#       caller's true sp+16, and unwinds to a wrong frame.  orctool reports it (see
#       alt_unwind_call.orctool); objtool does not.
# Spec: orc-format-and-generation.md 2.4-2.5 (ip - 1 lookups), 6.5 (shared array).
# expect-silent
# expect-orc: .text+2:type:call sp:sp+24 bp:(und) signal:0
.macro ALTERNATIVE_ENTRY orig, repl, feat, olen, rlen
	.pushsection .altinstructions,"a"
	.long \orig - .
	.long \repl - .
	.4byte \feat
	.byte \olen
	.byte \rlen
	.popsection
.endm
	.text
	.globl f1
	.type f1,@function
f1:
	push %rbx
740:	call ext
	nop
741:
	pop %rbx
	ret
	.size f1, .-f1
	ALTERNATIVE_ENTRY 740b, 743f, 100, 741b-740b, 744f-743f
	.pushsection .altinstr_replacement,"ax"
743:	push %rax
	nop
	nop
	nop
	pop %r8
744:
	.popsection
