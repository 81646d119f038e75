//! objtool 6.12's command line, parsed as objtool parses it: the kernel's `libsubcmd`
//! option parser (`tools/lib/subcmd/parse-options.c`) with the table of
//! `tools/objtool/builtin-check.c`. Unique prefixes of long options (`--or`), `--no-X`
//! negation of every option, clustered short options (`-ou`), `--opt=value` and
//! `--prefix <n>`, `OBJTOOL_ARGS` and `OBJTOOL_VERBOSE`, and objtool's usage text, error
//! wording and exit statuses (129 for usage, 130 for `--list-opts`).
//!
//! Pure: arguments in, [`ObjtoolOpts`] or the text and status objtool would exit with out.

use std::ffi::{OsStr, OsString};

use super::objtool_usage::{matching_options, usage_exit, usage_head};

/// objtool's `struct opts`, as far as the command line sets it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjtoolOpts {
    pub hack_jump_label: bool,
    pub hack_noinstr: bool,
    pub hack_skylake: bool,
    pub ibt: bool,
    pub mcount: bool,
    pub noinstr: bool,
    pub orc: bool,
    pub retpoline: bool,
    pub rethunk: bool,
    pub unret: bool,
    pub prefix: i32,
    pub sls: bool,
    pub stackval: bool,
    pub static_call: bool,
    pub uaccess: bool,
    pub cfi: bool,
    pub dump_orc: bool,
    pub backtrace: bool,
    pub backup: bool,
    pub dry_run: bool,
    pub link: bool,
    pub module: bool,
    pub mnop: bool,
    pub no_unreachable: bool,
    pub sec_address: bool,
    pub stats: bool,
    pub verbose: bool,
}

/// The end of a run decided by the command line alone: what objtool prints, and its status.
#[derive(Debug, PartialEq, Eq)]
pub struct Exit {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

/// A parsed command line: the options and the one object file.
#[derive(Debug)]
pub struct Parsed {
    pub opts: ObjtoolOpts,
    pub file: OsString,
}

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Group,
    Bool(fn(&mut ObjtoolOpts) -> &mut bool),
    /// `OPT_CALLBACK_OPTARG`: `--hacks[=LIST]`, `--dump[=orc]`.
    Callback(fn(&mut ObjtoolOpts, Option<&str>) -> bool),
    /// `OPT_INTEGER`: `--prefix <n>`.
    Integer(fn(&mut ObjtoolOpts) -> &mut i32),
}

pub(super) struct Opt {
    pub(super) short: u8,
    pub(super) long: &'static str,
    pub(super) kind: Kind,
    /// The value's name in the help (`[=<orc>]`).
    pub(super) argh: &'static str,
    pub(super) help: &'static str,
}

impl Opt {
    pub(super) fn is_group(&self) -> bool {
        matches!(self.kind, Kind::Group)
    }
}

macro_rules! b {
    ($short:expr, $long:expr, $field:ident, $help:expr) => {
        Opt {
            short: $short,
            long: $long,
            kind: Kind::Bool(|o| &mut o.$field),
            argh: "",
            help: $help,
        }
    };
}

const fn group(help: &'static str) -> Opt {
    Opt {
        short: 0,
        long: "",
        kind: Kind::Group,
        argh: "",
        help,
    }
}

/// objtool's `parse_hacks`: a substring test per hack (its "lazy" comma-separated list);
/// no value (or `--no-hacks`) means all of them.
fn hacks(o: &mut ObjtoolOpts, s: Option<&str>) -> bool {
    let on = |name| s.is_none_or(|s| s.contains(name));
    let mut found = false;
    for (name, field) in [
        ("jump_label", &mut o.hack_jump_label),
        ("noinstr", &mut o.hack_noinstr),
        ("skylake", &mut o.hack_skylake),
    ] {
        if on(name) {
            *field = true;
            found = true;
        }
    }
    found
}

fn dump(o: &mut ObjtoolOpts, s: Option<&str>) -> bool {
    let ok = s.is_none_or(|s| s == "orc");
    o.dump_orc |= ok;
    ok
}

/// The table, in objtool's order (which decides abbreviations, error listings and
/// `--list-opts`; the help sorts each group).
pub(super) const OPTIONS: &[Opt] = &[
    group("Actions:"),
    Opt {
        short: b'h',
        long: "hacks",
        kind: Kind::Callback(hacks),
        argh: "jump_label,noinstr,skylake",
        help: "patch toolchain bugs/limitations",
    },
    b!(b'i', "ibt", ibt, "validate and annotate IBT"),
    b!(
        b'm',
        "mcount",
        mcount,
        "annotate mcount/fentry calls for ftrace"
    ),
    b!(b'n', "noinstr", noinstr, "validate noinstr rules"),
    b!(b'o', "orc", orc, "generate ORC metadata"),
    b!(
        b'r',
        "retpoline",
        retpoline,
        "validate and annotate retpoline usage"
    ),
    b!(0, "rethunk", rethunk, "validate and annotate rethunk usage"),
    b!(0, "unret", unret, "validate entry unret placement"),
    Opt {
        short: 0,
        long: "prefix",
        kind: Kind::Integer(|o| &mut o.prefix),
        argh: "",
        help: "generate prefix symbols",
    },
    b!(
        b'l',
        "sls",
        sls,
        "validate straight-line-speculation mitigations"
    ),
    b!(b's', "stackval", stackval, "validate frame pointer rules"),
    b!(b't', "static-call", static_call, "annotate static calls"),
    b!(b'u', "uaccess", uaccess, "validate uaccess rules for SMAP"),
    b!(
        0,
        "cfi",
        cfi,
        "annotate kernel control flow integrity (kCFI) function preambles"
    ),
    Opt {
        short: 0,
        long: "dump",
        kind: Kind::Callback(dump),
        argh: "orc",
        help: "dump metadata",
    },
    group("Options:"),
    b!(0, "backtrace", backtrace, "unwind on error"),
    b!(
        0,
        "backup",
        backup,
        "create .orig files before modification"
    ),
    b!(0, "dry-run", dry_run, "don't write modifications"),
    b!(0, "link", link, "object is a linked object"),
    b!(0, "module", module, "object is part of a kernel module"),
    b!(0, "mnop", mnop, "nop out mcount call sites"),
    b!(
        0,
        "no-unreachable",
        no_unreachable,
        "skip 'unreachable instruction' warnings"
    ),
    b!(
        0,
        "sec-address",
        sec_address,
        "print section addresses in warnings"
    ),
    b!(0, "stats", stats, "print statistics"),
    b!(b'v', "verbose", verbose, "verbose warnings"),
];

pub const USAGE: &str = "objtool <actions> [<options>] file.o";
const ENV_USAGE: &str = "OBJTOOL_ARGS=\"<options>\"";

/// Parses objtool's command line (`args` without the program name) after `OBJTOOL_ARGS`
/// (`env_args`), as objtool's `cmd_parse_options` does.
pub fn parse(
    args: &[OsString],
    env_args: Option<&OsStr>,
    env_verbose: Option<&OsStr>,
) -> Result<Parsed, Exit> {
    let mut opts = ObjtoolOpts::default();
    if let Some(env) = env_args {
        // split at single spaces into at most 15 words; further words are dropped
        let env = env.to_string_lossy();
        let words: Vec<OsString> = env.split(' ').take(15).map(OsString::from).collect();
        Parser::new(&mut opts, ENV_USAGE).run(&words)?;
    }
    if env_verbose.is_some_and(|v| v == "1") {
        opts.verbose = true;
    }
    let files = Parser::new(&mut opts, USAGE).run(args)?;
    match <[OsString; 1]>::try_from(files) {
        Ok([file]) => Ok(Parsed { opts, file }),
        Err(_) => Err(usage_exit(USAGE, None, &[])),
    }
}

/// What went wrong with one argument (libsubcmd's `opterror` and friends).
enum Fail {
    /// Print `text`, then the usage and the options matching `arg` (`parse_options_usage`).
    Usage {
        text: String,
        arg: String,
        short: bool,
    },
    /// Not an option of the table: the full help after `Error: unknown …`.
    Unknown(String),
    /// Leave at once with this text and status (`check_typos`, `--help`, `--list-opts`).
    Exit(Exit),
}

struct Parser<'a> {
    opts: &'a mut ObjtoolOpts,
    usage: &'static str,
}

impl<'a> Parser<'a> {
    fn new(opts: &'a mut ObjtoolOpts, usage: &'static str) -> Self {
        Parser { opts, usage }
    }

    /// Parses every argument; returns the non-options (and everything after `--`).
    fn run(&mut self, args: &[OsString]) -> Result<Vec<OsString>, Exit> {
        let mut rest = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let arg = args[i].to_string_lossy().into_owned();
            let more = &args[i + 1..];
            let step = if arg == "--" {
                rest.extend_from_slice(more);
                break;
            } else if !arg.starts_with('-') || arg == "-" {
                rest.push(args[i].clone());
                Ok(0)
            } else if let Some(long) = arg.strip_prefix("--") {
                self.long(long, more)
            } else {
                self.short(&arg[1..], more)
            };
            match step {
                Ok(used) => i += 1 + used,
                Err(Fail::Usage { text, arg, short }) => {
                    let mut stderr = text;
                    stderr.push_str(&usage_head(self.usage));
                    stderr.push('\n');
                    stderr.push_str(&matching_options(&arg, short));
                    return Err(exit(stderr, 129));
                }
                Err(Fail::Unknown(what)) => {
                    return Err(usage_exit(self.usage, Some(&what), &[]));
                }
                Err(Fail::Exit(e)) => return Err(e),
            }
        }
        Ok(rest)
    }

    /// `-abc`: returns how many following arguments were used as values.
    fn short(&mut self, cluster: &str, more: &[OsString]) -> Result<usize, Fail> {
        for (n, c) in cluster.bytes().enumerate() {
            if c == b'h' {
                // libsubcmd's internal help comes before the table's `-h`
                return Err(Fail::Exit(self.help(more)));
            }
            let Some(opt) = OPTIONS.iter().find(|o| o.short == c && o.short != 0) else {
                return Err(Fail::Unknown(format!("unknown switch `{}'", c as char)));
            };
            match opt.kind {
                Kind::Bool(field) => *field(self.opts) = true,
                // (no short option of objtool's table takes a value)
                Kind::Callback(f) => {
                    if !f(self.opts, None) {
                        return Err(Fail::Usage {
                            text: String::new(),
                            arg: (c as char).to_string(),
                            short: true,
                        });
                    }
                }
                Kind::Integer(_) | Kind::Group => {}
            }
            if n == 0 && cluster.len() > 1 {
                typos(cluster)?;
            }
        }
        Ok(0)
    }

    /// `--name[=value]`, abbreviated or negated as libsubcmd allows.
    fn long(&mut self, arg: &str, more: &[OsString]) -> Result<usize, Fail> {
        match arg {
            "help" | "help-all" => return Err(Fail::Exit(self.help(more))),
            "list-opts" => {
                let mut s: String = OPTIONS
                    .iter()
                    .filter(|o| !o.is_group())
                    .map(|o| format!("--{} ", o.long))
                    .collect();
                s.push('\n');
                return Err(Fail::Exit(Exit {
                    stdout: s,
                    stderr: String::new(),
                    code: 130,
                }));
            }
            "list-cmds" => {
                return Err(Fail::Exit(Exit {
                    stdout: "\n".into(),
                    stderr: String::new(),
                    code: 130,
                }));
            }
            _ => {}
        }
        let (opt, unset, value) = find_long(arg)?;
        let usage = |text: String| Fail::Usage {
            text,
            arg: arg.to_owned(),
            short: false,
        };
        let name = if unset {
            format!("no-{}", opt.long)
        } else {
            opt.long.to_owned()
        };
        if unset && value.is_some() {
            return Err(usage(format!(" Error: option `{name}' takes no value")));
        }
        match opt.kind {
            Kind::Bool(field) => {
                if value.is_some() {
                    return Err(usage(format!(" Error: option `{name}' takes no value")));
                }
                *field(self.opts) = !unset;
                Ok(0)
            }
            Kind::Callback(f) => {
                if f(self.opts, if unset { None } else { value }) {
                    Ok(0)
                } else {
                    Err(usage(String::new()))
                }
            }
            Kind::Integer(field) => {
                if unset {
                    *field(self.opts) = 0;
                    return Ok(0);
                }
                let (text, used) = match (value, more.first()) {
                    (Some(v), _) => (v.to_owned(), 0),
                    (None, Some(next)) => (next.to_string_lossy().into_owned(), 1),
                    (None, None) => {
                        return Err(usage(format!(" Error: option `{name}' requires a value")));
                    }
                };
                match strtol(&text) {
                    Some(n) => {
                        *field(self.opts) = n;
                        Ok(used)
                    }
                    None => Err(usage(format!(
                        " Error: option `{name}' expects a numerical value"
                    ))),
                }
            }
            Kind::Group => Ok(0),
        }
    }

    /// `-h`, `--help`: the help; with more arguments after it, only the options they name.
    fn help(&self, more: &[OsString]) -> Exit {
        let words: Vec<String> = more
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        usage_exit(self.usage, None, &words)
    }
}

/// libsubcmd's long-option lookup: an exact name wins; else a unique prefix; `no-`
/// negates (and an option whose name starts with `no-` is also found without it).
/// Returns the option, whether it is negated, and the `=value`.
fn find_long(arg: &str) -> Result<(&'static Opt, bool, Option<&str>), Fail> {
    let name_end = arg.find('=').unwrap_or(arg.len());
    let after_eq = (name_end < arg.len()).then(|| &arg[name_end + 1..]);
    let mut abbrev: Option<(&Opt, bool)> = None;
    let mut ambiguous: Option<(&Opt, bool)> = None;
    // the value an abbreviation takes (set as libsubcmd sets it, while scanning)
    let mut abbrev_value = None;
    for opt in OPTIONS.iter().filter(|o| !o.is_group()) {
        let long = opt.long;
        let mut unset = false;
        let rest = match arg.strip_prefix(long) {
            Some(rest) => Some(rest),
            None => {
                let mut abbreviated = false;
                let mut rest = None;
                if let Some(base) = long.strip_prefix("no-") {
                    if let Some(r) = arg.strip_prefix(base) {
                        unset = true;
                        rest = Some(r);
                    } else if base.starts_with(arg) {
                        unset = true;
                        abbreviated = true;
                    }
                }
                if rest.is_none() && !abbreviated {
                    if long.starts_with(&arg[..name_end]) {
                        abbreviated = true;
                    } else if "no-".starts_with(arg) {
                        unset = true;
                        abbreviated = true;
                    } else if let Some(neg) = arg.strip_prefix("no-") {
                        unset = true;
                        match neg.strip_prefix(long) {
                            Some(r) => rest = Some(r),
                            None if long.starts_with(neg) => abbreviated = true,
                            None => continue,
                        }
                    } else {
                        continue;
                    }
                }
                if abbreviated {
                    if abbrev.is_some() {
                        ambiguous = abbrev;
                    }
                    if !unset && after_eq.is_some() {
                        abbrev_value = after_eq;
                    }
                    abbrev = Some((opt, unset));
                    continue;
                }
                rest
            }
        };
        let rest = rest.unwrap_or("");
        let value = match rest.strip_prefix('=') {
            Some(v) => Some(v),
            None if rest.is_empty() => abbrev_value,
            None => continue,
        };
        return Ok((opt, unset, value));
    }
    if let (Some((a, a_unset)), Some((b, b_unset))) = (ambiguous, abbrev) {
        let no = |u: bool| if u { "no-" } else { "" };
        return Err(Fail::Usage {
            text: format!(
                " Error: Ambiguous option: {arg} (could be --{}{} or --{}{})\n",
                no(a_unset),
                a.long,
                no(b_unset),
                b.long
            ),
            arg: arg.to_owned(),
            short: false,
        });
    }
    match abbrev {
        Some((opt, unset)) => Ok((opt, unset, abbrev_value)),
        None => Err(Fail::Unknown(format!("unknown option `{arg}'"))),
    }
}

/// `-orc` for `--orc`: libsubcmd's `check_typos` (a cluster of three or more letters that
/// starts a long option name, or starts with `no-`).
fn typos(cluster: &str) -> Result<(), Fail> {
    if cluster.len() < 3 {
        return Ok(());
    }
    if cluster.starts_with("no-")
        || OPTIONS
            .iter()
            .any(|o| !o.is_group() && o.long.starts_with(cluster))
    {
        return Err(Fail::Exit(exit(
            format!(" Error: did you mean `--{cluster}` (with two dashes ?)\n"),
            129,
        )));
    }
    Ok(())
}

/// C's `strtol(s, &end, 10)` with `*end == '\0'` required, truncated to `int` as objtool
/// stores it. `None` when characters follow the number.
fn strtol(s: &str) -> Option<i32> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        // no number: the end is the start, fine only for an empty string
        return s.is_empty().then_some(0);
    }
    if n != digits.len() {
        return None;
    }
    let mut v: i64 = 0;
    for d in digits.bytes() {
        v = v.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    Some((if neg { v.saturating_neg() } else { v }) as i32)
}

pub(super) fn exit(stderr: String, code: u8) -> Exit {
    Exit {
        stdout: String::new(),
        stderr,
        code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<ObjtoolOpts, Exit> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&args, None, None).map(|p| p.opts)
    }

    #[test]
    fn abbreviations_negations_and_values() {
        let o = p(&["--or", "--hacks=jump_label", "--prefix", "16", "x.o"]).unwrap();
        assert!(o.orc && o.hack_jump_label && !o.hack_noinstr && o.prefix == 16);
        let o = p(&["--orc", "--no-orc", "--unreachable", "-ou", "x.o"]).unwrap();
        assert!(o.orc && o.uaccess && !o.no_unreachable);
        assert!(p(&["--no-hacks", "x.o"]).unwrap().hack_skylake);
        assert_eq!(p(&["--prefix=-3", "x.o"]).unwrap().prefix, -3);
        assert_eq!(p(&["--prefix=", "x.o"]).unwrap().prefix, 0);
        assert_eq!(p(&["--prefix=1x", "x.o"]).unwrap_err().code, 129);
        assert_eq!(p(&["--s", "x.o"]).unwrap_err().code, 129);
        assert_eq!(p(&["--list-opts"]).unwrap_err().code, 130);
    }

    #[test]
    fn strtol_as_c() {
        assert_eq!(strtol(" 12"), Some(12));
        assert_eq!(strtol("+7"), Some(7));
        assert_eq!(strtol(""), Some(0));
        assert_eq!(strtol(" "), None);
        assert_eq!(strtol("0x10"), None);
        assert_eq!(strtol("4294967297"), Some(1));
        assert_eq!(strtol("99999999999999999999"), Some(-1));
    }
}
