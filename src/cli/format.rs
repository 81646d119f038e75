//! `check --format json|sarif`: the findings as data for programs (CI systems, editors),
//! built from [`crate::report::Finding`], not from the printed text. `text` (the default) is
//! objtool's layout, printed by [`super::run`].

use clap::ValueEnum;
use serde::Serialize;

use crate::report::{CfiLoc, Finding, FindingKind, Kind, StateMismatch};

/// How `check` prints its findings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// objtool's lines on stderr (`FILE: warning: orctool: FUNC+0xOFF: msg`).
    #[default]
    Text,
    /// One JSON object per finding and line on stdout (JSON Lines).
    Json,
    /// One SARIF 2.1.0 log on stdout for all files.
    Sarif,
}

/// One finding as JSON.
#[derive(Serialize, Debug)]
pub struct JsonFinding {
    pub file: String,
    /// `warning`, `backtrace` (a step of the path to the warning before it), `detail`
    /// (orctool's explanation of the warning before it) or `error`.
    pub kind: &'static str,
    /// A stable name of what was found (`stack-state-mismatch`).
    pub rule: String,
    /// objtool's message, without the location.
    pub message: String,
    pub section: Option<String>,
    pub offset: Option<u64>,
    pub function: Option<String>,
    pub function_offset: Option<u64>,
    /// The two states that disagree, in words, when the finding is about states.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub states: Option<States>,
    /// The source line of the location, when the object has DWARF line info.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// A source position (from the object's line table).
#[derive(Serialize, Debug, Clone)]
pub struct Source {
    pub file: String,
    pub line: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

#[derive(Serialize, Debug)]
pub struct States {
    /// What differs: `cfa`, a register name, `type`, `drap`, `orc entry`.
    pub what: String,
    /// The state recorded first (or the one the unwinder gets).
    pub first: String,
    /// The state that disagreed (or the one it needs).
    pub second: String,
}

/// `CFI_*` numbers in words (`rsp+8`, `CFA-16`).
fn loc(l: CfiLoc) -> String {
    let base = super::explain::base_name(l.base);
    match l.offset {
        0 => base,
        o => format!("{base}{o:+}"),
    }
}

fn states(what: &FindingKind) -> Option<States> {
    let s = |what: &str, first: String, second: String| States {
        what: what.to_owned(),
        first,
        second,
    };
    match what {
        FindingKind::StackStateMismatch(m) => Some(match m {
            StateMismatch::Cfa(a, b) => s("cfa", loc(*a), loc(*b)),
            StateMismatch::Reg(r, a, b) => {
                s(&super::explain::base_name(*r as i8), loc(*a), loc(*b))
            }
            StateMismatch::Type(a, b) => s("type", a.to_string(), b.to_string()),
            StateMismatch::Drap(a, b) => s("drap", format!("{a:?}"), format!("{b:?}")),
        }),
        FindingKind::AltReturnAddress { got, want, .. } => {
            Some(s("orc entry", got.clone(), want.clone()))
        }
        _ => None,
    }
}

/// The variant's name in kebab case: `StackStateMismatch(..)` → `stack-state-mismatch`.
pub fn rule_id(what: &FindingKind) -> String {
    let debug = format!("{what:?}");
    let name = debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    let mut id = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                id.push('-');
            }
            id.push(c.to_ascii_lowercase());
        } else {
            id.push(c);
        }
    }
    id
}

/// A finding of `file` as JSON data.
pub fn json_finding(file: &str, f: &Finding) -> JsonFinding {
    let at = f.at.as_ref();
    JsonFinding {
        file: file.to_owned(),
        kind: match f.kind {
            Kind::Warning => "warning",
            Kind::Backtrace => "backtrace",
            Kind::Detail => "detail",
        },
        rule: rule_id(&f.what),
        message: f.what.to_string(),
        section: at.map(|a| a.section_name.clone()),
        offset: at.map(|a| a.offset),
        function: at.and_then(|a| Some(a.function.as_ref()?.name.clone())),
        function_offset: at.and_then(|a| Some(a.function.as_ref()?.offset)),
        states: states(&f.what),
        source: None,
    }
}

/// An `error:` line of objtool's as JSON data.
pub fn json_error(file: &str, message: &str) -> JsonFinding {
    JsonFinding {
        file: file.to_owned(),
        kind: "error",
        rule: "error".to_owned(),
        message: message.to_owned(),
        section: None,
        offset: None,
        function: None,
        function_offset: None,
        states: None,
        source: None,
    }
}

/// JSON Lines: one object per line.
pub fn json_lines(items: &[JsonFinding]) -> String {
    let mut s = String::new();
    for i in items {
        if let Ok(line) = serde_json::to_string(i) {
            s.push_str(&line);
            s.push('\n');
        }
    }
    s
}

/// A file name as a URI reference (SARIF's `artifactLocation.uri`): every byte but
/// unreserved characters and `/` percent-encoded (`a b.o` → `a%20b.o`).
pub fn uri_reference(path: &str) -> String {
    let mut s = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The SARIF 2.1.0 `$schema`.
pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// One SARIF 2.1.0 log of the findings of all files: a run of orctool whose rules are the
/// kinds found, one result per warning or error (a warning's backtrace and explanation
/// lines follow it in its message).
pub fn sarif(items: &[JsonFinding]) -> String {
    use serde_json::{Value, json};
    let mut rules: Vec<String> = Vec::new();
    let mut results: Vec<Value> = Vec::new();
    for f in items {
        if matches!(f.kind, "backtrace" | "detail") {
            if let Some(text) = results.last_mut().and_then(|r| {
                r.pointer_mut("/message/text")
                    .and_then(|t| t.as_str().map(str::to_owned))
                    .map(|t| (r, t))
            }) {
                let (r, t) = text;
                let at = match (&f.function, f.function_offset) {
                    (Some(name), Some(off)) => format!("{name}+0x{off:x}: "),
                    _ => String::new(),
                };
                r["message"]["text"] = json!(format!("{t}\n{at}{}", f.message));
            }
            continue;
        }
        let index = match rules.iter().position(|r| *r == f.rule) {
            Some(i) => i,
            None => {
                rules.push(f.rule.clone());
                rules.len() - 1
            }
        };
        let object = json!({ "artifactLocation": { "uri": uri_reference(&f.file) } });
        // the source line first, when known (what editors and code scanning show), the
        // object then as a related location
        let mut location = match &f.source {
            Some(src) => {
                let mut region = json!({ "startLine": src.line });
                if let Some(c) = src.column.filter(|&c| c > 0) {
                    region["startColumn"] = json!(c);
                }
                json!({ "physicalLocation": {
                    "artifactLocation": { "uri": uri_reference(&src.file) },
                    "region": region,
                }})
            }
            None => json!({ "physicalLocation": object }),
        };
        if let (Some(name), Some(off)) = (&f.function, f.function_offset) {
            location["logicalLocations"] = json!([{
                "name": name,
                "fullyQualifiedName": format!("{name}+0x{off:x}"),
                "kind": "function",
            }]);
        }
        let mut result = json!({
            "ruleId": f.rule,
            "ruleIndex": index,
            "level": if f.kind == "error" { "error" } else { "warning" },
            "message": { "text": f.message },
            "locations": [location],
        });
        if f.source.is_some() {
            result["relatedLocations"] = json!([{
                "id": 0,
                "physicalLocation": object,
                "message": { "text": "the object" },
            }]);
        }
        if let (Some(sec), Some(off)) = (&f.section, f.offset) {
            result["properties"] = json!({ "section": sec, "offset": off });
        }
        if let Some(st) = &f.states {
            result["properties"]["states"] = json!(st);
        }
        results.push(result);
    }
    let log = json!({
        "version": "2.1.0",
        "$schema": SARIF_SCHEMA,
        "runs": [{
            "tool": { "driver": {
                "name": "orctool",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.iter().map(|r| json!({
                    "id": r,
                    "shortDescription": { "text": r.replace('-', " ") },
                })).collect::<Vec<_>>(),
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&log).unwrap_or_default() + "\n"
}
