//! The decoder: every executable section, linearly from offset 0 (large sections in
//! parallel pieces that meet on a common instruction boundary), into the one table.

use iced_x86::{Decoder, DecoderOptions, EncodingKind, Instruction, OpKind};
use object::elf;
use object::read::elf::SectionHeader as _;

use super::x86::{self};
use super::*;
use crate::elf::{LE, Object, SecId};
use crate::offsets::OffsetIndex;

/// Is this an executable section (decoded)?
pub fn is_exec(obj: &Object<'_>, sec: SecId) -> bool {
    obj.section(sec)
        .map(|s| {
            s.sh_flags(LE) & u64::from(elf::SHF_EXECINSTR) != 0 && s.sh_type(LE) != elf::SHT_NOBITS
        })
        .unwrap_or(false)
}

/// Length of a Xen or KVM emulate prefix at the start of `bytes` (0 if none).
fn emulate_prefix_len(bytes: &[u8]) -> usize {
    // (`ud2` first: every instruction is asked, almost none is one)
    match bytes {
        [0x0f, 0x0b, b'x', b'e', b'n', _, ..] | [0x0f, 0x0b, b'k', b'v', b'm', _, ..] => 5,
        _ => 0,
    }
}

/// Sections of at least this many bytes are decoded in parallel pieces.
const PARALLEL_MIN_BYTES: usize = 1 << 20;
/// A section decoded in pieces is cut into parts of about this size, which the threads
/// claim one at a time (see [`decode_section`]).
const PART_BYTES: usize = 512 << 10;
/// A piece decodes this far into the next one, where the two must meet on a common
/// instruction boundary.
const PIECE_OVERLAP: usize = 4096;

/// Builds the decoder's tables (iced-x86 builds them on first use: about half a
/// millisecond, as long as all the rest of a small module's check). A program about to
/// decode can run this on a thread of its own first, so the tables are ready when needed.
pub fn warm_up() {
    let mut ins = Instruction::default();
    Decoder::with_ip(64, &[0x90], 0, DecoderOptions::NONE).decode_out(&mut ins);
}

/// How [`decode`] may use threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    One,
    /// Sections of 1 MiB and more in one piece per thread.
    Large,
    /// Every section in one piece per thread (at least two): for tests.
    Forced,
}

/// Decodes every executable section of `obj` (in parallel pieces as `threads` says; the
/// result is the same).
pub fn decode(obj: &Object<'_>, threads: Threads) -> Result<InsnTable, DecodeError> {
    let mut t = InsnTable {
        by_section: vec![(0, 0); obj.section_count()],
        starts: (0..obj.section_count())
            .map(|_| OffsetIndex::default())
            .collect(),
        ..Default::default()
    };
    // x86-64 kernel code averages 3.3 bytes an instruction and one stack operation per four
    // instructions: reserve for that, so the tables are not copied while they grow
    let exec_bytes: usize = obj
        .section_ids()
        .filter(|&sec| is_exec(obj, sec))
        .filter_map(|sec| obj.section_data(sec).ok())
        .map(<[u8]>::len)
        .sum();
    let _ = t.insns.try_reserve(exec_bytes / 3);
    let _ = t.ops.try_reserve(exec_bytes / 12);
    // (asking rayon starts its thread pool: not for a small object)
    let nthreads = if threads == Threads::One {
        1
    } else {
        rayon::current_num_threads()
    };
    let pieces_for = |data: &[u8]| match threads {
        Threads::One => 1,
        Threads::Large => nthreads.min(data.len() / PARALLEL_MIN_BYTES).max(1),
        Threads::Forced => nthreads.max(2).min(data.len() / 16).max(1),
    };
    let data_of = |sec| {
        obj.section_data(sec)
            .map_err(|_| DecodeError { sec, offset: 0 })
    };
    let secs: Vec<SecId> = obj.section_ids().collect();
    // The first section decoded on several threads has the executable sections after it
    // decoded beside it, each in one piece, appended after it.
    let split = secs
        .iter()
        .position(|&sec| is_exec(obj, sec) && data_of(sec).is_ok_and(|data| pieces_for(data) > 1));
    // (the pieces decoded beside, in section order, once the split section is decoded)
    let mut beside = Vec::new().into_iter();
    for (k, &sec) in secs.iter().enumerate() {
        let start = t.insns.len() as u32;
        if !is_exec(obj, sec) {
            t.by_section[sec.0 as usize] = (start, start);
            continue;
        }
        if split.is_some_and(|split| k > split) {
            let Some(decoded) = beside.next() else {
                break; // (one per executable section)
            };
            let (len, piece): (usize, Piece) = decoded?;
            if let Some(&offset) = piece.errors.first() {
                return Err(DecodeError { sec, offset });
            }
            t.append(&piece, 0, piece.insns.len());
            let mut bits = vec![0u64; OffsetIndex::words(len as u64)];
            or_bits(&mut bits, &piece, 0, len);
            t.finish_section(sec, start, &bits, len);
            continue;
        }
        let data = data_of(sec)?;
        let bits = if Some(k) == split {
            use rayon::prelude::*;
            let later: Vec<SecId> = (secs[k + 1..].iter().copied())
                .filter(|&s| is_exec(obj, s))
                .collect();
            let (bits, decoded) = rayon::join(
                || decode_section(sec, data, pieces_for(data), PIECE_OVERLAP, &mut t),
                || {
                    later
                        .par_iter()
                        .map(|&s| {
                            let data = data_of(s)?;
                            let mut p = Piece::default();
                            decode_span(&mut p, s, data, 0, data.len(), false);
                            Ok((data.len(), p))
                        })
                        .collect::<Vec<Result<_, DecodeError>>>()
                },
            );
            beside = decoded.into_iter();
            bits?
        } else {
            decode_section(sec, data, pieces_for(data), PIECE_OVERLAP, &mut t)?
        };
        t.finish_section(sec, start, &bits, data.len());
    }
    t.real_len = t.insns.len();
    Ok(t)
}

/// Instructions decoded from one byte range of a section, with their stack operations,
/// notes and branch lists (indices are into `insns`).
#[derive(Default)]
struct Piece {
    insns: Vec<Insn>,
    ops: Vec<PackedOp>,
    notes: Vec<Note>,
    branches: Vec<InsnId>,
    irets: Vec<InsnId>,
    indirect_jumps: Vec<InsnId>,
    /// Where bytes were no instruction, in order (a piece that may start inside an
    /// instruction goes on a byte later; the first one inside the true stream is the
    /// section's decode error).
    errors: Vec<u64>,
    /// Where the next instruction would start.
    end: usize,
    /// The instruction starts of the span decoded into the piece: bit `k` (of word
    /// `k / 64`) is offset `bits_base + k`.
    bits: Vec<u64>,
    /// Where `bits` starts in the section (a multiple of 64).
    bits_base: usize,
}

impl InsnTable {
    /// The table's growing parts as a piece (to decode into it directly).
    fn take_piece(&mut self) -> Piece {
        Piece {
            insns: std::mem::take(&mut self.insns),
            ops: std::mem::take(&mut self.ops),
            notes: std::mem::take(&mut self.notes),
            branches: std::mem::take(&mut self.branches),
            irets: std::mem::take(&mut self.irets),
            indirect_jumps: std::mem::take(&mut self.indirect_jumps),
            errors: Vec::new(),
            end: 0,
            bits: Vec::new(),
            bits_base: 0,
        }
    }

    /// Records section `sec`, decoded into the table from instruction `start` on, with
    /// its instruction starts (`bits`, as [`OffsetIndex::from_bits`] reads them).
    fn finish_section(&mut self, sec: SecId, start: u32, bits: &[u64], len: usize) {
        let end = self.insns.len() as u32;
        self.by_section[sec.0 as usize] = (start, end);
        self.starts[sec.0 as usize] = OffsetIndex::from_bits(bits, len as u64);
        if end > start {
            self.sec_starts.push((start, sec));
            self.insns[start as usize].flags |= INSN_FIRST;
            self.insns[end as usize - 1].flags |= INSN_LAST;
        }
    }

    /// Puts back what [`InsnTable::take_piece`] took, keeping instructions before `keep`.
    fn restore_piece(&mut self, mut p: Piece, keep: usize) {
        if let Some(cut) = p.insns.get(keep) {
            let (ops, off) = (cut.ops_start as usize, cut.offset);
            p.ops.truncate(ops);
            // (notes of earlier sections have lower ids, so only this section's tail goes)
            while p.notes.last().is_some_and(|n| n.offset >= off) {
                p.notes.pop();
            }
            p.insns.truncate(keep);
            for list in [&mut p.branches, &mut p.irets, &mut p.indirect_jumps] {
                while list.last().is_some_and(|b| b.idx() >= keep) {
                    list.pop();
                }
            }
        }
        self.insns = p.insns;
        self.ops = p.ops;
        self.notes = p.notes;
        self.branches = p.branches;
        self.irets = p.irets;
        self.indirect_jumps = p.indirect_jumps;
    }

    /// Appends `piece.insns[from..to]` with their stack operations, notes and branch lists
    /// (the instructions and operations copied on all threads: a piece is a large part
    /// of a large section, and the copy writes memory never touched before).
    fn append(&mut self, piece: &Piece, from: usize, to: usize) {
        use rayon::prelude::*;
        let insns = &piece.insns[from..to];
        let (Some(first), Some(last)) = (insns.first(), insns.last()) else {
            return;
        };
        let ops_from = first.ops_start;
        let ops_to = last.ops_start as usize + last.ops_len as usize;
        let ops_base = self.ops.len() as u32;
        self.ops
            .par_extend(piece.ops[ops_from as usize..ops_to].par_iter().copied());
        let base = self.insns.len();
        self.insns.par_extend(insns.par_iter().map(|&i| Insn {
            ops_start: i.ops_start - ops_from + ops_base,
            ..i
        }));
        let (lo, hi) = (first.offset, last.offset);
        self.notes.extend(
            piece
                .notes
                .iter()
                .filter(|n| (lo..=hi).contains(&n.offset))
                .cloned(),
        );
        let rebase = |list: &[InsnId], out: &mut Vec<InsnId>| {
            let a = list.partition_point(|b| b.idx() < from);
            let b = list.partition_point(|b| b.idx() < to);
            out.extend(
                list[a..b]
                    .iter()
                    .map(|b| InsnId((b.idx() - from + base) as u32)),
            );
        };
        rebase(&piece.branches, &mut self.branches);
        rebase(&piece.irets, &mut self.irets);
        rebase(&piece.indirect_jumps, &mut self.indirect_jumps);
    }
}

/// Decodes one section on up to `pieces` threads, with the result of a linear decode from
/// its start.
///
/// The section is cut into parts (at least `pieces`, of about [`PART_BYTES`]). The first
/// thread decodes from the start straight into the table, claiming the parts one after
/// another; the others claim parts from the end, each decoded into a buffer of its own.
/// So the threads share the work whatever else they are doing, and only the parts taken
/// from the end are copied. A part taken from the end starts at an arbitrary offset and
/// may begin inside an instruction, but x86 decoding falls back into step within a few
/// instructions: each decode goes `overlap` bytes into the next part, and the first
/// instruction boundary both found there is where the true stream (known from the part
/// before) switches to the next. Where two never meet, the rest of the section is decoded
/// linearly.
///
/// Returns the section's instruction starts as [`OffsetIndex::from_bits`] reads them (the
/// starts each piece found, on the part of it that is the true stream).
fn decode_section(
    sec: SecId,
    data: &[u8],
    pieces: usize,
    overlap: usize,
    t: &mut InsnTable,
) -> Result<Vec<u64>, DecodeError> {
    decode_section_split(sec, data, pieces, overlap, usize::MAX, t)
}

/// [`decode_section`], where the first thread claims no part past `front_parts` (tests
/// choose where the parts taken from the end begin).
fn decode_section_split(
    sec: SecId,
    data: &[u8],
    pieces: usize,
    overlap: usize,
    front_parts: usize,
    t: &mut InsnTable,
) -> Result<Vec<u64>, DecodeError> {
    use rayon::prelude::*;
    use std::sync::Mutex;
    let err = |offset| Err(DecodeError { sec, offset });
    let mut bits = vec![0u64; OffsetIndex::words(data.len() as u64)];
    if pieces <= 1 || data.len() < 2 {
        // one piece: no threads (starting rayon's pool costs more than a small section)
        return decode_linear_into(t, sec, data, 0, &mut bits).map(|()| bits);
    }
    let parts = pieces.max(data.len().div_ceil(PART_BYTES)).min(data.len());
    let size = data.len().div_ceil(parts);
    let parts = data.len().div_ceil(size);
    let part_start = |k: usize| (k * size).min(data.len());
    // the parts not yet claimed: the first from the front, the second from the end (the
    // first thread has part 0); a claim that finds none answers where the front stopped
    let claims = Mutex::new((1usize, parts));
    let claim = |from_front: bool| {
        let mut c = claims.lock().unwrap_or_else(|e| e.into_inner());
        if c.0 >= c.1 || (from_front && c.0 >= front_parts) {
            return Err(c.0);
        }
        Ok(if from_front {
            c.0 += 1;
            c.0 - 1
        } else {
            c.1 -= 1;
            c.1
        })
    };
    let mut head = t.take_piece();
    let base = head.insns.len();
    let ((), mut rest): ((), Vec<(usize, Piece)>) = rayon::join(
        || {
            // the end of the part just decoded reached: the end of the next one claimed,
            // else `overlap` bytes into the part after (then no further)
            let mut extend = |reached: usize| match claim(true) {
                Ok(k) => part_start(k + 1),
                Err(front) => {
                    reached.max(part_start(front).saturating_add(overlap).min(data.len()))
                }
            };
            decode_span_with(
                &mut head,
                sec,
                data,
                0,
                size,
                data.len(),
                false,
                &mut extend,
            );
        },
        || {
            (1..pieces)
                .into_par_iter()
                .flat_map_iter(|_| {
                    std::iter::from_fn(|| {
                        let k = claim(false).ok()?;
                        let mut p = Piece::default();
                        let stop = part_start(k + 1).saturating_add(overlap).min(data.len());
                        decode_span(&mut p, sec, data, part_start(k), stop, true);
                        Some((k, p))
                    })
                })
                .collect()
        },
    );
    rest.sort_unstable_by_key(|&(k, _)| k);
    // the first error inside the true stream of `p` from instruction `from` to offset `to`
    let error_in = |p: &Piece, from: usize, to: u64| {
        let lo = p
            .insns
            .get(from)
            .map_or(p.end as u64, |i| u64::from(i.offset));
        p.errors.iter().copied().find(|&e| e >= lo && e < to)
    };
    // the head in the table is the true stream up to where the next piece takes over
    let mut rest = rest.into_iter();
    // (`None` while the head, in `head`, is the piece being followed)
    let mut pending: Option<(Piece, usize)> = None;
    loop {
        let (prev, from): (&Piece, usize) = match &pending {
            None => (&head, base),
            Some((p, from)) => (p, *from),
        };
        let next = rest.next();
        // where the true stream leaves `prev`: the first boundary at or after the next
        // piece's start that both found
        let meet = next.as_ref().and_then(|&(k, ref piece)| {
            let st = part_start(k);
            let a = prev.insns[from..].partition_point(|i| (i.offset as usize) < st) + from;
            let (mut x, mut y) = (a, 0);
            while x < prev.insns.len() && y < piece.insns.len() {
                let (ox, oy) = (prev.insns[x].offset, piece.insns[y].offset);
                if ox == oy {
                    return Some((x, y));
                }
                if ox < oy {
                    x += 1;
                } else {
                    y += 1;
                }
            }
            None
        });
        let to = meet.map_or(u64::MAX, |(x, _)| u64::from(prev.insns[x].offset));
        let error = error_in(prev, from, to);
        // the true part of `prev` ends at the error, else where the next piece takes over
        let keep = match (error, meet) {
            (Some(e), _) => prev.insns.partition_point(|i| u64::from(i.offset) < e),
            (None, Some((x, _))) => x,
            (None, None) => prev.insns.len(),
        }
        .max(from);
        let prev_end = prev.end;
        // its instruction starts into the section's
        if let Some(lo) = prev.insns.get(from) {
            let hi = prev
                .insns
                .get(keep)
                .map_or(data.len(), |i| i.offset as usize);
            or_bits(&mut bits, prev, lo.offset as usize, hi);
        }
        // move it into the table
        match pending.take() {
            None => t.restore_piece(std::mem::take(&mut head), keep),
            Some((p, from)) => t.append(&p, from, keep),
        }
        if let Some(e) = error {
            return err(e);
        }
        match (next, meet) {
            (None, _) => return Ok(bits),
            (Some((_, piece)), Some((_, y))) => pending = Some((piece, y)),
            // no meeting point: the rest of the section linearly
            (Some(_), None) => {
                return decode_linear_into(t, sec, data, prev_end, &mut bits).map(|()| bits);
            }
        }
    }
}

/// Decodes `data[start..]` linearly straight into the table (its instruction starts into
/// `bits`); the first bytes that are no instruction are the section's decode error.
fn decode_linear_into(
    t: &mut InsnTable,
    sec: SecId,
    data: &[u8],
    start: usize,
    bits: &mut [u64],
) -> Result<(), DecodeError> {
    let mut p = t.take_piece();
    decode_span(&mut p, sec, data, start, data.len(), false);
    or_bits(bits, &p, start, data.len());
    let error = p.errors.first().copied();
    let n = p.insns.len();
    t.restore_piece(p, n);
    error.map_or(Ok(()), |offset| Err(DecodeError { sec, offset }))
}

/// Adds the instruction starts `piece` found in `[lo, hi)` to the section's `bits`.
fn or_bits(bits: &mut [u64], piece: &Piece, lo: usize, hi: usize) {
    let base = piece.bits_base;
    let (lo, hi) = (lo.max(base), hi.min(base + 64 * piece.bits.len()));
    if lo >= hi {
        return;
    }
    let (first, last) = (lo / 64, (hi - 1) / 64);
    for w in first..=last {
        let mut word = piece.bits[w - base / 64];
        if w == first {
            word &= !0u64 << (lo % 64);
        }
        if w == last && hi % 64 != 0 {
            word &= !(!0u64 << (hi % 64));
        }
        if let Some(b) = bits.get_mut(w) {
            *b |= word;
        }
    }
}

/// Decodes linearly from `start` while the next instruction starts before `stop`,
/// appending to `piece`; at bytes that are no instruction, stops, or with `resync` goes
/// on a byte later.
fn decode_span(
    piece: &mut Piece,
    sec: SecId,
    data: &[u8],
    start: usize,
    stop: usize,
    resync: bool,
) {
    decode_span_with(piece, sec, data, start, stop, stop, resync, &mut |s| s);
}

/// [`decode_span`], where reaching `stop` asks `extend` (given `stop`) how far to go on:
/// decoding ends when it answers no further. Instructions starting before `limit`, the
/// furthest it may answer, are marked in the piece's bits.
#[allow(clippy::too_many_arguments)]
fn decode_span_with(
    piece: &mut Piece,
    sec: SecId,
    data: &[u8],
    start: usize,
    mut stop: usize,
    limit: usize,
    resync: bool,
    extend: &mut dyn FnMut(usize) -> usize,
) {
    piece.end = start;
    piece.bits_base = start & !63;
    piece.bits.clear();
    piece
        .bits
        .resize((limit.max(start) - piece.bits_base).div_ceil(64), 0);
    if piece.insns.capacity() == 0 {
        piece.insns.reserve(stop.saturating_sub(start) / 3);
        piece.ops.reserve(stop.saturating_sub(start) / 12);
    }
    let mut ins = Instruction::default();
    let mut decoder = Decoder::with_ip(64, data, 0, DecoderOptions::NONE);
    let failed = |piece: &mut Piece, decoder: &mut Decoder<'_>, offset: usize| {
        piece.errors.push(offset as u64);
        resync && decoder.set_position(offset + 1).is_ok() && {
            decoder.set_ip(offset as u64 + 1);
            true
        }
    };
    if decoder.set_position(start).is_err() {
        piece.errors.push(start as u64);
        return;
    }
    decoder.set_ip(start as u64);
    while decoder.can_decode() {
        if decoder.position() >= stop {
            let further = extend(stop);
            if further <= stop {
                break;
            }
            stop = further;
            continue;
        }
        let offset = decoder.position();
        piece.end = offset;
        // The kernel's decoder reads Xen's and KVM's "emulate prefix" (`ud2; .ascii "xen"`
        // or `"kvm"`) as a prefix of the instruction that follows it.
        let prefix = emulate_prefix_len(&data[offset..]);
        if prefix > 0 {
            if decoder.set_position(offset + prefix).is_err() {
                piece.errors.push(offset as u64);
                return;
            }
            // the position moved without the instruction pointer: keep them equal
            decoder.set_ip((offset + prefix) as u64);
            if !decoder.can_decode() {
                if failed(piece, &mut decoder, offset) {
                    continue;
                }
                return;
            }
        }
        decoder.decode_out(&mut ins);
        if offset > u32::MAX as usize {
            piece.errors.push(offset as u64);
            return;
        }
        if ins.is_invalid() {
            if failed(piece, &mut decoder, offset) {
                continue;
            }
            return;
        }
        let len = prefix + ins.len();
        let bytes = &data[offset + prefix..offset + len];
        let immediate = match ins.op0_kind() {
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
                ins.near_branch_target().wrapping_sub((offset + len) as u64) as i64
            }
            _ => 0,
        };
        let c = x86::classify(bytes, ins.encoding() == EncodingKind::Legacy, immediate);
        if let Some(note) = c.note {
            piece.notes.push(Note {
                sec,
                offset: offset as u32,
                note,
            });
        }
        let id = InsnId(piece.insns.len() as u32);
        if c.kind == InsnKind::Call || c.kind.is_static_jump() {
            piece.branches.push(id);
        }
        if c.is_iret {
            piece.irets.push(id);
        }
        if c.kind == InsnKind::JumpDynamic {
            piece.indirect_jumps.push(id);
        }
        let ops_start = piece.ops.len() as u32;
        let mut ops_len = 0;
        for op in &c.ops {
            if let Some(op) = *op {
                piece.ops.push(op.into());
                ops_len += 1;
            }
        }
        let bit = offset - piece.bits_base;
        if let Some(w) = piece.bits.get_mut(bit / 64) {
            *w |= 1 << (bit % 64);
        }
        piece.insns.push(Insn {
            offset: offset as u32,
            len: len as u8,
            kind: c.kind,
            flags: if c.is_iret { INSN_IRET } else { 0 },
            immediate: c.immediate as i32,
            ops_start,
            ops_len,
        });
        piece.end = offset + len;
    }
}

#[cfg(test)]
mod tests;
