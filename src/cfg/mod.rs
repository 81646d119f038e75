//! The program model: instructions with their owners, control flow (jump and call
//! destinations, alternatives, jump tables, dead ends), unwind hints and annotations.
//!
//! objtool: `decode_sections()` in check.c. The steps run in objtool's order, each one a
//! function of this module; a fatal error (objtool's `return -1`) stops the build and is
//! returned as [`AnalysisError`] after being reported.

mod annotations;
mod builder;
mod calls;
pub mod hints;
pub mod ibt;
mod jump_tables;
mod jumps;
pub mod noreturn;
mod owners;
mod program;
pub mod pv_ops;
pub mod relocs;
pub mod sites;
pub mod special;
pub mod symbols;

pub use program::{Alt, AltGroup, AltStream, AnalysisError, Attr, Packed, Program, Step};

use crate::decode::InsnTable;
use crate::elf::Object;
use crate::options::Options;
use crate::report::Findings;
use annotations::Phase;
use relocs::Relocs;
use symbols::Symbols;

/// Builds the model (objtool: `decode_sections()`), reporting into `findings`: objtool's
/// passes in its order, each named after its objtool counterpart. The model comes back
/// with `Err` too, as far as the build got: objtool writes the bytes it rewrote before a
/// fatal error (the jump-label and `--mnop` NOPs of `sites.rewrites`).
pub fn build<'a, 'data>(
    obj: &'a Object<'data>,
    opts: &'a Options,
    insns: InsnTable,
    syms: Symbols<'data>,
    relocs: Relocs<'data>,
    f: &mut Findings,
) -> (Program<'a, 'data>, Step) {
    let mut p = builder::Builder::new(obj, opts, insns, syms, relocs); // decode_instructions()
    let built = passes(&mut p, opts, f);
    (p.finish(), built)
}

/// The passes of [`build`] after `decode_instructions()`, up to the first fatal error.
fn passes(p: &mut builder::Builder<'_, '_>, opts: &Options, f: &mut Findings) -> Step {
    p.init_pv_ops(); // init_pv_ops()
    p.decode_pv_assignments(f)?; // arch_decode_instruction(): mov $func, pv_ops[N]
    p.assign_owners(f)?; // decode_instructions(): insn->sym
    p.fix_iret(); // arch_decode_instruction(): iret in a function
    p.add_ignores(f); // add_ignores()
    if opts.uaccess {
        p.syms.mark_uaccess_safe(); // add_uaccess_safe()
    }
    p.add_ignore_alternatives(f)?; // add_ignore_alternatives()
    p.read_noendbr_hints(f)?; // read_noendbr_hints()
    let annotations = p.read_annotate_insn(f)?; // read_annotate() (6.13+)
    p.annotate(&annotations, Phase::Early, f)?; // __annotate_early()
    if opts.stackval || opts.orc || opts.uaccess || opts.noinstr || opts.hack_jump_label {
        special::add_special_section_alts(p, f)?; // add_special_section_alts()
    }
    let calls = p.add_jump_destinations(f)?; // add_jump_destinations()
    p.read_intra_function_calls(f)?; // read_intra_function_calls()
    p.annotate(&annotations, Phase::IntraFunctionCalls, f)?; // __annotate_ifc()
    p.add_call_destinations(calls, f)?; // add_call_destinations()
    p.add_dead_ends(f)?; // add_dead_ends()
    p.add_jump_table_alts(f)?; // add_jump_table_alts()
    p.read_unwind_hints(f)?; // read_unwind_hints()
    p.read_retpoline_hints(f)?; // read_retpoline_hints()
    p.read_instr_hints(f)?; // read_instr_hints()
    p.read_validate_unret_hints(f)?; // read_validate_unret_hints()
    p.annotate(&annotations, Phase::Late, f)?; // __annotate_late()
    if opts.ibt {
        p.record_ibt_refs(); // (the relocations validate_ibt() reads)
    }
    p.find_pv_calls(); // pv_call_dest(): the slot of each call through pv_ops
    Ok(())
}
