//! The ORC entry (`struct orc_entry`, 6 bytes) in both kernel ABIs in use.
//!
//! Byte layout (little-endian x86-64):
//!
//! | bytes | 6.12 ABI (Linux 6.4 and later)          | 6.1 ABI (before 6.4)               |
//! |-------|-----------------------------------------|------------------------------------|
//! | 0–1   | `sp_offset` (s16)                       | same                               |
//! | 2–3   | `bp_offset` (s16)                       | same                               |
//! | 4     | `sp_reg` bits 0–3, `bp_reg` bits 4–7    | same                               |
//! | 5     | `type` bits 0–2, `signal` bit 3         | `type` bits 0–1, `end` bit 2       |
//!
//! Decoding keeps every bit (unknown registers and types included, and the unused high bits
//! of byte 5), so `decode` followed by `encode` gives back the same bytes.

use std::fmt;

/// Which kernel ORC ABI an object uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrcAbi {
    /// Linux before 6.4 (Debian's 6.1): 2-bit type CALL/REGS/REGS_PARTIAL, `end` bit,
    /// no `.orc_header`.
    V6_1,
    /// Linux 6.4 and later (6.12): 3-bit type with UNDEFINED/END_OF_STACK, `signal` bit,
    /// `.orc_header` carrying a hash of the ABI.
    V6_12,
}

impl OrcAbi {
    /// The ABI a kernel version (major, minor) uses.
    pub fn for_kernel(major: u32, minor: u32) -> Self {
        if (major, minor) < (6, 4) {
            OrcAbi::V6_1
        } else {
            OrcAbi::V6_12
        }
    }
}

impl std::str::FromStr for OrcAbi {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "6.1" => Ok(OrcAbi::V6_1),
            "6.12" => Ok(OrcAbi::V6_12),
            _ => Err(format!("unknown ORC ABI '{s}' (expected 6.1 or 6.12)")),
        }
    }
}

impl fmt::Display for OrcAbi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OrcAbi::V6_1 => "6.1",
            OrcAbi::V6_12 => "6.12",
        })
    }
}

/// The 20 bytes of `.orc_header` for the 6.12 ABI: a SHA-1 of the ORC definitions in
/// `arch/x86/include/asm/orc_types.h`, as `scripts/orc_hash.sh` computes it.
pub const ORC_HEADER_6_12: [u8; 20] = [
    0xfe, 0x5d, 0x32, 0xbf, 0x58, 0x1b, 0xd6, 0x3b, 0x2c, 0xa9, 0xa5, 0xc6, 0x5b, 0xa5, 0xa6, 0x25,
    0xea, 0xb3, 0xfe, 0x24,
];

/// Size of one `struct orc_entry`.
pub const ORC_ENTRY_SIZE: usize = 6;

/// An `ORC_REG_*` value (4 bits). Values 10–15 are kept as they are and print as `?`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrcReg(pub u8);

impl OrcReg {
    pub const UNDEFINED: OrcReg = OrcReg(0);
    pub const PREV_SP: OrcReg = OrcReg(1);
    pub const DX: OrcReg = OrcReg(2);
    pub const DI: OrcReg = OrcReg(3);
    pub const BP: OrcReg = OrcReg(4);
    pub const SP: OrcReg = OrcReg(5);
    pub const R10: OrcReg = OrcReg(6);
    pub const R13: OrcReg = OrcReg(7);
    pub const BP_INDIRECT: OrcReg = OrcReg(8);
    pub const SP_INDIRECT: OrcReg = OrcReg(9);

    /// The name objtool's dump prints before the offset (`?` when unknown).
    pub fn name(self) -> &'static str {
        match self {
            OrcReg::PREV_SP => "prevsp",
            OrcReg::DX => "dx",
            OrcReg::DI => "di",
            OrcReg::BP => "bp",
            OrcReg::SP => "sp",
            OrcReg::R10 => "r10",
            OrcReg::R13 => "r13",
            OrcReg::BP_INDIRECT => "bp(ind)",
            OrcReg::SP_INDIRECT => "sp(ind)",
            _ => "?",
        }
    }
}

/// The frame type of an entry, in ABI-neutral terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrcType {
    /// 6.12 only: unwind blind spot (in 6.1, "undefined" is sp_reg UNDEFINED with type CALL).
    Undefined,
    /// 6.12 only: bottom of the stack (in 6.1, the `end` bit).
    EndOfStack,
    Call,
    Regs,
    RegsPartial,
    /// A type value the ABI does not define (6.12: 5–7; 6.1: 3).
    Unknown(u8),
}

impl OrcType {
    fn from_raw(abi: OrcAbi, raw: u8) -> Self {
        match (abi, raw) {
            (OrcAbi::V6_12, 0) => OrcType::Undefined,
            (OrcAbi::V6_12, 1) => OrcType::EndOfStack,
            (OrcAbi::V6_12, 2) | (OrcAbi::V6_1, 0) => OrcType::Call,
            (OrcAbi::V6_12, 3) | (OrcAbi::V6_1, 1) => OrcType::Regs,
            (OrcAbi::V6_12, 4) | (OrcAbi::V6_1, 2) => OrcType::RegsPartial,
            (_, r) => OrcType::Unknown(r),
        }
    }

    /// The raw type field; `None` if this ABI has no such type.
    fn to_raw(self, abi: OrcAbi) -> Option<u8> {
        Some(match (abi, self) {
            (OrcAbi::V6_12, OrcType::Undefined) => 0,
            (OrcAbi::V6_12, OrcType::EndOfStack) => 1,
            (OrcAbi::V6_12, OrcType::Call) => 2,
            (OrcAbi::V6_12, OrcType::Regs) => 3,
            (OrcAbi::V6_12, OrcType::RegsPartial) => 4,
            (OrcAbi::V6_1, OrcType::Call) => 0,
            (OrcAbi::V6_1, OrcType::Regs) => 1,
            (OrcAbi::V6_1, OrcType::RegsPartial) => 2,
            (_, OrcType::Unknown(r)) => r,
            (OrcAbi::V6_1, OrcType::Undefined | OrcType::EndOfStack) => return None,
        })
    }

    /// The spelling of objtool's dump.
    pub fn name(self) -> &'static str {
        match self {
            OrcType::Undefined => "(und)",
            OrcType::EndOfStack => "end",
            OrcType::Call => "call",
            OrcType::Regs => "regs",
            OrcType::RegsPartial => "regs (partial)",
            OrcType::Unknown(_) => "?",
        }
    }
}

/// One decoded ORC entry.
///
/// `flag` is the 6.12 `signal` bit or the 6.1 `end` bit, whichever the ABI has; `spare`
/// holds the unused high bits of byte 5 (always 0 in entries objtool writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OrcEntry {
    pub sp_offset: i16,
    pub bp_offset: i16,
    pub sp_reg: OrcReg,
    pub bp_reg: OrcReg,
    pub ty: OrcType,
    pub flag: bool,
    pub spare: u8,
}

impl OrcEntry {
    /// The all-zero entry: 6.12 `type:(und)`, 6.1 "sp undefined" (objtool's terminator).
    pub const ZERO: [u8; ORC_ENTRY_SIZE] = [0; ORC_ENTRY_SIZE];

    /// Decodes 6 bytes.
    pub fn decode(abi: OrcAbi, b: [u8; ORC_ENTRY_SIZE]) -> Self {
        let (type_bits, flag_bit) = match abi {
            OrcAbi::V6_12 => (3, 3),
            OrcAbi::V6_1 => (2, 2),
        };
        let b5 = b[5];
        OrcEntry {
            sp_offset: i16::from_le_bytes([b[0], b[1]]),
            bp_offset: i16::from_le_bytes([b[2], b[3]]),
            sp_reg: OrcReg(b[4] & 0xf),
            bp_reg: OrcReg(b[4] >> 4),
            ty: OrcType::from_raw(abi, b5 & ((1 << type_bits) - 1)),
            flag: b5 & (1 << flag_bit) != 0,
            spare: b5 >> (flag_bit + 1),
        }
    }

    /// Encodes into 6 bytes; `None` when a field does not fit the ABI (a 6.12-only type in
    /// the 6.1 ABI, a register above 15, an unknown type value wider than the type field).
    pub fn encode(&self, abi: OrcAbi) -> Option<[u8; ORC_ENTRY_SIZE]> {
        let (type_bits, flag_bit) = match abi {
            OrcAbi::V6_12 => (3u8, 3u8),
            OrcAbi::V6_1 => (2, 2),
        };
        let ty = self.ty.to_raw(abi)?;
        if ty >> type_bits != 0
            || self.sp_reg.0 > 15
            || self.bp_reg.0 > 15
            || u16::from(self.spare) << (flag_bit + 1) > 0xff
        {
            return None;
        }
        let sp = self.sp_offset.to_le_bytes();
        let bp = self.bp_offset.to_le_bytes();
        Some([
            sp[0],
            sp[1],
            bp[0],
            bp[1],
            self.sp_reg.0 | (self.bp_reg.0 << 4),
            ty | (u8::from(self.flag) << flag_bit) | (self.spare << (flag_bit + 1)),
        ])
    }

    /// The entry text of objtool's `--dump=orc`, without the address and newline:
    /// 6.12 `type:call sp:sp+8 bp:(und) signal:0`, 6.1 `sp:sp+8 bp:(und) type:call end:0`.
    pub fn dump_text(&self, abi: OrcAbi) -> DumpText<'_> {
        DumpText { entry: self, abi }
    }
}

/// Formats an entry the way objtool's dump does; see [`OrcEntry::dump_text`].
pub struct DumpText<'a> {
    entry: &'a OrcEntry,
    abi: OrcAbi,
}

struct RegText {
    reg: OrcReg,
    offset: i16,
}

impl fmt::Display for RegText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let off = i32::from(self.offset);
        match self.reg {
            OrcReg::UNDEFINED => f.write_str("(und)"),
            OrcReg::BP_INDIRECT => write!(f, "(bp{off:+})"),
            OrcReg::SP_INDIRECT => write!(f, "(sp){off:+}"),
            reg => write!(f, "{}{off:+}", reg.name()),
        }
    }
}

impl fmt::Display for DumpText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.entry;
        let abi = self.abi;
        let sp = RegText {
            reg: e.sp_reg,
            offset: e.sp_offset,
        };
        let bp = RegText {
            reg: e.bp_reg,
            offset: e.bp_offset,
        };
        let flag = u8::from(e.flag);
        match abi {
            OrcAbi::V6_12 => write!(f, "type:{} sp:{sp} bp:{bp} signal:{flag}", e.ty.name()),
            OrcAbi::V6_1 => write!(f, " sp:{sp} bp:{bp} type:{} end:{flag}", e.ty.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(abi: OrcAbi, b: [u8; 6]) -> String {
        OrcEntry::decode(abi, b).dump_text(abi).to_string()
    }

    #[test]
    fn spec_examples_6_12() {
        let abi = OrcAbi::V6_12;
        let cases: [([u8; 6], &str); 7] = [
            ([8, 0, 0, 0, 5, 2], "type:call sp:sp+8 bp:(und) signal:0"),
            (
                [0x10, 0, 0xf0, 0xff, 0x15, 2],
                "type:call sp:sp+16 bp:prevsp-16 signal:0",
            ),
            ([0; 6], "type:(und) sp:(und) bp:(und) signal:0"),
            ([0, 0, 0, 0, 0, 1], "type:end sp:(und) bp:(und) signal:0"),
            ([0, 0, 0, 0, 5, 0x0b], "type:regs sp:sp+0 bp:(und) signal:1"),
            (
                [8, 0, 0, 0, 5, 0x0c],
                "type:regs (partial) sp:sp+8 bp:(und) signal:1",
            ),
            ([8, 0, 0, 0, 9, 3], "type:regs sp:(sp)+8 bp:(und) signal:0"),
        ];
        for (bytes, want) in cases {
            assert_eq!(text(abi, bytes), want, "{bytes:02x?}");
        }
    }

    #[test]
    fn spec_examples_6_1() {
        let abi = OrcAbi::V6_1;
        assert_eq!(
            text(abi, [8, 0, 0, 0, 5, 0]),
            " sp:sp+8 bp:(und) type:call end:0"
        );
        assert_eq!(text(abi, [0; 6]), " sp:(und) bp:(und) type:call end:0");
        assert_eq!(
            text(abi, [0, 0, 0, 0, 0, 4]),
            " sp:(und) bp:(und) type:call end:1"
        );
        assert_eq!(
            text(abi, [0, 0, 0, 0, 5, 5]),
            " sp:sp+0 bp:(und) type:regs end:1"
        );
        assert_eq!(
            text(abi, [0, 0, 0, 0, 5, 6]),
            " sp:sp+0 bp:(und) type:regs (partial) end:1"
        );
        assert_eq!(
            text(abi, [0, 0, 0, 0, 5, 3]),
            " sp:sp+0 bp:(und) type:? end:0"
        );
    }

    #[test]
    fn decode_encode_roundtrip_every_flag_byte() {
        for abi in [OrcAbi::V6_1, OrcAbi::V6_12] {
            for b4 in 0..=255u8 {
                for b5 in 0..=255u8 {
                    let bytes = [0x34, 0x92, 0xf0, 0x7f, b4, b5];
                    let e = OrcEntry::decode(abi, bytes);
                    assert_eq!(e.encode(abi), Some(bytes), "{abi} {bytes:02x?}");
                }
            }
        }
    }

    #[test]
    fn encode_rejects_what_the_abi_cannot_hold() {
        let mut e = OrcEntry::decode(OrcAbi::V6_12, [0; 6]);
        assert_eq!(e.ty, OrcType::Undefined);
        assert_eq!(e.encode(OrcAbi::V6_1), None);
        e.ty = OrcType::Unknown(4);
        assert_eq!(e.encode(OrcAbi::V6_1), None);
        e.ty = OrcType::Call;
        e.sp_reg = OrcReg(16);
        assert_eq!(e.encode(OrcAbi::V6_12), None);
    }

    #[test]
    fn kernel_versions_map_to_abis() {
        assert_eq!(OrcAbi::for_kernel(6, 1), OrcAbi::V6_1);
        assert_eq!(OrcAbi::for_kernel(5, 15), OrcAbi::V6_1);
        assert_eq!(OrcAbi::for_kernel(6, 4), OrcAbi::V6_12);
        assert_eq!(OrcAbi::for_kernel(6, 12), OrcAbi::V6_12);
        assert_eq!(OrcAbi::for_kernel(7, 0), OrcAbi::V6_12);
    }
}
