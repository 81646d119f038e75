//! One row of the ORC table to write: what `orc::generate` produces and `write` lays out.

use crate::elf::SecId;
use crate::orc::ORC_ENTRY_SIZE;

/// One ORC entry to write: the instruction's section, its offset inside it, and the
/// encoded 6 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrcRow {
    pub section: SecId,
    pub offset: u64,
    pub entry: [u8; ORC_ENTRY_SIZE],
}
