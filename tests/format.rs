//! `check --format json|sarif`: the findings as data, checked field by field; the default
//! text output is untouched.

mod common;

use common::{Scratch, assemble, fixtures, orctool};
use serde_json::Value;

fn object(d: &Scratch, fixture: &str) -> String {
    let obj = d.path(&format!("{fixture}.o"));
    assemble(&fixtures().join(format!("cfi/{fixture}.S")), &obj);
    obj.to_str().unwrap().to_owned()
}

#[test]
fn json_one_object_per_finding() {
    let d = Scratch::new("format-json");
    let a = object(&d, "ex_table_stack");
    let b = object(&d, "backtrace");
    let out = orctool(&["check", "--format", "json", &a, &b]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let (la, lb): (Vec<&Value>, Vec<&Value>) = lines.iter().partition(|l| l["file"] == a.as_str());
    // backtrace: 3 warnings and 5 backtrace lines
    assert_eq!(lb.len(), 8);
    assert_eq!(la[0], &lines[0]);
    assert!(la[1..].iter().all(|l| l["kind"] == "backtrace"));
    let w = &lines[0];
    assert_eq!(w["file"], a.as_str());
    assert_eq!(w["kind"], "warning");
    assert_eq!(w["rule"], "stack-state-mismatch");
    assert_eq!(w["message"], "stack state mismatch: cfa1=4+16 cfa2=4+24");
    assert_eq!(w["section"], ".text");
    assert_eq!(w["function"], "f2");
    assert_eq!(w["function_offset"], 1);
    assert!(w["offset"].as_u64().unwrap() > 1);
    assert_eq!(w["states"]["what"], "cfa");
    assert_eq!(w["states"]["first"], "rsp+16");
    assert_eq!(w["states"]["second"], "rsp+24");
    let kinds: Vec<&str> = lb.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "warning",
            "backtrace",
            "backtrace",
            "warning",
            "backtrace",
            "backtrace",
            "warning",
            "backtrace"
        ]
    );
    assert_eq!(lb[0]["message"], "return with modified stack frame");
    assert_eq!(lb[0]["rule"], "return-with-modified-frame");
    assert_eq!(lb[1]["message"], "(branch)");
    assert_eq!(lb[1]["function_offset"], 3);
    assert!(lb[0].get("states").is_none());
    // a mismatch after a hint: the section and offset
    assert_eq!(lb[6]["offset"], 0x16);
    assert_eq!(lb[6]["states"]["what"], "type");
    assert_eq!(lb[6]["states"]["first"], "2");
}

#[test]
fn text_is_the_default() {
    let d = Scratch::new("format-text");
    let a = object(&d, "ex_table_stack");
    let plain = orctool(&["check", &a]);
    let text = orctool(&["check", "--format", "text", &a]);
    assert_eq!(plain.stderr, text.stderr);
    assert_eq!(
        String::from_utf8_lossy(&plain.stderr),
        format!("{a}: warning: orctool: f2+0x1: stack state mismatch: cfa1=4+16 cfa2=4+24\n")
    );
    assert!(plain.stdout.is_empty());
}

#[test]
fn sarif_log_structure() {
    let d = Scratch::new("format-sarif");
    let a = object(&d, "ex_table_stack");
    let b = object(&d, "backtrace");
    let out = orctool(&["check", "--format", "sarif", &a, &b]);
    assert_eq!(out.status.code(), Some(0));
    let log: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(log["version"], "2.1.0");
    assert!(log["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let runs = log["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let driver = &runs[0]["tool"]["driver"];
    assert_eq!(driver["name"], "orctool");
    assert!(driver["version"].is_string());
    let rules: Vec<&str> = driver["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["stack-state-mismatch", "return-with-modified-frame"]
    );
    let results = runs[0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for r in results {
        let id = r["ruleId"].as_str().unwrap();
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index], id);
        assert_eq!(r["level"], "warning");
        assert!(r["message"]["text"].is_string());
        let loc = &r["locations"][0];
        assert!(loc["physicalLocation"]["artifactLocation"]["uri"].is_string());
    }
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        a.as_str()
    );
    let logical = &results[0]["locations"][0]["logicalLocations"][0];
    assert_eq!(logical["name"], "f2");
    assert_eq!(logical["fullyQualifiedName"], "f2+0x1");
    assert_eq!(logical["kind"], "function");
    // a warning's backtrace is part of its message
    assert_eq!(
        results[1]["message"]["text"],
        "return with modified stack frame\nf1+0x3: (branch)\nf1+0x0: <=== (sym)"
    );
}
