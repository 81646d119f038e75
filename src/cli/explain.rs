//! `orctool explain FILE FUNC`: one function as the check sees it. Its disassembly (AT&T,
//! iced-x86's gas formatter), per instruction the CFI state on entry in words and the ORC
//! entry emitted there, each alternative group with the original and every replacement at
//! the group's offsets and the merged per-byte entries, jump labels with their sources, and
//! each warning under the instruction it is about. Nothing is written.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter};

use super::run::{self, Job, Output, Tool};
use crate::cfg::Program;
use crate::cfi::state::*;
use crate::check::Inspect;
use crate::decode::InsnKind;
use crate::ids::{InsnId, SecId, StateId};
use crate::options::Options;
use crate::orc::generate::entry_for;
use crate::orc::{OrcAbi, OrcEntry};
use crate::report::Kind;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// ORC ABI of the entries shown (default: detected from the object).
    #[arg(long, value_name = "6.1|6.12")]
    orc_abi: Option<OrcAbi>,
    /// The object is part of a kernel module.
    #[arg(long)]
    module: bool,
    /// The object is linked (vmlinux.o).
    #[arg(long)]
    link: bool,
    /// The object: .o, .ko, vmlinux.o (.ko.xz/.ko.zst/.ko.gz are decompressed).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The function to explain (its symbol name).
    #[arg(value_name = "FUNC")]
    function: String,
}

pub fn run(args: &ExplainArgs) -> ExitCode {
    let opts = Options {
        orc: true,
        module: args.module,
        link: args.link,
        alt_unwind_check: true,
        ..Default::default()
    };
    let job = Job {
        orc_abi: args.orc_abi,
        ..Job::new(&opts, Tool::Orctool, Output::None)
    };
    let path = &args.file;
    let mut text = None;
    let result = run::load(path, false).and_then(|loaded| {
        let obj = run::parse_relocatable(&loaded.data)?;
        run::inspect(&job, &obj, &mut |i| text = Some(explain(i, &args.function)))
    });
    match (result, text) {
        (Err(e), _) => {
            eprintln!("orctool: {}: {e}", path.display());
            ExitCode::FAILURE
        }
        (Ok(_), Some(Ok(t))) => {
            super::print_stdout(&t);
            ExitCode::SUCCESS
        }
        (Ok(_), Some(Err(msg))) => {
            eprintln!("orctool: {}: {msg}", path.display());
            ExitCode::FAILURE
        }
        (Ok(f), None) => {
            eprint!("{}", f.render(&path.display().to_string(), false, false));
            eprintln!(
                "orctool: {}: the analysis stopped before the program model was built",
                path.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// Register names by CFI number (hardware encoding, `ra` 16).
const REG_NAMES: [&str; CFI_NUM_REGS] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "ra",
];

pub(crate) fn base_name(base: i8) -> String {
    match base {
        CFI_CFA => "CFA".into(),
        CFI_SP_INDIRECT => "[rsp]".into(),
        CFI_BP_INDIRECT => "[rbp]".into(),
        CFI_UNDEFINED => "undefined".into(),
        b => REG_NAMES
            .get(b as usize)
            .map_or_else(|| format!("reg{b}"), |s| (*s).to_owned()),
    }
}

fn loc_words(l: Loc) -> String {
    match l.offset {
        0 => base_name(l.base),
        o => format!("{}{o:+}", base_name(l.base)),
    }
}

/// A state in words: `CFA = rsp+16; rbx saved at CFA-16`.
pub fn state_words(s: Option<&CfiState>) -> String {
    let Some(s) = s else {
        return "not reached".into();
    };
    let kind = match s.ty {
        UNWIND_HINT_TYPE_CALL => "",
        UNWIND_HINT_TYPE_REGS => "pt_regs frame; ",
        UNWIND_HINT_TYPE_REGS_PARTIAL => "partial pt_regs frame; ",
        UNWIND_HINT_TYPE_END_OF_STACK => return "end of stack".into(),
        UNWIND_HINT_TYPE_UNDEFINED => return "undefined (no unwind information)".into(),
        _ => "unknown type; ",
    };
    let mut w = format!("{kind}CFA = {}", loc_words(s.cfa));
    for (r, l) in s.regs.iter().enumerate().take(CFI_RA as usize) {
        match l.base {
            CFI_UNDEFINED => {}
            CFI_CFA => {
                let _ = write!(w, "; {} saved at {}", REG_NAMES[r], loc_words(*l));
            }
            _ => {
                let _ = write!(w, "; {} = {}", REG_NAMES[r], loc_words(*l));
            }
        }
    }
    if s.drap {
        let _ = write!(w, "; DRAP in {}", base_name(s.drap_reg));
    }
    if s.signal {
        w.push_str("; signal frame");
    }
    w
}

/// The listing of one function; `Err` says why there is none.
pub fn explain(i: &Inspect<'_, '_, '_>, name: &str) -> Result<String, String> {
    let p = i.program;
    let func = crate::ids::SymId(
        p.syms
            .syms
            .iter()
            .position(|s| s.is_func() && s.name == name)
            .ok_or_else(|| format!("no function named {name}"))? as u32,
    );
    let Some(w) = i.walk else {
        return Err("the object has no instructions to walk".into());
    };
    let insns = p.func_insns(func);
    let sym = p.syms.get(func);
    let mut x = Explainer {
        p,
        i,
        labels: BTreeMap::new(),
        sources: HashMap::new(),
        findings: HashMap::new(),
        rows: HashMap::new(),
        shown: Vec::new(),
        out: String::new(),
    };
    x.collect(&insns);
    let _ = writeln!(
        x.out,
        "{name}: {}+0x{:x}, {} bytes; ORC ABI {}{}",
        p.sec_names[sym.sec.0 as usize],
        sym.offset,
        sym.len,
        i.abi,
        if i.orc.is_none() {
            " (no ORC generated)"
        } else {
            ""
        }
    );
    let mut k = 0;
    while k < insns.len() {
        let id = insns[k];
        match p.alt_site(id) {
            Some((s, _)) if s.is_orig() && s.first == id => {
                x.group(w, id);
                let last = s.last.unwrap_or(s.first);
                while k < insns.len() && insns[k] <= last {
                    k += 1;
                }
            }
            _ => {
                x.insn(w, id, "", None);
                k += 1;
            }
        }
    }
    // what belongs to the function but to no instruction listed
    let loose: Vec<_> = i
        .findings
        .findings()
        .iter()
        .filter(|f| {
            f.at.as_ref().is_some_and(|a| {
                a.function.as_ref().is_some_and(|s| s.name == name)
                    && !x.shown_at(a.section, a.offset)
            })
        })
        .collect();
    if !loose.is_empty() {
        x.out.push_str("\nother findings:\n");
        for f in loose {
            let _ = writeln!(x.out, "  {}", finding_line(f));
        }
    }
    Ok(x.out)
}

fn finding_line(f: &crate::report::Finding) -> String {
    match f.kind {
        Kind::Warning => format!("warning: {f}"),
        Kind::Backtrace => format!("  backtrace: {f}"),
        Kind::Detail => format!("  detail: {f}"),
    }
}

struct Explainer<'r, 'a, 'd> {
    p: &'r Program<'a, 'd>,
    i: &'r Inspect<'r, 'a, 'd>,
    /// Branch targets: instruction → label number.
    labels: BTreeMap<InsnId, usize>,
    /// Per target: (what, source) pairs.
    sources: HashMap<InsnId, Vec<(&'static str, InsnId)>>,
    /// Findings by (section, offset).
    findings: HashMap<(SecId, u64), Vec<&'r crate::report::Finding>>,
    /// ORC rows by (section, offset).
    rows: HashMap<(SecId, u64), [u8; 6]>,
    /// Every instruction listed (the function's and its replacements').
    shown: Vec<InsnId>,
    out: String,
}

impl<'r, 'a, 'd> Explainer<'r, 'a, 'd> {
    fn collect(&mut self, insns: &[InsnId]) {
        let p = self.p;
        let mut all: Vec<InsnId> = insns.to_vec();
        for &id in insns {
            if let Some((s, g)) = p.alt_site(id) {
                if s.is_orig() && s.first == id {
                    for &r in &g.alternatives {
                        all.extend(p.group_insns(&p.streams[r]));
                    }
                }
            }
        }
        for &id in &all {
            let a = p.attr(id);
            if let Some(t) = a.jump_dest.get() {
                self.sources
                    .entry(InsnId(t))
                    .or_default()
                    .push(("jump", id));
            }
            if a.in_alt_group() {
                continue;
            }
            for alt in p.alts.get(&id).map_or(&[][..], |v| &v[..]) {
                let what = if p.is_jump_table_jump(id) {
                    "switch case"
                } else if matches!(a.kind, InsnKind::Nop | InsnKind::JumpUnconditional) {
                    "jump label"
                } else {
                    "exception fixup"
                };
                self.sources.entry(alt.target).or_default().push((what, id));
            }
        }
        let mut targets: Vec<InsnId> = self.sources.keys().copied().collect();
        targets.sort();
        for (n, t) in targets.into_iter().enumerate() {
            self.labels.insert(t, n + 1);
        }
        for f in self.i.findings.findings() {
            if let Some(a) = &f.at {
                self.findings
                    .entry((a.section, a.offset))
                    .or_default()
                    .push(f);
            }
        }
        if let Some(rows) = self.i.orc {
            for r in rows {
                self.rows.insert((r.section, r.offset), r.entry);
            }
        }
        self.shown = all;
    }

    fn shown_at(&self, sec: SecId, off: u64) -> bool {
        self.shown
            .iter()
            .any(|&id| self.p.insns.sec_of(id) == sec && u64::from(self.p.insn(id).offset) == off)
    }

    fn state(&self, id: Option<StateId>) -> Option<&'r CfiState> {
        let w = self.i.walk?;
        id.map(|id| &w.states.states()[id.index()])
    }

    fn entry_text(&self, s: Option<&CfiState>) -> String {
        match entry_for(s, self.i.abi) {
            Ok(e) => OrcEntry::decode(self.i.abi, e)
                .dump_text(self.i.abi)
                .to_string(),
            Err(e) => format!("none: {}", crate::report::FindingKind::from(e)),
        }
    }

    /// One instruction: labels, disassembly, state, ORC row, warnings. `indent` for group
    /// listings, `base` the offset in the group.
    fn insn(&mut self, w: &crate::cfi::walk::Walk, id: InsnId, indent: &str, base: Option<u64>) {
        let p = self.p;
        let sec = p.insns.sec_of(id);
        let insn = p.insn(id);
        let off = u64::from(insn.offset);
        if let Some(n) = self.labels.get(&id) {
            let from: Vec<String> = self.sources[&id]
                .iter()
                .map(|(what, s)| format!("{what} at {}", p.insn_location(*s)))
                .collect();
            let _ = writeln!(self.out, "{indent}.L{n}:  <- {}", from.join(", "));
        }
        let at = match base {
            Some(g) => format!("+0x{g:x}"),
            None => p.insn_location(id).to_string(),
        };
        let (bytes, asm) = disasm(self.p, id);
        let mut line = format!("{indent}  {at:<14} {bytes:<24} {asm}");
        if let Some(t) = p.attr(id).jump_dest.get() {
            if let Some(n) = self.labels.get(&InsnId(t)) {
                let _ = write!(line, "  -> .L{n}");
            }
        }
        if !p.attr(id).in_alt_group() {
            for alt in p.alts.get(&id).map_or(&[][..], |v| &v[..]) {
                if let Some(n) = self.labels.get(&alt.target) {
                    let _ = write!(line, "  -> .L{n}");
                }
            }
        }
        let _ = writeln!(self.out, "{}", line.trim_end());
        let state = self.state(w.cfi[id.idx()]);
        let _ = writeln!(self.out, "{indent}      state: {}", state_words(state));
        if base.is_none() {
            match self.rows.get(&(sec, off)) {
                Some(&e) => {
                    let e = OrcEntry::decode(self.i.abi, e);
                    let _ = writeln!(self.out, "{indent}      orc:   {}", e.dump_text(self.i.abi));
                }
                None if self.i.orc.is_some() => {
                    let _ = writeln!(self.out, "{indent}      orc:   (unchanged)");
                }
                None => {}
            }
        }
        if let Some(fs) = self.findings.get(&(sec, off)) {
            for f in fs {
                let _ = writeln!(self.out, "{indent}      {}", finding_line(f));
            }
        }
    }

    /// An alternative group: the original and each replacement at the group's offsets,
    /// then the merged per-byte entries the ORC table gets.
    fn group(&mut self, w: &crate::cfi::walk::Walk, first: InsnId) {
        let p = self.p;
        let Some((s, g)) = p.alt_site(first) else {
            return;
        };
        let sec = p.insns.sec_of(first);
        let base = u64::from(p.insn(first).offset);
        let _ = writeln!(
            self.out,
            "  alternative group at {} ({}+0x{base:x}, {} bytes, {} replacement{}):",
            p.insn_location(first),
            p.sec_names[sec.0 as usize],
            g.len,
            g.alternatives.len(),
            if g.alternatives.len() == 1 { "" } else { "s" }
        );
        let mut streams = vec![("original".to_owned(), s.clone())];
        for (n, &r) in g.alternatives.iter().enumerate() {
            streams.push((format!("replacement {}", n + 1), p.streams[r].clone()));
        }
        for (title, st) in &streams {
            let ins = p.group_insns(st);
            let where_ = ins
                .first()
                .filter(|&&i| p.is_real(i))
                .map(|&i| format!(" at {}", p.insn_location(i)))
                .unwrap_or_default();
            let _ = writeln!(self.out, "    {title}{where_}:");
            let mut pos = 0;
            for &i in &ins {
                self.insn(w, i, "    ", Some(pos));
                pos += u64::from(p.insn(i).len);
            }
        }
        let _ = writeln!(self.out, "    merged (per byte of the group; ORC rows):");
        let array = &w.alt_cfi[s.group.index()];
        for (off, slot) in array.iter().enumerate() {
            if slot.is_none() {
                continue;
            }
            let st = self.state(*slot);
            let row = match self.rows.get(&(sec, base + off as u64)) {
                Some(&e) => OrcEntry::decode(self.i.abi, e)
                    .dump_text(self.i.abi)
                    .to_string(),
                None if self.i.orc.is_some() => "(unchanged)".into(),
                None => self.entry_text(st),
            };
            let _ = writeln!(
                self.out,
                "      +0x{off:<3x} {}\n             orc: {row}",
                state_words(st)
            );
        }
    }
}

/// objdump's columns: the bytes and the AT&T text (a padding NOP has no bytes).
pub(crate) fn disasm(p: &Program<'_, '_>, id: InsnId) -> (String, String) {
    let insn = p.insn(id);
    if !p.is_real(id) {
        return (
            String::new(),
            format!("(padding: {} bytes of NOPs)", insn.len),
        );
    }
    let off = insn.offset as usize;
    let data = p
        .obj
        .section_data(p.insns.sec_of(id))
        .ok()
        .and_then(|d| d.get(off..off + usize::from(insn.len)))
        .unwrap_or(&[]);
    let bytes = data
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut dec = Decoder::with_ip(64, data, off as u64, DecoderOptions::NONE);
    let ins = dec.decode();
    let mut fmt = GasFormatter::new();
    fmt.options_mut().set_first_operand_char_index(7);
    fmt.options_mut().set_uppercase_hex(false);
    let mut text = String::new();
    if ins.is_call_near() || ins.is_jmp_short_or_near() || ins.is_jcc_short_or_near() {
        // objdump: `jmp    11 <f+0x11>`
        fmt.format_mnemonic(&ins, &mut text);
        let target = ins.near_branch_target();
        let _ = write!(
            text,
            "{:pad$}{target:x} <{}>",
            "",
            p.location(p.insns.sec_of(id), target),
            pad = 7usize.saturating_sub(text.len()).max(1)
        );
    } else {
        fmt.format(&ins, &mut text);
    }
    if let Some(dest) = p.call_dest(id) {
        let _ = write!(text, "  # {}", p.syms.get(dest).name);
    }
    (bytes, text)
}
