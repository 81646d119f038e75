//! ORC: the entry format of both kernel ABIs, ABI detection, generation from the walk's
//! states, the alternatives' unwind check and objtool's dump.

pub mod dump;
pub mod entry;
pub mod generate;
pub mod row;
pub mod unwind_check;

pub use entry::{ORC_ENTRY_SIZE, OrcAbi, OrcEntry, OrcReg, OrcType};

use object::read::elf::{SectionHeader as _, Sym as _};

use crate::elf::{LE, Object, ObjectKind};

/// Where the ORC ABI of an object was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbiSource {
    /// Given by the user (`--orc-abi`).
    Option,
    /// The object has an `.orc_header` section (6.4 and later).
    OrcHeader,
    /// The kernel version in the module's `vermagic` (`.modinfo`).
    Vermagic(u32, u32),
    /// The kernel version in `linux_banner` (vmlinux, vmlinux.o).
    Banner(u32, u32),
    /// Nothing told: the current ABI.
    Default,
}

/// The ORC ABI of `obj`: `.orc_header` present → 6.12; else the kernel version from the
/// module's `vermagic` or vmlinux's `linux_banner`; else 6.12.
pub fn detect_abi(obj: &Object<'_>) -> (OrcAbi, AbiSource) {
    if obj.section_by_name(b".orc_header").is_some() {
        return (OrcAbi::V6_12, AbiSource::OrcHeader);
    }
    if let Some((major, minor)) = vermagic_version(obj) {
        return (
            OrcAbi::for_kernel(major, minor),
            AbiSource::Vermagic(major, minor),
        );
    }
    if let Some((major, minor)) = banner_version(obj) {
        return (
            OrcAbi::for_kernel(major, minor),
            AbiSource::Banner(major, minor),
        );
    }
    (OrcAbi::V6_12, AbiSource::Default)
}

/// `vermagic=6.1.0-56-cloud-amd64 SMP …` in `.modinfo` → (6, 1).
fn vermagic_version(obj: &Object<'_>) -> Option<(u32, u32)> {
    let sec = obj.section_by_name(b".modinfo")?;
    let data = obj.section_data(sec).ok()?;
    data.split(|&b| b == 0)
        .find_map(|s| s.strip_prefix(b"vermagic="))
        .and_then(parse_version)
}

/// `Linux version 6.12.117+deb12-amd64 …` at the symbol `linux_banner` → (6, 12).
fn banner_version(obj: &Object<'_>) -> Option<(u32, u32)> {
    for i in 1..obj.symbol_count() {
        let id = crate::elf::SymId(i as u32);
        let sym = obj.symbol(id).ok()?;
        if obj.symbol_name(sym).ok()? != b"linux_banner" {
            continue;
        }
        let sec = obj.symbol_section(id).ok()??;
        let header = obj.section(sec).ok()?;
        let data = obj.section_data(sec).ok()?;
        let base = match obj.kind() {
            ObjectKind::Relocatable => 0,
            ObjectKind::Linked => header.sh_addr(LE),
        };
        let off = usize::try_from(sym.st_value(LE).checked_sub(base)?).ok()?;
        let text = data.get(off..)?;
        return text.strip_prefix(b"Linux version ").and_then(parse_version);
    }
    None
}

/// "6.12.117+deb12…" → (6, 12).
fn parse_version(s: &[u8]) -> Option<(u32, u32)> {
    let number = |s: &[u8]| -> Option<(u32, usize)> {
        let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return None;
        }
        Some((std::str::from_utf8(&s[..n]).ok()?.parse().ok()?, n))
    };
    let (major, n) = number(s)?;
    let rest = s.get(n..)?.strip_prefix(b".")?;
    let (minor, _) = number(rest)?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions() {
        assert_eq!(parse_version(b"6.1.0-56-cloud-amd64 SMP"), Some((6, 1)));
        assert_eq!(parse_version(b"6.12.117+deb12-amd64"), Some((6, 12)));
        assert_eq!(parse_version(b"6"), None);
        assert_eq!(parse_version(b"x.1"), None);
    }
}
