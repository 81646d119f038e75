//! Offset lookups over a sorted set of distinct offsets in one section (instruction starts,
//! relocation offsets): per 256-byte block of the section, a bitmap of the offsets present
//! and the ordinal of the block's first one. A lookup reads one block record (40 bytes)
//! instead of binary-searching the records themselves (a cache miss per probe).

const SHIFT: u32 = 8;
const BLOCK_BYTES: u64 = 1 << SHIFT;

/// Sets at least this large are indexed on all threads, in runs of this many blocks.
const PARALLEL_MIN: usize = 1 << 17;
const PARALLEL_RUN: usize = 1 << 12;

#[derive(Clone, Copy, Default)]
struct Block {
    /// Ordinal of the first offset at or after the block's start.
    first: u32,
    /// Bit `k` of word `w`: offset `block start + 64 w + k` is present.
    present: [u64; 4],
}

/// The index of a set of offsets below a section size.
#[derive(Default)]
pub struct OffsetIndex {
    blocks: Vec<Block>,
    size: u64,
    /// How many offsets are indexed (those below `size`).
    count: u32,
}

impl OffsetIndex {
    /// Indexes the `n` offsets `offset(0..n)` (strictly increasing; those at or past
    /// `size` are left out). Memory is 40 bytes per 256 bytes of `size`: callers keep
    /// `size` proportionate to `n`. A large set is indexed on all threads, each filling
    /// its own run of blocks.
    pub fn new(n: usize, offset: impl Fn(usize) -> u64 + Sync, size: u64) -> Self {
        let nblocks = Self::block_count(size);
        let mut blocks = vec![Block::default(); nblocks];
        // the first ordinal at or after `off`
        let ordinal_at = |off: u64| {
            let (mut lo, mut hi) = (0, n);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) < off {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        let fill = |first_block: usize, run: &mut [Block]| {
            let mut k = ordinal_at(first_block as u64 * BLOCK_BYTES);
            for (b, block) in (first_block..).zip(run.iter_mut()) {
                block.first = k as u32;
                let end = ((b as u64 + 1) * BLOCK_BYTES).min(size);
                while k < n && offset(k) < end {
                    let byte = offset(k) & (BLOCK_BYTES - 1);
                    block.present[(byte >> 6) as usize] |= 1 << (byte & 63);
                    k += 1;
                }
            }
        };
        if n >= PARALLEL_MIN {
            use rayon::prelude::*;
            blocks
                .par_chunks_mut(PARALLEL_RUN)
                .enumerate()
                .for_each(|(c, run)| fill(c * PARALLEL_RUN, run));
        } else {
            fill(0, &mut blocks);
        }
        let count = blocks.last().map_or(0, |b| {
            b.first + b.present.iter().map(|x| x.count_ones()).sum::<u32>()
        });
        OffsetIndex {
            blocks,
            size,
            count,
        }
    }

    /// Indexes the offsets whose bits are set in `bits` (bit `k % 64` of word `k / 64`:
    /// offset `k` is present; bits at or past `size` must be clear, and `bits` must cover
    /// the whole blocks of `size`: [`OffsetIndex::words`] words). The same index as
    /// [`OffsetIndex::new`] of those offsets, without reading them one by one.
    pub fn from_bits(bits: &[u64], size: u64) -> Self {
        let nblocks = Self::block_count(size);
        let mut blocks = Vec::with_capacity(nblocks);
        let mut count = 0u32;
        for b in 0..nblocks {
            let present = match bits.get(4 * b..4 * b + 4) {
                Some(&[a, b, c, d]) => [a, b, c, d],
                _ => [0; 4],
            };
            blocks.push(Block {
                first: count,
                present,
            });
            count += present.iter().map(|x| x.count_ones()).sum::<u32>();
        }
        OffsetIndex {
            blocks,
            size,
            count,
        }
    }

    /// The number of bit words [`OffsetIndex::from_bits`] reads for `size`.
    pub fn words(size: u64) -> usize {
        Self::block_count(size) * 4
    }

    /// The number of blocks that cover `size` bytes.
    fn block_count(size: u64) -> usize {
        usize::try_from(size.div_ceil(BLOCK_BYTES)).unwrap_or(0)
    }

    /// The ordinal of `off`, if it is one of the offsets.
    pub fn find(&self, off: u64) -> Option<u32> {
        let block = self.blocks.get(usize::try_from(off >> SHIFT).ok()?)?;
        let byte = off & (BLOCK_BYTES - 1);
        let (w, bit) = ((byte >> 6) as usize, byte & 63);
        (block.present[w] >> bit & 1 != 0).then(|| Self::ordinal(block, w, bit))
    }

    /// The ordinal of the lowest offset in `[off, off + len)`.
    pub fn first_in(&self, off: u64, len: u64) -> Option<u32> {
        let end = off.saturating_add(len).min(self.size);
        let mut pos = off;
        while pos < end {
            let block = &self.blocks[(pos >> SHIFT) as usize];
            let w = ((pos >> 6) & 3) as usize;
            let word = block.present[w] & (!0u64 << (pos & 63));
            if word != 0 {
                let bit = u64::from(word.trailing_zeros());
                return ((pos & !63) + bit < end).then(|| Self::ordinal(block, w, bit));
            }
            pos = (pos | 63) + 1;
        }
        None
    }

    /// How many of the offsets are below `off`.
    pub fn rank(&self, off: u64) -> u32 {
        if off >= self.size {
            return self.count;
        }
        let byte = off & (BLOCK_BYTES - 1);
        Self::ordinal(
            &self.blocks[(off >> SHIFT) as usize],
            (byte >> 6) as usize,
            byte & 63,
        )
    }

    fn ordinal(block: &Block, w: usize, bit: u64) -> u32 {
        let before: u32 = block.present[..w].iter().map(|x| x.count_ones()).sum();
        block.first + before + (block.present[w] & ((1u64 << bit) - 1)).count_ones()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both lookups answer as a search of the sorted offsets does, at every offset and
    /// length, for dense, sparse and empty sets (and offsets at or past the size dropped).
    #[test]
    fn lookups_match_a_search() {
        let mut rng = crate::testing::XorShift::new(0x853c_49e6_748f_ea9b);
        for round in 0..200 {
            let size = [0, 1, 63, 64, 255, 256, 700, 3000][round % 8];
            let density = 1 + rng.below(40);
            let offsets: Vec<u64> = (0..size + 5).filter(|_| rng.below(density) == 0).collect();
            let ix = OffsetIndex::new(offsets.len(), |k| offsets[k], size);
            let kept: Vec<u64> = offsets.iter().copied().filter(|&o| o < size).collect();
            for off in 0..size + 300 {
                let want = kept.iter().position(|&o| o == off).map(|p| p as u32);
                assert_eq!(ix.find(off), want, "round {round} find {off}");
                let below = kept.iter().filter(|&&o| o < off).count() as u32;
                assert_eq!(ix.rank(off), below, "round {round} rank {off}");
                for len in [0, 1, 2, 15, 64, 65, 300] {
                    let want = kept
                        .iter()
                        .position(|&o| o >= off && o < off + len)
                        .map(|p| p as u32);
                    assert_eq!(ix.first_in(off, len), want, "round {round} {off}+{len}");
                }
            }
        }
    }

    /// An index built from a bitmap is the index of the offsets the bitmap holds.
    #[test]
    fn bitmap_index_is_the_index_of_its_offsets() {
        let mut rng = crate::testing::XorShift::new(0x2545_f491_4f6c_dd1d);
        for round in 0..100 {
            let size = [0, 1, 63, 64, 255, 256, 257, 700, 3000, 70_000][round % 10];
            let density = 1 + rng.below(12);
            let offsets: Vec<u64> = (0..size).filter(|_| rng.below(density) == 0).collect();
            let mut bits = vec![0u64; OffsetIndex::words(size)];
            for &o in &offsets {
                bits[(o / 64) as usize] |= 1 << (o % 64);
            }
            let a = OffsetIndex::new(offsets.len(), |k| offsets[k], size);
            let b = OffsetIndex::from_bits(&bits, size);
            assert_eq!(a.count, b.count, "round {round}");
            assert_eq!(a.blocks.len(), b.blocks.len(), "round {round}");
            for (x, y) in a.blocks.iter().zip(&b.blocks) {
                assert_eq!((x.first, x.present), (y.first, y.present), "round {round}");
            }
        }
    }

    /// A set large enough to be indexed on several threads answers like a search too
    /// (runs of blocks meet without gaps or double counts).
    #[test]
    fn parallel_index_matches_a_search() {
        let mut rng = crate::testing::XorShift::new(0x9e37_79b9_7f4a_7c15);
        let size = 3 << 20;
        let offsets: Vec<u64> = (0..size).filter(|_| rng.below(8) == 0).collect();
        assert!(offsets.len() >= PARALLEL_MIN);
        let ix = OffsetIndex::new(offsets.len(), |k| offsets[k], size);
        for _ in 0..200_000 {
            let off = rng.below(size + 1000);
            let len = rng.below(20);
            let p = offsets.partition_point(|&o| o < off);
            let want_find = (offsets.get(p) == Some(&off)).then_some(p as u32);
            let want_first = offsets.get(p).filter(|&&o| o < off + len).map(|_| p as u32);
            assert_eq!(ix.find(off), want_find, "find {off}");
            assert_eq!(ix.rank(off), p.min(offsets.len()) as u32, "rank {off}");
            assert_eq!(ix.first_in(off, len), want_first, "{off}+{len}");
        }
    }
}
