//! The symbol lists and aliases against objtool's own algorithms, on random symbol tables.

mod list_order_tests {
    use super::super::*;

    /// objtool's insertion, as it is written: each symbol right after its predecessor in the
    /// section's address tree (a linked list and an ordered map).
    fn reference(syms: &[Symbol<'_>], nsec: usize) -> Vec<Vec<SymId>> {
        use std::collections::BTreeMap;
        let n = syms.len();
        let mut next: Vec<Option<SymId>> = vec![None; n];
        let mut heads: Vec<Option<SymId>> = vec![None; nsec];
        let mut trees: Vec<BTreeMap<(u64, SymId), ()>> = vec![BTreeMap::new(); nsec];
        for (i, s) in syms.iter().enumerate() {
            let idx = SymId(i as u32);
            let sec = s.sec.0 as usize;
            let tree = &mut trees[sec];
            match tree
                .range(..(s.offset, idx))
                .next_back()
                .map(|(&(_, p), _)| p)
            {
                Some(p) => {
                    next[i] = next[p.index()];
                    next[p.index()] = Some(idx);
                }
                None => {
                    next[i] = heads[sec];
                    heads[sec] = Some(idx);
                }
            }
            if s.len > 0 {
                tree.insert((s.offset, idx), ());
            }
        }
        heads
            .iter()
            .map(|&h| {
                let mut list = Vec::new();
                let mut cur = h;
                while let Some(i) = cur {
                    list.push(i);
                    cur = next[i.index()];
                }
                list
            })
            .collect()
    }

    #[test]
    fn list_order_is_objtools() {
        let mut rng = crate::testing::XorShift::new(0x9e37_79b9_7f4a_7c15u64);
        let mut rand = move |n: u64| rng.below(n);
        for _ in 0..500 {
            let nsec = 1 + rand(3) as usize;
            let n = rand(40) as usize;
            let spread = 1 + rand(30);
            let syms: Vec<Symbol> = (0..n)
                .map(|_| Symbol {
                    sec: SecId(rand(nsec as u64) as u32),
                    offset: rand(spread),
                    len: if rand(3) == 0 { 0 } else { 1 + rand(8) },
                    ..Default::default()
                })
                .collect();
            let by_addr = address_order(&syms, nsec);
            assert_eq!(
                list_order(&syms, &by_addr),
                reference(&syms, nsec),
                "{syms:?}"
            );
        }
    }
}

mod alias_tests {
    use super::super::*;

    /// Aliases as objtool makes them: in symbol-table order, each sized symbol becomes the
    /// alias of every earlier one with its section, offset, type and size.
    #[test]
    fn aliases_are_the_last_identical_symbol() {
        let mut rng = crate::testing::XorShift::new(0x2545_f491_4f6c_dd1d);
        let mut rand = move |n: u64| rng.below(n);
        for round in 0..300 {
            let n = rand(60) as usize;
            // (every other table with runs of more than 16 symbols at one offset)
            let spread = if round % 2 == 0 { 6 } else { 2 };
            let mut syms: Vec<Symbol> = (0..n)
                .map(|i| Symbol {
                    sec: SecId(rand(3) as u32),
                    offset: rand(spread),
                    len: rand(3),
                    ty: rand(2) as u8 + 1,
                    alias: SymId(i as u32),
                    ..Default::default()
                })
                .collect();
            let mut want: Vec<SymId> = (0..n as u32).map(SymId).collect();
            for j in 0..n {
                if syms[j].len == 0 {
                    continue;
                }
                for i in 0..j {
                    let (a, b) = (&syms[i], &syms[j]);
                    if (a.sec, a.offset, a.ty, a.len) == (b.sec, b.offset, b.ty, b.len) {
                        want[i] = SymId(j as u32);
                    }
                }
            }
            let by_addr = address_order(&syms, 3);
            link_aliases(&mut syms, &by_addr);
            let got: Vec<SymId> = syms.iter().map(|s| s.alias).collect();
            assert_eq!(got, want, "{syms:?}");
        }
    }
}
