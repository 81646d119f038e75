//! Special sections: `.altinstructions`, `__jump_table`, `__ex_table` → alternatives and
//! alternative groups.
//!
//! objtool: `special_get_alts()` (special.c), `arch_handle_alternative()`
//! (arch/x86/special.c), `add_special_section_alts()`, `handle_group_alt()` and
//! `handle_jump_alt()` (check.c). Entry layouts are data, one row per kernel ABI.

use super::builder::Builder;
use super::sites::{Rewrite, RewriteTo};
use super::{Alt, AltGroup, AltStream, AnalysisError, Packed, Step};
use crate::decode::{InsnId, InsnKind};
use crate::elf::SecId;
use crate::report::{FindingKind, Findings};

/// Where the fields of one special-section entry are.
#[derive(Clone, Copy, Debug)]
pub struct EntryLayout {
    pub section: &'static str,
    pub size: u64,
    pub group: bool,
    pub jump_or_nop: bool,
    pub orig: u64,
    pub new: u64,
    pub orig_len: Option<u64>,
    pub new_len: Option<u64>,
    pub feature: Option<u64>,
    pub key: Option<u64>,
}

/// `struct alt_instr` of Linux 6.3 and later (14 bytes: s32, s32, u32 ft_flags, u8, u8).
pub const ALT_6_12: EntryLayout = EntryLayout {
    section: ".altinstructions",
    size: 14,
    group: true,
    jump_or_nop: false,
    orig: 0,
    new: 4,
    orig_len: Some(12),
    new_len: Some(13),
    feature: Some(8),
    key: None,
};

/// `struct alt_instr` before 6.3 (12 bytes: s32, s32, u16 cpuid, u8, u8).
pub const ALT_6_1: EntryLayout = EntryLayout {
    size: 12,
    orig_len: Some(10),
    new_len: Some(11),
    ..ALT_6_12
};

pub const JUMP_TABLE: EntryLayout = EntryLayout {
    section: "__jump_table",
    size: 16,
    group: false,
    jump_or_nop: true,
    orig: 0,
    new: 4,
    orig_len: None,
    new_len: None,
    feature: None,
    key: Some(8),
};

pub const EX_TABLE: EntryLayout = EntryLayout {
    section: "__ex_table",
    size: 12,
    group: false,
    jump_or_nop: false,
    orig: 0,
    new: 4,
    orig_len: None,
    new_len: None,
    feature: None,
    key: None,
};

const X86_FEATURE_SMAP: u16 = 9 * 32 + 20;
const X86_FEATURE_POPCNT: u16 = 4 * 32 + 23;

/// One entry of a special section, resolved (objtool's `struct special_alt`).
#[derive(Clone, Debug)]
pub struct SpecialAlt {
    pub group: bool,
    pub jump_or_nop: bool,
    pub skip_orig: bool,
    pub skip_alt: bool,
    pub key_addend: u8,
    pub orig_sec: SecId,
    pub orig_off: u64,
    pub new_sec: SecId,
    pub new_off: u64,
    pub orig_len: u8,
    pub new_len: u8,
}

/// Which `struct alt_instr` layout the object uses.
pub fn alt_layout(p: &Builder<'_, '_>) -> EntryLayout {
    if p.opts.alt_abi_6_1 {
        ALT_6_1
    } else {
        ALT_6_12
    }
}

/// objtool: `special_get_alts()`.
fn read_special_alts(
    p: &Builder<'_, '_>,
    f: &mut Findings,
) -> Result<Vec<SpecialAlt>, AnalysisError> {
    let mut alts: Vec<SpecialAlt> = Vec::new();
    // arch_handle_alternative's static "current run" of nested ALTERNATIVE entries
    let mut run_start: Option<usize> = None;
    for layout in [alt_layout(p), JUMP_TABLE, EX_TABLE] {
        let Some(sec) = p.obj.section_by_name(layout.section.as_bytes()) else {
            continue;
        };
        let data = p.obj.section_data(sec).unwrap_or(&[]);
        let size = p.sec_size[sec.0 as usize];
        if size % layout.size != 0 {
            f.warn(FindingKind::SpecialSizeNotMultiple {
                section: layout.section.to_string(),
                size: layout.size as usize,
            });
            return Err(AnalysisError::Build);
        }
        for idx in 0..size / layout.size {
            let off = idx * layout.size;
            let byte = |field: Option<u64>| {
                field
                    .and_then(|o| data.get((off + o) as usize).copied())
                    .unwrap_or(0)
            };
            let mut alt = SpecialAlt {
                group: layout.group,
                jump_or_nop: layout.jump_or_nop,
                skip_orig: false,
                skip_alt: false,
                key_addend: 0,
                orig_sec: SecId(0),
                orig_off: 0,
                new_sec: SecId(0),
                new_off: 0,
                orig_len: byte(layout.orig_len),
                new_len: byte(layout.new_len),
            };
            let Some(orig) = p.relocs.at(sec, off + layout.orig) else {
                let at = p.section_location(sec, off + layout.orig);
                f.warn_at(at, FindingKind::SpecialWithoutReloc { field: "orig" });
                return Err(AnalysisError::Build);
            };
            (alt.orig_sec, alt.orig_off) = p.sym_sec_off(&orig);
            if let Some(fo) = layout.feature {
                let feature = data
                    .get((off + fo) as usize..(off + fo) as usize + 2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
                    .unwrap_or(0);
                // nested ALTERNATIVE()s: every entry of a run at one site gets the
                // longest orig_len
                match run_start {
                    Some(s)
                        if alts[s].orig_sec == alt.orig_sec && alts[s].orig_off == alt.orig_off =>
                    {
                        for it in &mut alts[s..] {
                            let len = it.orig_len.max(alt.orig_len);
                            it.orig_len = len;
                            alt.orig_len = len;
                        }
                    }
                    _ => run_start = Some(alts.len()),
                }
                match feature {
                    X86_FEATURE_SMAP => {
                        if p.opts.uaccess {
                            alt.skip_orig = true;
                        } else {
                            alt.skip_alt = true;
                        }
                    }
                    X86_FEATURE_POPCNT => alt.skip_orig = true,
                    _ => {}
                }
            }
            if !layout.group || alt.new_len != 0 {
                let Some(new) = p.relocs.at(sec, off + layout.new) else {
                    let at = p.section_location(sec, off + layout.new);
                    f.warn_at(at, FindingKind::SpecialWithoutReloc { field: "new" });
                    return Err(AnalysisError::Build);
                };
                (alt.new_sec, alt.new_off) = p.sym_sec_off(&new);
                if alt.new_off >= 0x7fff_fff0 {
                    alt.new_off -= 0x7fff_fff0;
                }
            }
            if let Some(ko) = layout.key {
                let Some(key) = p.relocs.at(sec, off + ko) else {
                    let at = p.section_location(sec, off + ko);
                    f.warn_at(at, FindingKind::SpecialWithoutReloc { field: "key" });
                    return Err(AnalysisError::Build);
                };
                alt.key_addend = key.addend as u8;
            }
            alts.push(alt);
        }
    }
    Ok(alts)
}

/// objtool: `add_special_section_alts()`.
pub fn add_special_section_alts(p: &mut Builder<'_, '_>, f: &mut Findings) -> Step {
    let specials = read_special_alts(p, f)?;
    for sa in specials {
        let Some(orig) = p.insns.at(sa.orig_sec, sa.orig_off) else {
            let at = p.location(sa.orig_sec, sa.orig_off);
            f.warn_at(at, FindingKind::SpecialWithoutInstruction { field: "orig" });
            return Err(AnalysisError::Build);
        };
        let mut new = None;
        if !sa.group || sa.new_len != 0 {
            match p.insns.at(sa.new_sec, sa.new_off) {
                Some(n) => new = Some(n),
                None => {
                    let at = p.location(sa.new_sec, sa.new_off);
                    f.warn_at(at, FindingKind::SpecialWithoutInstruction { field: "new" });
                    return Err(AnalysisError::Build);
                }
            }
        }
        if sa.group {
            if sa.orig_len == 0 {
                p.warn_insn(f, orig, FindingKind::EmptyAlternative);
                continue;
            }
            new = Some(handle_group_alt(p, &sa, orig, new, f)?);
        } else if sa.jump_or_nop {
            new = handle_jump_alt(p, &sa, orig, new, f)?;
        }
        let Some(target) = new else { continue };
        p.attrs[orig.idx()].set_has_alts(true);
        p.alts.entry(orig).or_default().push(Alt {
            target,
            skip_orig: sa.skip_orig,
        });
        let a = &mut p.attrs[orig.idx()];
        a.set_ignore_alts(a.ignore_alts() | sa.skip_alt);
    }
    Ok(())
}

/// objtool: `handle_group_alt()`. Returns the alternative's target (the first replacement
/// instruction, or the synthetic NOP of an empty replacement).
fn handle_group_alt(
    p: &mut Builder<'_, '_>,
    sa: &SpecialAlt,
    orig: InsnId,
    new: Option<InsnId>,
    f: &mut Findings,
) -> Result<InsnId, AnalysisError> {
    let (group, parent) = match p.alt_stream(orig) {
        None => {
            let group = p.alt_groups.next_id();
            let stream = p.streams.next_id();
            let end = sa.orig_off + u64::from(sa.orig_len);
            let mut last = orig;
            let mut cur = Some(orig);
            while let Some(i) = cur {
                if u64::from(p.insn(i).offset) >= end {
                    break;
                }
                p.set_alt_stream(i, stream);
                last = i;
                cur = p.next_same_sec(i);
            }
            // A group longer than its array would index past it: refuse (objtool 6.12
            // has undefined behaviour here).
            let glen = p.insn(last).end() - u64::from(p.insn(orig).offset);
            if glen > u64::from(sa.orig_len) {
                let what = FindingKind::WeirdlyOverlapping {
                    len: glen,
                    orig_len: sa.orig_len,
                };
                p.warn_insn(f, orig, what);
                return Err(AnalysisError::Build);
            }
            p.streams.push(AltStream {
                group,
                parent: None,
                number: 0,
                first: orig,
                last: Some(last),
                nop: None,
            });
            p.alt_groups.push(AltGroup {
                orig: stream,
                alternatives: Vec::new(),
                len: u32::from(sa.orig_len),
            });
            (group, stream)
        }
        Some(s) => {
            let grp = &p.streams[s];
            let glen = p.stream_bytes(grp);
            if glen != u64::from(sa.orig_len) {
                let what = FindingKind::WeirdlyOverlapping {
                    len: glen,
                    orig_len: sa.orig_len,
                };
                p.warn_insn(f, orig, what);
                return Err(AnalysisError::Build);
            }
            (grp.group, s)
        }
    };
    let new_stream = p.streams.next_id();
    let orig_sym = p.attrs[orig.idx()].sym;
    let orig_ignore_alts = p.attrs[orig.idx()].ignore_alts();
    let mut nop = None;
    if sa.new_len < sa.orig_len {
        let n = p.add_synthetic_nop(
            sa.new_sec,
            (sa.new_off + u64::from(sa.new_len)) as u32,
            sa.orig_len - sa.new_len,
        );
        let a = &mut p.attrs[n.idx()];
        a.sym = orig_sym;
        a.set_ignore(orig_ignore_alts);
        p.set_alt_stream(n, new_stream);
        nop = Some(n);
    }
    let (first, last) = if sa.new_len == 0 {
        (nop.unwrap_or(orig), None)
    } else {
        let Some(start) = new else {
            return Err(AnalysisError::Build);
        };
        let end = sa.new_off + u64::from(sa.new_len);
        let mut last = None;
        let mut cur = Some(start);
        while let Some(i) = cur {
            if u64::from(p.insn(i).offset) >= end {
                break;
            }
            last = Some(i);
            let a = &mut p.attrs[i.idx()];
            a.set_ignore(orig_ignore_alts);
            a.sym = orig_sym;
            let is_jump = a.kind.is_static_jump();
            p.set_alt_stream(i, new_stream);
            if is_jump && p.insns.get(i).immediate != 0 && p.jump_target_off(i) == end {
                let og_last = p.streams[parent].last;
                let dest = og_last.and_then(|l| p.next_same_sec(l));
                match dest {
                    Some(d) => p.attrs[i.idx()].jump_dest = Packed::some(d.0),
                    None => {
                        p.warn_insn(f, i, FindingKind::NoAlternativeJumpDest);
                        return Err(AnalysisError::Build);
                    }
                }
            }
            cur = p.next_same_sec(i);
        }
        if last.is_none() {
            let at = p.section_location(sa.new_sec, sa.new_off);
            f.warn_at(at, FindingKind::NoLastNewAlternativeInstruction);
            return Err(AnalysisError::Build);
        }
        (start, last)
    };
    let site = &p.alt_groups[group];
    let number = 1 + if site.orig == parent {
        site.alternatives.len()
    } else {
        // a replacement of a replacement (rare): count its siblings
        p.streams
            .values()
            .filter(|s| s.parent == Some(parent))
            .count()
    } as u32;
    p.streams.push(AltStream {
        group,
        parent: Some(parent),
        number,
        first,
        last,
        nop,
    });
    if p.alt_groups[group].orig == parent {
        p.alt_groups[group].alternatives.push(new_stream);
    }
    Ok(first)
}

/// objtool: `handle_jump_alt()`. Returns the alternative's target.
fn handle_jump_alt(
    p: &mut Builder<'_, '_>,
    sa: &SpecialAlt,
    orig: InsnId,
    new: Option<InsnId>,
    f: &mut Findings,
) -> Result<Option<InsnId>, AnalysisError> {
    let kind = p.attrs[orig.idx()].kind;
    if kind != InsnKind::JumpUnconditional && kind != InsnKind::Nop {
        p.warn_insn(f, orig, FindingKind::UnsupportedJumpLabelInstruction);
        return Err(AnalysisError::Build);
    }
    if p.opts.hack_jump_label && sa.key_addend & 2 != 0 {
        p.attrs[orig.idx()].kind = InsnKind::Nop;
        let reloc = p.reloc_slot(orig);
        p.sites.rewrites.push(Rewrite {
            insn: orig,
            to: RewriteTo::Nop,
            reloc,
        });
    }
    if p.attrs[orig.idx()].kind == InsnKind::Nop {
        return Ok(new);
    }
    Ok(p.next_same_sec(orig))
}
