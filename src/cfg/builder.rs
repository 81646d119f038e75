//! The model while the passes build it: the [`Program`] plus the tables only the passes
//! need (relocations, objtool's `first_jump_src`, the dead-end memo). [`Builder::finish`]
//! consumes it and returns the program the walk reads, without them.

use rustc_hash::FxHashMap as HashMap;
use std::ops::{Deref, DerefMut};

use object::read::elf::SectionHeader as _;

use super::program::{Attr, LOOKUP_BATCH, LOOKUP_MIN_TASK, Program, Step};
use super::relocs::{Reloc, Relocs};
use super::symbols::Symbols;
use crate::decode::{Insn, InsnId, InsnKind, InsnTable};
use crate::elf::{LE, Object, SecId};
use crate::ids::StreamId;
use crate::ids::SymId;
use crate::options::Options;

pub struct Builder<'a, 'data> {
    pub(super) p: Program<'a, 'data>,
    pub(super) relocs: Relocs<'data>,
    /// objtool's `first_jump_src`: the first forward jump to an instruction.
    pub(super) first_jump_src: HashMap<InsnId, InsnId>,
    /// Memoised `dead_end_function()` results while call destinations are added.
    pub(super) dead_end_memo: HashMap<SymId, bool>,
}

impl<'a, 'data> Deref for Builder<'a, 'data> {
    type Target = Program<'a, 'data>;
    fn deref(&self) -> &Self::Target {
        &self.p
    }
}

impl DerefMut for Builder<'_, '_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.p
    }
}

impl<'a, 'data> Builder<'a, 'data> {
    pub(super) fn new(
        obj: &'a Object<'data>,
        opts: &'a Options,
        insns: InsnTable,
        syms: Symbols<'data>,
        relocs: Relocs<'data>,
    ) -> Self {
        Builder {
            p: Program::new(obj, opts, insns, syms),
            relocs,
            first_jump_src: HashMap::default(),
            dead_end_memo: HashMap::default(),
        }
    }

    /// The program as the walk sees it: what only the passes needed is dropped before the
    /// walk allocates its own tables.
    pub(super) fn finish(self) -> Program<'a, 'data> {
        let mut p = self.p;
        p.insns.branches = Vec::new();
        p.insns.irets = Vec::new();
        p
    }

    pub(super) fn reloc_of(&self, id: InsnId) -> Option<Reloc> {
        let i = self.insn(id);
        self.relocs
            .in_range(self.insns.sec_of(id), u64::from(i.offset), u64::from(i.len))
    }

    /// The relocation section called `name`, read in file order.
    pub(super) fn rela_by_name(&self, name: &str) -> Option<(String, Vec<Reloc>)> {
        let rsec = self.obj.section_by_name(name.as_bytes())?;
        let target = SecId(self.obj.section(rsec).ok()?.sh_info(LE));
        let t = self.relocs.table(target)?;
        (t.rela_sec == rsec).then(|| (name.to_owned(), t.iter().collect()))
    }

    /// A batch at a time: `prepare` (in order), then `lookup` on each of the batch's items
    /// (read-only: on several threads for a large object), then `apply` on the results in
    /// the order of `items`, stopping at the first error.
    pub(super) fn lookups<I: Copy + Sync, T: Send>(
        &mut self,
        items: &[I],
        mut prepare: impl FnMut(&mut Self, &[I]),
        lookup: impl Fn(&Self, I) -> T + Sync + Send,
        mut apply: impl FnMut(&mut Self, I, T) -> Step,
    ) -> Step {
        for batch in items.chunks(LOOKUP_BATCH) {
            prepare(self, batch);
            let this = &*self;
            let found = this.map_all(batch, LOOKUP_MIN_TASK, |&i| lookup(this, i));
            for (&i, t) in batch.iter().zip(found) {
                apply(self, i, t)?;
            }
        }
        Ok(())
    }

    /// Puts an instruction into an alternative stream.
    pub(super) fn set_alt_stream(&mut self, id: InsnId, s: StreamId) {
        self.attrs[id.idx()].set_in_alt_group(true);
        self.stream_of.insert(id, s);
    }

    /// Adds a synthetic instruction (an alternative's padding NOP); it is not found by
    /// address and has no neighbours.
    pub(super) fn add_synthetic_nop(&mut self, sec: SecId, offset: u32, len: u8) -> InsnId {
        let id = self.insns.push_synthetic(
            sec,
            Insn {
                offset,
                len,
                kind: InsnKind::Nop,
                flags: 0,
                immediate: 0,
                ops_start: 0,
                ops_len: 0,
            },
        );
        self.attrs.push(Attr {
            kind: InsnKind::Nop,
            ..Attr::default()
        });
        id
    }
}
