//! Alternatives that would unwind wrongly with the merged table.
//!
//! objtool merges the states of all alternatives of a patch site into one array indexed by
//! byte offset and only compares states that fall on the very same offset. But the kernel's
//! unwinder looks up a *return address* at `ip - 1`: for a `call` in one alternative, that is
//! the call's last byte, where another alternative may have an instruction boundary with a
//! different state. [`unwind_check`] compares, for the return address of every call in every
//! alternative of every site, the entry the unwinder would use with the call's own state.
//! (Only calls: a return address is the one place an unwinder looks up an address that is
//! not an instruction boundary of the stream that ran.)

use super::OrcAbi;
use super::entry::OrcEntry;
use super::generate::entry_for;
use crate::alt::explain::stream_name;
use crate::cfg::Program;
use crate::cfi::walk::Walk;
use crate::decode::InsnKind;
use crate::ids::StateId;
use crate::report::{FindingKind, Findings};

fn orc_text(e: [u8; 6], abi: OrcAbi) -> String {
    OrcEntry::decode(abi, e).dump_text(abi).to_string()
}

/// Checks the return address of every visited call of every stream of every site against
/// the merged table as the unwinder reads it; reports each call that would unwind wrongly.
/// Returns the number of findings.
pub fn unwind_check(p: &Program<'_, '_>, w: &Walk, abi: OrcAbi, f: &mut Findings) -> usize {
    let mut found = 0;
    for (group, site) in p.alt_groups.iter() {
        let array = &w.alt_cfi[group.index()];
        if array.iter().all(Option::is_none) {
            continue;
        }
        let orig = &p.streams[site.orig];
        // the state the unwinder finds at each offset: the last filled slot at or before it,
        // else whatever is in effect before the group
        let before = p.prev_same_sec(orig.first).and_then(|i| w.cfi[i.idx()]);
        let mut eff = Vec::with_capacity(array.len());
        let mut cur = (before, None);
        for (k, &s) in array.iter().enumerate() {
            if s.is_some() {
                cur = (s, Some(k));
            }
            eff.push(cur);
        }
        let entry = |id: Option<StateId>| entry_for(id.map(|id| w.states.get(id)), abi).ok();
        let start = u64::from(p.insn(orig.first).offset);
        // every stream of this site: the original and each replacement
        for &sid in std::iter::once(&site.orig).chain(&site.alternatives) {
            let s = &p.streams[sid];
            let sstart = u64::from(p.insn(s.first).offset);
            for i in p.group_insns(s) {
                let own = w.cfi[i.idx()];
                if own.is_none()
                    || p.attr(i).kind != InsnKind::Call && p.attr(i).kind != InsnKind::CallDynamic
                {
                    continue;
                }
                // a frame returning after this call is looked up at its last byte
                let insn = p.insn(i);
                let k = u64::from(insn.offset) - sstart + u64::from(insn.len) - 1;
                let Some(&(table, slot)) = eff.get(k as usize) else {
                    continue;
                };
                let (Some(want), Some(got)) = (entry(own), entry(table)) else {
                    continue;
                };
                if want != got {
                    let what = FindingKind::AltReturnAddress {
                        call: p.insn_location(i),
                        stream: stream_name(p, i),
                        slot,
                        got: orc_text(got, abi),
                        want: orc_text(want, abi),
                    };
                    f.warn_at(p.location(p.insns.sec_of(orig.first), start), what);
                    found += 1;
                }
            }
        }
    }
    found
}
