//! Input ranges recoded on their way to the new file ([`Source::Recoded`]): read in chunks
//! of whole records, recoded, handed over, so that a section rewritten record by record (the
//! relocations renumbered when symbols move) costs a chunk of memory, not its size.

use super::{Segment, Source};
use crate::error::{Result, WriteError};

/// How a recoded range's bytes change: record by record, each record on its own.
pub trait Recode: std::fmt::Debug {
    /// The size of a record; a recoded segment is whole records.
    fn record_len(&self) -> usize;
    /// Recodes `records` (whole records) in place.
    fn recode(&self, records: &mut [u8]) -> Result<()>;
}

/// The bytes read, recoded and handed over at once (rounded down to whole records): the
/// buffer size of every other copy to the new file.
const CHUNK: u64 = super::COPY_CHUNK;

/// The bytes of recoded segment `s` in `[a, b)` (file offsets inside it), in chunks of at
/// most [`CHUNK`] bytes at record boundaries: the input of each chunk is read with
/// `read(input offset, buffer)` (whole records: a range starting or ending inside a record
/// reads all of it), recoded, and its part inside `[a, b)` handed to `put(file offset,
/// bytes)` (which may change them: patches are written over them).
pub(super) fn each_chunk(
    s: &Segment<'_>,
    a: u64,
    b: u64,
    read: &mut dyn FnMut(u64, &mut [u8]) -> Result<()>,
    put: &mut dyn FnMut(u64, &mut [u8]) -> Result<()>,
) -> Result<()> {
    let Source::Recoded(from, code) = s.source else {
        return Err(WriteError::InputChanged.into());
    };
    let record = code.record_len().max(1) as u64;
    if s.len % record != 0 || a < s.at || b > s.at + s.len {
        return Err(WriteError::InputChanged.into());
    }
    let step = record * (CHUNK / record).max(1);
    let mut buf = Vec::new();
    let mut x = a;
    while x < b {
        let skip = x - s.at;
        let lo = skip - skip % record;
        let hi = (lo - lo % step + step).min(s.len);
        let end = b.min(s.at + hi);
        let n = (hi - lo) as usize;
        if buf.len() < n {
            buf.resize(n, 0);
        }
        let records = &mut buf[..n];
        read(from + lo, records)?;
        code.recode(records)?;
        put(
            x,
            &mut records[(skip - lo) as usize..(end - s.at - lo) as usize],
        )?;
        x = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Adds one to each 4-byte record (all different in the input: a record read from the
    /// wrong place, or recoded twice, shows).
    #[derive(Debug)]
    struct AddOne;

    impl Recode for AddOne {
        fn record_len(&self) -> usize {
            4
        }
        fn recode(&self, records: &mut [u8]) -> Result<()> {
            for r in records.chunks_exact_mut(4) {
                let v = u32::from_le_bytes([r[0], r[1], r[2], r[3]]) + 1;
                r.copy_from_slice(&v.to_le_bytes());
            }
            Ok(())
        }
    }

    /// Any sub-range, chunk boundaries included, gives the bytes of the whole segment
    /// recoded at once.
    #[test]
    fn every_range_is_the_recoded_bytes() {
        let records = 3 * CHUNK as usize / 4 + 5;
        let input: Vec<u8> = (0..records as u32)
            .flat_map(|i| (i * 7).to_le_bytes())
            .collect();
        let mut whole = input.clone();
        AddOne.recode(&mut whole).unwrap();
        let s = Segment {
            at: 1000,
            len: input.len() as u64,
            source: Source::Recoded(0, &AddOne),
        };
        let len = input.len() as u64;
        for (a, b) in [
            (0, len),
            (1, 2),
            (3, 9),
            (CHUNK - 2, CHUNK + 3),
            (CHUNK, 2 * CHUNK + 1),
            (len - 5, len),
        ] {
            let mut got = vec![0u8; (b - a) as usize];
            let mut reads = 0;
            let mut read = |at: u64, buf: &mut [u8]| {
                reads += 1;
                assert_eq!(at % 4, 0);
                buf.copy_from_slice(&input[at as usize..at as usize + buf.len()]);
                Ok(())
            };
            let mut put = |at: u64, bytes: &mut [u8]| {
                let k = (at - 1000 - a) as usize;
                got[k..k + bytes.len()].copy_from_slice(bytes);
                Ok(())
            };
            each_chunk(&s, 1000 + a, 1000 + b, &mut read, &mut put).unwrap();
            assert_eq!(got, whole[a as usize..b as usize], "[{a}, {b})");
            assert!(reads <= (b - a).div_ceil(CHUNK) as usize + 1, "[{a}, {b})");
        }
    }

    #[test]
    fn ranges_outside_the_segment_are_refused() {
        let s = Segment {
            at: 0,
            len: 8,
            source: Source::Recoded(0, &AddOne),
        };
        let mut read = |_: u64, _: &mut [u8]| Ok(());
        let mut put = |_: u64, _: &mut [u8]| Ok(());
        assert!(each_chunk(&s, 0, 9, &mut read, &mut put).is_err());
        let s = Segment { len: 6, ..s };
        assert!(each_chunk(&s, 0, 4, &mut read, &mut put).is_err());
    }
}
