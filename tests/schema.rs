//! `check --format sarif` is valid against the official SARIF 2.1.0 JSON schema, and every
//! line of `--format json` against orctool's schema of one finding (both vendored under
//! tests/fixtures: see tests/fixtures/sarif/README.md). Formats (`uri`, `uri-reference`)
//! are validated too.

mod common;

use common::{Scratch, assemble, fixtures, orctool};
use serde_json::Value;

fn schema(path: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(fixtures().join(path)).expect("vendored schema");
    let mut schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    // The official SARIF schema's `language` patterns (of `run` and `toolComponent`) have a
    // stray `]`
    // (`^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$`) that the draft-07 meta-schema's
    // `format: regex` refuses once formats are checked: an erratum of the schema, mended here
    // in memory (the vendored file stays byte for byte as shipped; orctool writes no
    // `language`).
    let mut mended = 0;
    for def in ["run", "toolComponent"] {
        let at = format!("/definitions/{def}/properties/language/pattern");
        if let Some(p) = schema.pointer_mut(&at) {
            assert_eq!(p, "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$");
            *p = "^[a-zA-Z]{2}$|^[a-zA-Z]{2}-[a-zA-Z]{2}$".into();
            mended += 1;
        }
    }
    assert!(path.contains("sarif") == (mended == 2));
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Objects with warnings, backtraces, a detail line and an alternative-group conflict, and
/// last one assembled with `as -g` (source lines).
fn objects(d: &Scratch) -> Vec<String> {
    let mut v: Vec<String> = [
        "ex_table_stack",
        "backtrace",
        "alt_conflict",
        "ret_modified",
    ]
    .iter()
    .map(|f| {
        let obj = d.path(&format!("{f}.o"));
        assemble(&fixtures().join(format!("cfi/{f}.S")), &obj);
        obj.to_str().unwrap().to_owned()
    })
    .collect();
    for f in ["verbose/cause.S", "cfi/kernel-macros.inc"] {
        let from = fixtures().join(f);
        std::fs::copy(&from, d.path(from.file_name().unwrap().to_str().unwrap())).unwrap();
    }
    let out = std::process::Command::new("as")
        .current_dir(&d.0)
        .args(["-g", "-o", "cause.o", "cause.S"])
        .output()
        .unwrap();
    assert!(out.status.success());
    v.push(d.path("cause.o").to_str().unwrap().to_owned());
    v
}

#[test]
fn sarif_is_valid_sarif_2_1_0() {
    let v = schema("sarif/sarif-schema-2.1.0.json");
    let d = Scratch::new("schema-sarif");
    let mut files = objects(&d);
    // a file name that is no URI as it is
    let odd = d.path("a b%#.o");
    std::fs::copy(&files[0], &odd).unwrap();
    files.push(odd.to_str().unwrap().to_owned());
    let mut args = vec!["check", "--verbose", "--format", "sarif"];
    args.extend(files.iter().map(String::as_str));
    let out = orctool(&args);
    assert_eq!(out.status.code(), Some(0));
    let log: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert!(log["runs"][0]["results"].as_array().unwrap().len() >= 6);
    let e = errors(&v, &log);
    assert!(e.is_empty(), "not valid SARIF 2.1.0:\n{}", e.join("\n"));
    // with line info: the source line is the location, the object a related one
    let results = log["runs"][0]["results"].as_array().unwrap();
    let src = results
        .iter()
        .find(|r| r.get("relatedLocations").is_some())
        .expect("a result at a source line");
    let phys = &src["locations"][0]["physicalLocation"];
    assert!(
        phys["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .ends_with("/cause.S")
    );
    assert_eq!(phys["region"]["startLine"], 15);
    let object = &src["relatedLocations"][0]["physicalLocation"]["artifactLocation"]["uri"];
    assert!(object.as_str().unwrap().ends_with("/cause.o"));
    let last = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    let uri = last["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        .as_str()
        .unwrap();
    assert!(uri.ends_with("/a%20b%25%23.o"), "{uri}");
}

/// The validator is not lenient: a log with a misspelt property or a bad level fails.
#[test]
fn sarif_schema_rejects_a_broken_log() {
    let v = schema("sarif/sarif-schema-2.1.0.json");
    let d = Scratch::new("schema-sarif-broken");
    let files = objects(&d);
    let out = orctool(&["check", "--format", "sarif", &files[0]]);
    let mut log: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(errors(&v, &log).is_empty());
    log["runs"][0]["results"][0]["level"] = "severe".into();
    assert!(!errors(&v, &log).is_empty());
    let mut log2: Value = serde_json::from_slice(&out.stdout).unwrap();
    log2["runs"][0]["tool"]["driver"]["nmae"] = "x".into();
    assert!(!errors(&v, &log2).is_empty());
}

#[test]
fn json_lines_follow_the_finding_schema() {
    let v = schema("format/finding.schema.json");
    let d = Scratch::new("schema-json");
    let files = objects(&d);
    let mut args = vec!["check", "--verbose", "--format", "json"];
    args.extend(files.iter().map(String::as_str));
    let out = orctool(&args);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    let mut sourced = 0;
    for line in text.lines() {
        let doc: Value = serde_json::from_str(line).expect("one JSON object per line");
        let e = errors(&v, &doc);
        assert!(e.is_empty(), "{line}\n{}", e.join("\n"));
        kinds.insert(doc["kind"].as_str().unwrap().to_owned());
        // (code in a replacement has no line of its own)
        if let Some(file) = doc.get("source").map(|s| s["file"].as_str().unwrap()) {
            assert!(
                doc["file"].as_str().unwrap().ends_with("/cause.o"),
                "{line}"
            );
            assert!(file.ends_with("/cause.S"), "{line}");
            sourced += 1;
        }
    }
    assert!(sourced >= 3);
    // every kind of line but `error` was checked
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["backtrace", "detail", "warning"]
    );
    // and the schema is not lenient either
    let bad: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let mut b = bad.clone();
    b["kind"] = "warn".into();
    assert!(!errors(&v, &b).is_empty());
    let mut b = bad;
    b.as_object_mut().unwrap().remove("offset");
    assert!(!errors(&v, &b).is_empty());
}
