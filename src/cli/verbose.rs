//! `check --verbose`: under each warning, what caused it, rendered as compilers render
//! diagnostics (`annotate-snippets`): the source line of the warning and of its cause when
//! the object has DWARF line info (with the text when the file can be read), the instruction
//! that made the state wrong, the path of branches that led there (rebuilt from the walk's
//! backtrace), the states in words, and the patched site of code in a replacement.
//!
//! The path is the walk's own: its backtrace names the function entry (or hint), every
//! branch taken and every alternative entered; between them the path runs straight on.
//! Every instruction on a path that warns was first reached by that path (a path stops at
//! an instruction already visited), so the states the walk recorded are the path's states.

use std::collections::HashMap;

use annotate_snippets::{AnnotationKind, Group, Level, Origin, Renderer, Snippet};

use super::explain::{disasm, state_words};
use super::source::{Lines, SourceLine, line_text};
use crate::cfg::Program;
use crate::cfi::apply::{OpContext, apply};
use crate::cfi::state::CfiState;
use crate::check::Inspect;
use crate::ids::InsnId;
use crate::report::{Finding, FindingKind, Kind, StateMismatch};

/// How the path reached an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The function's entry or an unwind hint.
    Start(&'static str),
    /// Straight on from the instruction before.
    Next,
    /// The branch before it was taken.
    Branch,
    /// An alternative of the instruction before (replacement, jump label, fixup).
    Alt,
}

/// Per warning (its index in the findings), the block printed under it.
pub fn notes(i: &Inspect<'_, '_, '_>, lines: Option<&Lines>) -> HashMap<usize, String> {
    let all = i.findings.findings();
    let mut out = HashMap::new();
    for (k, f) in all.iter().enumerate() {
        if f.kind != Kind::Warning {
            continue;
        }
        let trace: Vec<&Finding> = all[k + 1..]
            .iter()
            .take_while(|g| g.kind != Kind::Warning)
            .filter(|g| g.kind == Kind::Backtrace)
            .collect();
        if let Some(block) = note(i, lines, f, &trace) {
            out.insert(k, block);
        }
    }
    out
}

fn insn_of(p: &Program<'_, '_>, f: &Finding) -> Option<InsnId> {
    let at = f.at.as_ref()?;
    p.insns.at(at.section, at.offset)
}

/// The instructions from `from` straight on to `to` (both included), if `to` is on the way.
fn straight(p: &Program<'_, '_>, from: InsnId, to: InsnId) -> Option<Vec<InsnId>> {
    let mut run = vec![from];
    let mut cur = from;
    while cur != to {
        cur = p.next_to_validate(cur)?;
        run.push(cur);
        if run.len() > 1 << 16 {
            return None;
        }
    }
    Some(run)
}

/// The path from the function entry (or hint) to `end`, rebuilt from the backtrace
/// (innermost first).
fn path(p: &Program<'_, '_>, end: InsnId, trace: &[&Finding]) -> Option<Vec<(InsnId, Step)>> {
    let mut anchors: Vec<(InsnId, &'static str)> = Vec::new();
    for t in trace.iter().rev() {
        let FindingKind::Backtrace(what) = t.what else {
            continue;
        };
        anchors.push((insn_of(p, t)?, what));
    }
    let (&(start, what), rest) = anchors.split_first()?;
    let kind = if what.contains("hint") {
        "unwind hint"
    } else {
        "function entry"
    };
    let mut out = vec![(start, Step::Start(kind))];
    let mut cur = start;
    let targets: Vec<InsnId> = rest.iter().map(|a| a.0).chain([end]).collect();
    for (n, &(anchor, what)) in rest.iter().enumerate() {
        let run = straight(p, cur, anchor)?;
        out.extend(run[1..].iter().map(|&x| (x, Step::Next)));
        let after = targets[n + 1];
        cur = if what == "(branch)" {
            let dest = InsnId(p.attr(anchor).jump_dest.get()?);
            out.push((dest, Step::Branch));
            dest
        } else {
            // the alternative from which the rest of the path goes on
            let alt = p
                .alts
                .get(&anchor)?
                .iter()
                .map(|a| a.target)
                .find(|&t| straight(p, t, after).is_some())?;
            out.push((alt, Step::Alt));
            alt
        };
    }
    let run = straight(p, cur, end)?;
    out.extend(run[1..].iter().map(|&x| (x, Step::Next)));
    Some(out)
}

fn state<'r>(i: &Inspect<'r, '_, '_>, id: InsnId) -> Option<&'r CfiState> {
    let w = i.walk?;
    let s = w.cfi.get(id.idx()).copied().flatten()?;
    w.states.states().get(s.index())
}

/// The state the path brings out of `id` (its stack operations applied to its state).
fn after(i: &Inspect<'_, '_, '_>, id: InsnId, next: Option<InsnId>) -> Option<CfiState> {
    let p = i.program;
    let mut s = state(i, id)?.clone();
    let cx = OpContext {
        in_func: p.insn_func(id).is_some(),
        next_is_hint: next.is_some_and(|n| p.attr(n).hint()),
        stackval: p.opts.stackval,
    };
    for op in p.ops(id) {
        apply(&mut s, &op.get(), cx).ok()?;
    }
    Some(s)
}

/// The part of a state a mismatch is about, comparable.
fn aspect(s: &CfiState, m: &StateMismatch) -> (i64, i64, i64) {
    match m {
        StateMismatch::Cfa(..) => (s.cfa.base.into(), s.cfa.offset.into(), 0),
        StateMismatch::Reg(r, ..) => {
            let l = s.regs.get(*r).copied().unwrap_or_default();
            (l.base.into(), l.offset.into(), 0)
        }
        StateMismatch::Type(..) => (s.ty.into(), 0, 0),
        StateMismatch::Drap(..) => (s.drap.into(), s.drap_reg.into(), s.drap_offset.into()),
    }
}

/// Who changed the state between the path's `k`-th instruction and the next: the next
/// one's unwind hint, if it has one, else the `k`-th instruction's own operations.
fn culprit(p: &Program<'_, '_>, ids: &[InsnId], k: usize) -> InsnId {
    match ids.get(k + 1) {
        Some(&n) if p.attr(n).hint() => n,
        _ => ids[k],
    }
}

/// What a warning's block says, before rendering.
struct Explained {
    /// The instruction that made the state wrong, with the states before and after it.
    cause: Option<(InsnId, String, String)>,
    notes: Vec<String>,
}

fn explain(i: &Inspect<'_, '_, '_>, f: &Finding, id: InsnId, trace: &[&Finding]) -> Explained {
    let p = i.program;
    let mut x = Explained {
        cause: None,
        notes: Vec::new(),
    };
    let path = path(p, id, trace);
    if let Some(path) = &path {
        let mut words = Vec::new();
        for (n, &(insn, step)) in path.iter().enumerate() {
            let here = p.insn_location(insn);
            match step {
                Step::Start(kind) => words.push(format!("{here} ({kind})")),
                Step::Branch => words.push(format!(
                    "{} branches to {here}",
                    p.insn_location(path[n - 1].0)
                )),
                Step::Alt => words.push(format!(
                    "{} takes its alternative at {here}",
                    p.insn_location(path[n - 1].0)
                )),
                Step::Next if n + 1 == path.len() => words.push(here.to_string()),
                Step::Next => {}
            }
        }
        if path.len() > 1 {
            x.notes.push(format!("path: {}", words.join(" -> ")));
        }
    }
    let ids: Vec<InsnId> = path.map_or_else(Vec::new, |v| v.into_iter().map(|s| s.0).collect());
    match &f.what {
        FindingKind::ReturnWithModifiedFrame | FindingKind::SiblingCallWithModifiedFrame => {
            let bad = |s: &CfiState| s.has_modified_stack_frame();
            let seq: Vec<Option<&CfiState>> = ids.iter().map(|&n| state(i, n)).collect();
            for k in (0..ids.len().saturating_sub(1)).rev() {
                if let (Some(b), Some(a)) = (seq[k], seq[k + 1]) {
                    if !bad(b) && bad(a) {
                        x.cause = Some((
                            culprit(p, &ids, k),
                            state_words(Some(b)),
                            state_words(Some(a)),
                        ));
                        break;
                    }
                }
            }
            if x.cause.is_none() && seq.first().copied().flatten().is_some_and(bad) {
                x.notes
                    .push("the state was already modified where the path starts".into());
            }
            x.notes.push(format!(
                "state at {}: {} (a {} needs CFA = rsp+8 and every register as on entry)",
                p.insn_location(id),
                state_words(state(i, id)),
                if f.what == FindingKind::ReturnWithModifiedFrame {
                    "return"
                } else {
                    "sibling call"
                }
            ));
        }
        FindingKind::StackStateMismatch(m) if ids.len() >= 2 => {
            let prev = ids[ids.len() - 2];
            let incoming = after(i, prev, Some(id));
            let mut seq: Vec<Option<CfiState>> = ids[..ids.len() - 1]
                .iter()
                .map(|&n| state(i, n).cloned())
                .collect();
            seq.push(incoming.clone());
            for k in (0..seq.len() - 1).rev() {
                if let (Some(b), Some(a)) = (&seq[k], &seq[k + 1]) {
                    if aspect(b, m) != aspect(a, m) {
                        x.cause = Some((
                            culprit(p, &ids, k),
                            state_words(Some(b)),
                            state_words(Some(a)),
                        ));
                        break;
                    }
                }
            }
            x.notes.push(format!(
                "state at {} from the path that reached it first: {}",
                p.insn_location(id),
                state_words(state(i, id))
            ));
            x.notes.push(format!(
                "state this path brings: {}",
                state_words(incoming.as_ref())
            ));
        }
        FindingKind::StackLayoutConflict { .. } => {
            let group = p.alt_site(id).map(|(s, _)| s.group);
            let w = i.walk;
            let c = w.and_then(|w| {
                w.conflicts
                    .iter()
                    .find(|c| c.shown && Some(c.group) == group)
            });
            if let (Some(c), Some(w)) = (c, w) {
                let words = |s: crate::ids::StateId| state_words(w.states.states().get(s.index()));
                let who = |insn: Option<InsnId>| {
                    insn.map_or_else(
                        || "an earlier stream".to_owned(),
                        |n| p.insn_location(n).to_string(),
                    )
                };
                x.notes.push(format!(
                    "at group offset 0x{:x}, {} needs: {}",
                    c.offset,
                    who(c.first),
                    words(c.first_state)
                ));
                x.notes.push(format!(
                    "{} needs: {}",
                    who(Some(c.second)),
                    words(c.second_state)
                ));
                for n in [c.first, Some(c.second)].into_iter().flatten() {
                    x.notes.extend(patched_site(p, n));
                }
            }
        }
        FindingKind::UnreachableInstruction => {
            let words = |n: InsnId| {
                let (_, asm) = disasm(p, n);
                let asm = asm.split_whitespace().collect::<Vec<_>>().join(" ");
                format!("{}: {asm}", p.insn_location(n))
            };
            let mut note = format!("no path reaches {}", words(id));
            if let Some(prev) = p.prev_same_sec(id) {
                note.push_str(&format!(
                    "; the instruction before it, {}, does not go on to it, and no branch, \
                     jump table, alternative or hint leads here",
                    words(prev)
                ));
            }
            x.notes.push(note);
        }
        _ => {
            if state(i, id).is_some() {
                x.notes.push(format!(
                    "state at {}: {}",
                    p.insn_location(id),
                    state_words(state(i, id))
                ));
            }
        }
    }
    if let Some(site) = patched_site(p, id) {
        x.notes.push(site);
    }
    x
}

/// For an instruction in a replacement: the site it patches.
fn patched_site(p: &Program<'_, '_>, id: InsnId) -> Option<String> {
    let (stream, _) = p.alt_site(id)?;
    if stream.is_orig() || !p.is_real(id) {
        return None;
    }
    let orig = &p.streams[stream.parent?];
    let into = u64::from(p.insn(id).offset).saturating_sub(u64::from(p.insn(stream.first).offset));
    let site = orig.first;
    let sec = p.insns.sec_of(site);
    Some(format!(
        "{} is replacement {} of the alternative at {} ({}+0x{:x}), +0x{into:x} into the replacement",
        p.insn_location(id),
        stream.number,
        p.insn_location(site),
        p.sec_names[sec.0 as usize],
        p.insn(site).offset
    ))
}

fn note(
    i: &Inspect<'_, '_, '_>,
    lines: Option<&Lines>,
    f: &Finding,
    trace: &[&Finding],
) -> Option<String> {
    let p = i.program;
    let id = insn_of(p, f)?;
    let x = explain(i, f, id, trace);
    let mut notes = x.notes;
    let cause_text = x.cause.as_ref().map(|(c, before, after)| {
        let (bytes, asm) = disasm(p, *c);
        let asm = asm.split_whitespace().collect::<Vec<_>>().join(" ");
        let by = if p.attr(*c).hint() {
            "the unwind hint at "
        } else {
            ""
        };
        format!(
            "caused by {by}{}: {asm} ({bytes}); state before: {before}; after: {after}",
            p.insn_location(*c)
        )
    });
    if let Some(t) = cause_text {
        notes.insert(0, t);
    }
    let src = |insn: InsnId| {
        lines.and_then(|l| l.find(p.insns.sec_of(insn), u64::from(p.insn(insn).offset)))
    };
    // code in a replacement often has no line of its own: the site it patches has
    let site = p
        .alt_site(id)
        .filter(|(s, _)| !s.is_orig())
        .and_then(|(s, _)| Some(p.streams[s.parent?].first));
    let (here, label) = match (src(id), site.and_then(src)) {
        (Some(h), _) => (Some(h), f.what.to_string()),
        (None, Some(h)) => (
            Some(h),
            format!("{}: in the alternative patched in here", f.what),
        ),
        (None, None) => (None, f.what.to_string()),
    };
    let cause = x.cause.as_ref().and_then(|(c, ..)| Some((*c, src(*c)?)));
    let title = f.to_string();
    let cause_label = cause.as_ref().map(|(c, _)| {
        let (_, asm) = disasm(p, *c);
        let asm = asm.split_whitespace().collect::<Vec<_>>().join(" ");
        if p.attr(*c).hint() {
            format!(
                "{}: the unwind hint here set the state",
                p.insn_location(*c)
            )
        } else {
            format!("{}: {asm} made the state wrong", p.insn_location(*c))
        }
    });
    let snippet = here.as_ref().map(|h| {
        source_element(
            h,
            &label,
            cause.as_ref().map(|(_, s)| s),
            cause_label.as_deref(),
        )
    });
    if notes.is_empty() && snippet.is_none() {
        return None;
    }
    let mut group = Group::with_title(Level::WARNING.primary_title(title.as_str()));
    if let Some(e) = snippet {
        group = match e {
            Source::Snippet(s) => group.element(s),
            Source::Origin(o) => group.element(o),
        };
    }
    for n in &notes {
        group = group.element(Level::NOTE.message(n.as_str()));
    }
    Some(Renderer::plain().render(&[group]) + "\n\n")
}

enum Source<'a> {
    Snippet(Snippet<'a, annotate_snippets::Annotation<'a>>),
    Origin(Origin<'a>),
}

/// The warning's source line (and the cause's when it is in the same file, within 40
/// lines), with the text when the file can be read; else the file and line only.
fn source_element<'a>(
    here: &SourceLine,
    label: &'a str,
    cause: Option<&SourceLine>,
    cause_label: Option<&'a str>,
) -> Source<'a> {
    let path = here.file.display().to_string();
    let cause = cause.filter(|c| c.file == here.file && c.line.abs_diff(here.line) <= 40);
    let first = cause.map_or(here.line, |c| c.line.min(here.line));
    let last = cause.map_or(here.line, |c| c.line.max(here.line));
    let mut text = String::new();
    let mut spans: HashMap<u32, std::ops::Range<usize>> = HashMap::new();
    for n in first..=last {
        let Some(l) = line_text(&here.file, n) else {
            let mut o = Origin::path(path).line(here.line as usize);
            if let Some(c) = here.column.filter(|&c| c > 0) {
                o = o.char_column(c as usize);
            }
            return Source::Origin(o);
        };
        let start = text.len();
        let trimmed = l.trim();
        let lead = l.len() - l.trim_start().len();
        // the code without its trailing comment
        let code = trimmed.split('#').next().unwrap_or(trimmed).trim_end();
        spans.insert(n, start + lead..start + lead + code.len().max(1));
        text.push_str(&l);
        text.push('\n');
    }
    let mut s = Snippet::source(text)
        .line_start(first as usize)
        .path(path)
        .fold(true)
        .annotation(
            AnnotationKind::Primary
                .span(spans[&here.line].clone())
                .label(label),
        );
    if let (Some(c), Some(cl)) = (cause, cause_label) {
        if c.line != here.line {
            s = s.annotation(
                AnnotationKind::Context
                    .span(spans[&c.line].clone())
                    .label(cl),
            );
        }
    }
    Source::Snippet(s)
}
