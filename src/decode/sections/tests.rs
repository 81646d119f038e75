//! Tests of section decoding: in parts on several threads as in one piece, the address
//! index from the starts the decoder marks, the stored stack operations.

use super::*;

fn table(data: &[u8], pieces: usize, overlap: usize) -> (InsnTable, Option<DecodeError>) {
    split_table(data, pieces, overlap, usize::MAX)
}

fn split_table(
    data: &[u8],
    pieces: usize,
    overlap: usize,
    front_parts: usize,
) -> (InsnTable, Option<DecodeError>) {
    let mut t = InsnTable::default();
    let r = decode_section_split(SecId(1), data, pieces, overlap, front_parts, &mut t).err();
    (t, r)
}

/// The emulate prefix is `ud2` and "xen" or "kvm" with an instruction after it; a
/// decode of one keeps offsets and lengths as the kernel's decoder gives them.
#[test]
fn emulate_prefixes() {
    assert_eq!(emulate_prefix_len(b"\x0f\x0bxen\x90"), 5);
    assert_eq!(emulate_prefix_len(b"\x0f\x0bkvm\x0f\xa2"), 5);
    assert_eq!(emulate_prefix_len(b"\x0f\x0bxen"), 0, "nothing after it");
    assert_eq!(emulate_prefix_len(b"\x0f\x0bxex\x90"), 0);
    assert_eq!(emulate_prefix_len(b"\x0f\x0b\x90\x90\x90\x90"), 0);
    assert_eq!(emulate_prefix_len(b""), 0);
    // ud2; "xen"; cpuid (0f a2), then nop: two instructions, the first 7 bytes
    let (t, err) = table(b"\x0f\x0bxen\x0f\xa2\x90", 1, 0);
    assert!(err.is_none());
    let got: Vec<(u32, u8)> = t.insns.iter().map(|i| (i.offset, i.len)).collect();
    assert_eq!(got, [(0, 7), (7, 1)]);
}

/// The address index finds exactly the decoded instruction starts, at every byte of a
/// section (and past its end), in sections of several blocks with a second section
/// before them in the table.
#[test]
fn address_index_finds_instruction_starts() {
    let mut rng = crate::testing::XorShift::new(0x9e37_79b9_7f4a_7c15);
    for round in 0..50 {
        let mut t = InsnTable {
            by_section: vec![(0, 0); 3],
            starts: (0..3).map(|_| OffsetIndex::default()).collect(),
            ..InsnTable::default()
        };
        for sec in [SecId(2), SecId(1)] {
            // one-, two- and some longer instructions, a few sections' worth of blocks
            let mut data = Vec::new();
            while data.len() < 100 + round * 37 {
                match rng.next() % 4 {
                    0 => data.push(0x90),
                    1 => data.extend_from_slice(&[0x5d, 0xc3]),
                    2 => data.extend_from_slice(&[0x48, 0x83, 0xec, 0x18]),
                    _ => data.extend_from_slice(&[0x0f, 0x1f, 0x80, 0, 0, 0, 0]),
                }
            }
            let start = t.insns.len() as u32;
            // one piece, or several that meet (the starts each found, where it is the
            // true stream, make the index)
            let pieces = 1 + round % 3;
            let bits = decode_section_split(sec, &data, pieces, 16, 1, &mut t).unwrap();
            t.by_section[sec.0 as usize] = (start, t.insns.len() as u32);
            t.starts[sec.0 as usize] = OffsetIndex::from_bits(&bits, data.len() as u64);
            let from_bits: Vec<_> = (0..data.len() as u64 + 300).map(|o| t.at(sec, o)).collect();
            t.index_starts(sec, data.len() as u64);
            for (o, &b) in from_bits.iter().enumerate() {
                assert_eq!(b, t.at(sec, o as u64), "round {round} {o}: the two indexes");
            }
            for offset in 0..data.len() as u64 + 300 {
                let want = t
                    .section_range(sec)
                    .find(|&k| u64::from(t.insns[k as usize].offset) == offset);
                assert_eq!(
                    t.at(sec, offset),
                    want.map(InsnId),
                    "round {round} {offset}"
                );
            }
        }
    }
}

/// Stored stack operations read back as they were made.
#[test]
fn packed_ops_round_trip() {
    let ops = [
        Op::Reg(4),
        Op::RegIndirect(5, -16),
        Op::Mem,
        Op::Push,
        Op::PushF,
        Op::Const,
        Op::Pop,
        Op::PopF,
        Op::Add(4, i32::MIN),
        Op::And(4, -16),
    ];
    for dest in ops {
        for src in ops {
            if dest.has_value() && src.has_value() {
                continue;
            }
            let op = StackOp { dest, src };
            assert_eq!(PackedOp::from(op).get(), op);
        }
    }
}

/// Decoding in pieces gives the linear decode's instructions, stack operations, notes,
/// branch lists and first error, whether the pieces meet or not.
#[test]
fn pieces_decode_like_one() {
    let mut rng = crate::testing::XorShift::new(0x853c_49e6_748f_ea9b);
    let mut rand = move || rng.next();
    // code-like bytes: common opcodes with random operands, some junk, some padding
    let snippets: [&[u8]; 11] = [
        &[0xff, 0xe0],
        &[0x55],
        &[0x48, 0x89, 0xe5],
        &[0x5d, 0xc3],
        &[0xe8, 1, 2, 3, 4],
        &[0x74, 0x05],
        &[0x0f, 0x0b, b'x', b'e', b'n', 0x90],
        &[0xcc, 0xcc, 0xcc],
        &[0x48, 0x83, 0xec, 0x18],
        &[0x66, 0x0f, 0x1f, 0x44, 0, 0],
        &[0xff, 0xff],
    ];
    for round in 0..300 {
        let mut data = Vec::new();
        while data.len() < 40 + (round % 7) * 97 {
            if rand() % 9 == 0 {
                data.push(rand() as u8);
            } else {
                data.extend_from_slice(snippets[rand() as usize % snippets.len()]);
            }
        }
        let (want, want_err) = table(&data, 1, 0);
        // the first thread stopping after 1 or 2 parts, or going on while it can
        for (pieces, front_parts) in [(2, 1), (3, 1), (3, 2), (5, 2), (2, 99), (5, 99)] {
            for overlap in [0, 1, 7, 64] {
                let (got, got_err) = split_table(&data, pieces, overlap, front_parts);
                let ctx =
                    format!("round {round} pieces {pieces} front {front_parts} overlap {overlap}");
                assert_eq!(got_err, want_err, "{ctx}");
                if want_err.is_some() {
                    continue;
                }
                let key = |t: &InsnTable| {
                    t.insns
                        .iter()
                        .map(|i| (i.offset, i.len, i.kind, i.immediate, i.flags))
                        .collect::<Vec<_>>()
                };
                assert_eq!(key(&got), key(&want), "{ctx}");
                for k in 0..want.insns.len() {
                    let id = InsnId(k as u32);
                    assert_eq!(got.ops_of(id), want.ops_of(id), "{ctx}");
                }
                assert_eq!(got.notes, want.notes, "{ctx}");
                assert_eq!(got.branches, want.branches, "{ctx}");
                assert_eq!(got.irets, want.irets, "{ctx}");
                assert_eq!(got.indirect_jumps, want.indirect_jumps, "{ctx}");
            }
        }
    }
}
