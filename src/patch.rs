//! The instruction encodings objtool writes over code it rewrites (`elf_write_insn()`):
//! NOPs (`arch_nop_insn()`: jump labels with `--hacks=jump_label`, `__fentry__` calls with
//! `--mnop`, profiling calls with `--hacks=noinstr`) and `ret; int3` (`arch_ret_insn()`).
//! The rewrites themselves are recorded by the model (`cfg::sites`) and become
//! `edits::Patch`es in `actions`.

/// objtool's NOP encodings (`arch_nop_insn()`).
pub fn nop_bytes(len: u8) -> Option<&'static [u8]> {
    Some(match len {
        1 => &[0x90],
        2 => &[0x66, 0x90],
        3 => &[0x0f, 0x1f, 0x00],
        4 => &[0x0f, 0x1f, 0x40, 0x00],
        5 => &[0x0f, 0x1f, 0x44, 0x00, 0x00],
        _ => return None,
    })
}

/// objtool's `arch_ret_insn()`: `ret; int3` and a NOP to fill `len` bytes.
pub fn ret_bytes(len: u8) -> Option<&'static [u8]> {
    Some(match len {
        1 => &[0xc3],
        2 => &[0xc3, 0xcc],
        3 => &[0xc3, 0xcc, 0x90],
        4 => &[0xc3, 0xcc, 0x66, 0x90],
        5 => &[0xc3, 0xcc, 0x0f, 0x1f, 0x00],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ret_bytes_are_ret_int3_and_a_nop_of_the_length() {
        for len in 1..=5u8 {
            let b = ret_bytes(len).unwrap();
            assert_eq!(b.len(), len as usize);
            assert_eq!(&b[..2.min(b.len())], &[0xc3, 0xcc][..2.min(b.len())]);
            if len >= 3 {
                assert_eq!(&b[2..], nop_bytes(len - 2).unwrap());
            }
            assert_eq!(nop_bytes(len).unwrap().len(), len as usize);
        }
        assert_eq!((ret_bytes(0), ret_bytes(6)), (None, None));
        assert_eq!((nop_bytes(0), nop_bytes(6)), (None, None));
    }
}
