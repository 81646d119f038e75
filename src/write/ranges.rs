//! The new file as ranges: what `object`'s ELF writer writes (headers, small sections) is
//! kept in pieces; zero padding is left as gaps; unchanged input sections and large new
//! contents are referenced where they are. [`SparseBuffer::image`] joins them into the
//! [`Image`] that `elf::output` writes.

use crate::elf::output::{Image, Segment, Source};

/// A `WritableBuffer` that keeps the bytes written and leaves zero padding (and the ranges
/// written from elsewhere) as gaps.
#[derive(Default)]
pub(super) struct SparseBuffer {
    pieces: Vec<(usize, Vec<u8>)>,
    len: usize,
}

impl object::write::WritableBuffer for SparseBuffer {
    fn len(&self) -> usize {
        self.len
    }

    fn reserve(&mut self, _size: usize) -> std::result::Result<(), ()> {
        Ok(())
    }

    fn resize(&mut self, new_len: usize) {
        self.len = self.len.max(new_len);
    }

    fn write_bytes(&mut self, val: &[u8]) {
        // small writes join the piece before them; a large piece is not grown (growing
        // copies it: the section headers after a large ORC table cost 10 ms)
        match self.pieces.last_mut() {
            Some((at, v)) if *at + v.len() == self.len && v.len() < 1 << 16 => {
                v.extend_from_slice(val)
            }
            _ => self.pieces.push((self.len, val.to_vec())),
        }
        self.len += val.len();
    }
}

impl SparseBuffer {
    /// The image: these pieces and the `elsewhere` segments (in file order), over `input`.
    pub(super) fn image<'a>(&'a self, elsewhere: Vec<Segment<'a>>, input: &'a [u8]) -> Image<'a> {
        let mut segments: Vec<Segment<'a>> = (self.pieces.iter())
            .filter(|(_, v)| !v.is_empty())
            .map(|(at, v)| Segment {
                at: *at as u64,
                len: v.len() as u64,
                source: Source::Bytes(v),
            })
            .chain(elsewhere.into_iter().filter(|s| s.len > 0))
            .collect();
        segments.sort_unstable_by_key(|s| s.at);
        Image {
            len: self.len as u64,
            segments,
            patches: Vec::new(),
            input,
        }
    }
}

/// Appends a range of the input to `segments`, joined with the one before it when they
/// were neighbours in the input too (fewer system calls).
pub(super) fn push_input(segments: &mut Vec<Segment<'_>>, at: u64, from: u64, len: u64) {
    if let Some(Segment {
        at: last_at,
        len: last_len,
        source: Source::Input(last_from),
    }) = segments.last_mut()
        && *last_from + *last_len == from
        && *last_at + *last_len == at
    {
        *last_len += len;
        return;
    }
    segments.push(Segment {
        at,
        len,
        source: Source::Input(from),
    });
}
