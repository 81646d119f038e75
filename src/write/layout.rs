//! The file layout of libelf (`ELF_C_RDWR` without `ELF_F_LAYOUT`): the ELF header, then
//! every section in index order at the next multiple of its alignment (no file space for
//! NOBITS), gaps zero-filled, then the section header table at the next multiple of 8. An
//! `sh_addralign` of 0 becomes 1, as libelf writes it.

use std::borrow::Cow;

use object::Endianness;
use object::elf;
use object::read::elf::{FileHeader as _, SectionHeader as _};
use object::write::elf::Writer;

use super::ranges::{SparseBuffer, push_input};
use super::records::Renumber;
use crate::elf::output::{Segment, Source};
use crate::elf::{LE, Object, SectionHeader};
use crate::error::{Error, Result, WriteError};

/// New section contents at least this large are written to the file from where they are.
const DIRECT_MIN_BYTES: usize = 1 << 16;

/// One output section: its header (offset filled in at layout) and its bytes.
pub(super) struct OutSection<'data> {
    pub(super) header: SectionHeader,
    /// The bytes (with `recode`: the input bytes it recodes).
    pub(super) data: Cow<'data, [u8]>,
    /// Relocation records renumbered on their way to the file.
    pub(super) recode: Option<Renumber>,
}

impl OutSection<'_> {
    /// The bytes the section takes in the file.
    fn file_len(&self) -> usize {
        if self.header.sh_type(LE) == elf::SHT_NOBITS {
            0
        } else {
            self.data.len()
        }
    }
}

/// The output sections with their final headers and file offsets (`out[0]` is the null
/// section), laid out as libelf's `elf_update()` does.
pub(super) struct Layout<'data> {
    out: Vec<OutSection<'data>>,
    pub(super) offsets: Vec<usize>,
    pub(super) total: usize,
    shstrndx: u32,
    /// For each kept input section with file bytes: (input offset, size, output offset).
    kept: Vec<(u64, u64, u64)>,
}

impl<'data> Layout<'data> {
    /// `input_offsets[i]`: the input file range of output section `i` (an input section
    /// kept), for patches made against the input.
    pub(super) fn new(
        mut out: Vec<OutSection<'data>>,
        shstrndx: u32,
        input_offsets: &[Option<(u64, u64)>],
    ) -> Result<Self> {
        // The layout first, with checked arithmetic: a hostile alignment must give an
        // error, not an overflow or an allocation failure inside the writer.
        let too_large = || Error::malformed("the output would be larger than the address space");
        let mut offsets = vec![0usize; out.len()];
        let mut kept = Vec::new();
        let mut end = size_of::<crate::elf::FileHeader>();
        for (i, s) in out.iter_mut().enumerate().skip(1) {
            let align = s.header.sh_addralign(LE).max(1);
            if !align.is_power_of_two() {
                return Err(Error::malformed(format!(
                    "section {i} has alignment {align}, not a power of two"
                )));
            }
            let align = usize::try_from(align).map_err(|_| too_large())?;
            let len = s.file_len();
            offsets[i] = align_up(end, align).ok_or_else(too_large)?;
            end = offsets[i].checked_add(len).ok_or_else(too_large)?;
            s.header.sh_offset.set(LE, offsets[i] as u64);
            s.header.sh_addralign.set(LE, align as u64);
            if let Some(&Some((from, size))) = input_offsets.get(i)
                && size > 0
            {
                kept.push((from, size, offsets[i] as u64));
            }
        }
        let total = align_up(end, 8)
            .and_then(|shoff| shoff.checked_add(out.len().checked_mul(size_of::<SectionHeader>())?))
            .ok_or_else(too_large)?;
        Ok(Layout {
            out,
            offsets,
            total,
            shstrndx,
            kept,
        })
    }

    /// Writes the file through `object`'s writer into `buffer`, except the sections that
    /// are unchanged slices of `input` and large new contents: those come back as
    /// segments, to be written from where they are.
    pub(super) fn emit<'s>(
        &'s self,
        obj: &Object<'_>,
        buffer: &mut SparseBuffer,
    ) -> Result<Vec<Segment<'s>>> {
        let out = &self.out;
        let source = obj.data();
        let mut elsewhere: Vec<Segment<'s>> = Vec::new();
        let input = obj.header();
        let mut w = Writer::new(Endianness::Little, true, buffer);
        w.reserve_file_header();
        for i in 1..out.len() {
            if i as u32 == self.shstrndx {
                w.reserve_shstrtab_section_index_with_name(b".shstrtab");
            } else {
                w.reserve_section_index();
            }
        }
        for (i, s) in out.iter().enumerate().skip(1) {
            let at = w.reserve(s.file_len(), s.header.sh_addralign(LE) as usize);
            debug_assert_eq!(at, self.offsets[i]);
        }
        w.reserve_section_headers();
        debug_assert_eq!(w.reserved_len(), self.total);
        w.write_file_header(&object::write::elf::FileHeader {
            os_abi: input.e_ident.os_abi,
            abi_version: input.e_ident.abi_version,
            e_type: input.e_type(LE),
            e_machine: input.e_machine(LE),
            e_entry: input.e_entry(LE),
            e_flags: input.e_flags(LE),
        })
        .map_err(|e| WriteError::Header(e.to_string()))?;
        for (i, s) in out.iter().enumerate().skip(1) {
            if s.header.sh_type(LE) == elf::SHT_NOBITS {
                continue;
            }
            let to = self.offsets[i];
            w.pad_until(to);
            let from = match &s.data {
                Cow::Borrowed(d) if !d.is_empty() => {
                    let start = (d.as_ptr() as usize).wrapping_sub(source.as_ptr() as usize);
                    (start <= source.len() && d.len() <= source.len() - start).then_some(start)
                }
                _ => None,
            };
            let len = s.data.len();
            match (from, &s.recode) {
                (Some(from), Some(recode)) => {
                    elsewhere.push(Segment {
                        at: to as u64,
                        len: len as u64,
                        source: Source::Recoded(from as u64, recode),
                    });
                    w.pad_until(to + len);
                }
                (None, Some(_)) if len > 0 => {
                    return Err(Error::malformed(
                        "renumbered relocations not from the input",
                    ));
                }
                (Some(from), None) => {
                    push_input(&mut elsewhere, to as u64, from as u64, len as u64);
                    w.pad_until(to + len);
                }
                _ if len >= DIRECT_MIN_BYTES => {
                    elsewhere.push(Segment {
                        at: to as u64,
                        len: len as u64,
                        source: Source::Bytes(&s.data),
                    });
                    w.pad_until(to + len);
                }
                _ => w.write(&s.data),
            }
        }
        w.write_null_section_header();
        for s in out.iter().skip(1) {
            w.write(object::bytes_of(&s.header));
        }
        Ok(elsewhere)
    }

    /// The output offset of input file offset `at` (inside an input section that is kept,
    /// at the same place inside it).
    pub(super) fn output_offset(&self, at: u64) -> Option<u64> {
        self.kept
            .iter()
            .find(|&&(from, len, _)| at >= from && at < from + len)
            .map(|&(from, _, to)| to + (at - from))
    }
}

fn align_up(offset: usize, align: usize) -> Option<usize> {
    Some(offset.checked_add(align - 1)? & !(align - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::records::header_of;

    fn section(sh_type: u32, size: usize, align: u64) -> OutSection<'static> {
        OutSection {
            header: header_of(0, sh_type, 0, size as u64, 0, 0, align, 0),
            data: Cow::Owned(vec![0xaa; size]),
            recode: None,
        }
    }

    /// libelf's rule: each section at the next multiple of its alignment after the one
    /// before (0 counts as 1), NOBITS taking no room, the headers at the next multiple of 8.
    #[test]
    fn sections_in_index_order_at_their_alignment() {
        let out = vec![
            section(elf::SHT_NULL, 0, 0),
            section(elf::SHT_PROGBITS, 3, 16),
            section(elf::SHT_NOBITS, 100, 64),
            section(elf::SHT_PROGBITS, 5, 0),
            section(elf::SHT_RELA, 24, 8),
        ];
        let kept = [None, Some((0x1000, 3)), None, Some((0x2000, 5)), None];
        let layout = Layout::new(out, 0, &kept).unwrap();
        // header 64 → 64; 64+3=67 → NOBITS at 128 (no room) → 128; 133 → 136; 160 → 160
        assert_eq!(layout.offsets, [0, 64, 128, 128, 136]);
        assert_eq!(layout.total, 160 + 5 * 64);
        assert_eq!(layout.out[3].header.sh_addralign(LE), 1);
        assert_eq!(layout.out[2].header.sh_offset(LE), 128);
        // a patch at an input offset lands at the same place in the kept section
        assert_eq!(layout.output_offset(0x1002), Some(66));
        assert_eq!(layout.output_offset(0x2004), Some(132));
        assert_eq!(layout.output_offset(0x2005), None);
    }

    #[test]
    fn hostile_alignments_are_errors() {
        let out = vec![
            section(elf::SHT_NULL, 0, 0),
            section(elf::SHT_PROGBITS, 1, 3),
        ];
        assert!(Layout::new(out, 0, &[]).is_err());
        let out = vec![
            section(elf::SHT_NULL, 0, 0),
            section(elf::SHT_PROGBITS, 1, 1 << 63),
            section(elf::SHT_PROGBITS, 1, 1 << 63),
        ];
        assert!(Layout::new(out, 0, &[]).is_err());
    }

    #[test]
    fn neighbouring_input_ranges_join() {
        let mut segments = Vec::new();
        push_input(&mut segments, 100, 1000, 10);
        push_input(&mut segments, 110, 1010, 5); // neighbours in both files
        push_input(&mut segments, 120, 1015, 5); // a gap in the output
        assert_eq!(segments.len(), 2);
        assert_eq!((segments[0].at, segments[0].len), (100, 15));
    }
}
