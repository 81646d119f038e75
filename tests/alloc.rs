//! The binary's allocator (`orctool::alloc::HugePages`): large blocks are maps of their own,
//! aligned to a huge page and marked for transparent huge pages, as the kernel reports in
//! `/proc/self/smaps` (`hg` among the mapping's `VmFlags`); small ones are left as the
//! system allocator gives them. Blocks keep their contents when they grow and shrink.

#[global_allocator]
static ALLOC: orctool::alloc::HugePages = orctool::alloc::HugePages;

/// The `VmFlags` of the mapping holding `addr`.
fn vm_flags(addr: usize) -> Vec<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ')
            && let Some((lo, hi)) = range.split_once('-')
            && let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        {
            inside = (lo..hi).contains(&addr);
        } else if inside && let Some(flags) = line.strip_prefix("VmFlags:") {
            return flags.split_whitespace().map(str::to_owned).collect();
        }
    }
    panic!("no mapping holds {addr:#x}");
}

fn has_thp() -> bool {
    std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists()
}

#[test]
fn large_blocks_are_advised_small_ones_are_not() {
    if !has_thp() {
        eprintln!("skipped: this kernel has no transparent huge pages");
        return;
    }
    let large: Vec<u64> = Vec::with_capacity(8 << 20);
    let flags = vm_flags(large.as_ptr() as usize + (4 << 20));
    assert!(flags.iter().any(|f| f == "hg"), "64 MiB block: {flags:?}");
    // a block of 3 MiB: aligned to a huge page, and its last byte advised too
    let odd: Vec<u8> = Vec::with_capacity(3 << 20);
    assert_eq!(
        odd.as_ptr() as usize % (2 << 20),
        0,
        "3 MiB block not aligned"
    );
    let flags = vm_flags(odd.as_ptr() as usize + (3 << 20) - 1);
    assert!(
        flags.iter().any(|f| f == "hg"),
        "end of a 3 MiB block: {flags:?}"
    );
    // zeroed blocks go through their own entry point
    let zeroed = vec![0u64; 4 << 20];
    assert!(zeroed.iter().all(|&x| x == 0));
    let flags = vm_flags(zeroed.as_ptr() as usize + (2 << 20));
    assert!(
        flags.iter().any(|f| f == "hg"),
        "zeroed 32 MiB block: {flags:?}"
    );
    let small: Vec<u8> = Vec::with_capacity(64 << 10);
    let flags = vm_flags(small.as_ptr() as usize);
    assert!(!flags.iter().any(|f| f == "hg"), "64 KiB block: {flags:?}");
}

#[test]
fn a_block_that_grows_large_is_advised() {
    if !has_thp() {
        eprintln!("skipped: this kernel has no transparent huge pages");
        return;
    }
    let mut v: Vec<u32> = Vec::new();
    for i in 0..(16u32 << 20) {
        v.push(i);
    }
    let flags = vm_flags(v.as_ptr() as usize + v.len() * 2);
    assert!(
        flags.iter().any(|f| f == "hg"),
        "grown 64 MiB block: {flags:?}"
    );
    assert!(
        v.iter().enumerate().all(|(i, &x)| x == i as u32),
        "grown block"
    );
    assert_eq!(
        v.as_ptr() as usize % (2 << 20),
        0,
        "grown block not aligned"
    );
    // shrunk (still large, then small): the contents stay
    v.truncate(3 << 20);
    v.shrink_to_fit();
    assert!(
        v.iter().enumerate().all(|(i, &x)| x == i as u32),
        "shrunk block"
    );
    v.truncate(1000);
    v.shrink_to_fit();
    assert!(
        v.iter().enumerate().all(|(i, &x)| x == i as u32),
        "small again"
    );
}
