//! objtool's help and usage text, laid out as libsubcmd lays it out
//! (`usage_with_options`, `parse_options_usage`): the table of
//! [`super::objtool_args`], each group sorted, the help at column 26.

use super::objtool_args::{Exit, Kind, OPTIONS, Opt, exit};

pub(super) fn usage_head(usage: &str) -> String {
    format!("\n Usage: {usage}\n")
}

/// `usage_with_options`: the usage line and the sorted table (status 129). With `words`
/// (arguments after `--help`), only the options they name.
pub(super) fn usage_exit(usage: &str, error: Option<&str>, words: &[String]) -> Exit {
    let mut s = String::new();
    if let Some(e) = error {
        s.push_str(&format!("  Error: {e}\n"));
    }
    s.push_str(&usage_head(usage));
    for opt in sorted() {
        if !words.is_empty() && !named_by(opt, words) {
            continue;
        }
        s.push_str(&option_help(opt));
    }
    s.push('\n');
    exit(s, 129)
}

/// The table with each group sorted by short name (case-insensitive; none last), then long.
fn sorted() -> Vec<&'static Opt> {
    let mut out: Vec<&Opt> = Vec::new();
    let mut start = 0;
    for opt in OPTIONS {
        if opt.is_group() {
            out[start..].sort_by_key(|o| order_key(o));
            out.push(opt);
            start = out.len();
        } else {
            out.push(opt);
        }
    }
    out[start..].sort_by_key(|o| order_key(o));
    out
}

fn order_key(o: &Opt) -> (u8, &'static str) {
    let s = match o.short.to_ascii_lowercase() {
        0 => b'z' + 1,
        c => c,
    };
    (s, o.long)
}

/// libsubcmd's `option__in_argv`: whether one of the words names the option (`-o`, `--orc`,
/// `o`, `orc`, or a word of its help).
fn named_by(opt: &Opt, words: &[String]) -> bool {
    words.iter().any(|w| {
        let b = w.as_bytes();
        if b.first() != Some(&b'-') {
            if b.len() == 1 {
                return b[0] == opt.short;
            }
            return (!opt.is_group() && opt.long == w)
                || opt.help.to_lowercase().contains(&w.to_lowercase());
        }
        b.get(1).copied().unwrap_or(0) == opt.short
            || (!opt.is_group() && w.strip_prefix("--") == Some(opt.long))
    })
}

/// `parse_options_usage`'s list: the options (in table order) whose name starts with `arg`.
pub(super) fn matching_options(arg: &str, short: bool) -> String {
    let mut s = String::new();
    for opt in OPTIONS.iter().filter(|o| !o.is_group()) {
        if short {
            if arg.as_bytes().first() == Some(&opt.short) {
                s.push_str(&option_help(opt));
                break;
            }
            continue;
        }
        if opt.long.starts_with(arg) {
            s.push_str(&option_help(opt));
        }
        // ("n" and "no" make libsubcmd compare past the end of the word: left out)
        if arg == "no-" {
            s.push_str(&option_help(opt));
        }
    }
    s
}

/// One line of the help, laid out as libsubcmd does (help text at column 26).
fn option_help(opt: &Opt) -> String {
    if opt.is_group() {
        return format!("\n{}\n", opt.help);
    }
    let mut head = String::from("    ");
    if opt.short != 0 {
        head.push('-');
        head.push(opt.short as char);
        head.push_str(", ");
    } else {
        head.push_str("    ");
    }
    head.push_str("--");
    head.push_str(opt.long);
    match opt.kind {
        Kind::Integer(_) => head.push_str(" <n>"),
        Kind::Callback(_) => head.push_str(&format!("[=<{}>]", opt.argh)),
        _ => {}
    }
    const WIDTH: usize = 24;
    if head.len() <= WIDTH {
        format!("{head:<w$}{}\n", opt.help, w = WIDTH + 2)
    } else {
        format!("{head}\n{:w$}{}\n", "", opt.help, w = WIDTH + 2)
    }
}
