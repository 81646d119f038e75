//! `scripts/kernel-e2e.d/traces`, the parser that counts the sysrq-t task traces of a
//! kernel-e2e boot, on excerpts of boot logs (no kernel, no QEMU): a task the unwinder refused
//! because it ran on another CPU is left out of the count; every other short trace stays in it.

mod common;

use std::path::Path;
use std::process::Command;

use common::stdout_ok;

fn traces(fixture: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    stdout_ok(
        Command::new("bash")
            .arg(root.join("scripts/kernel-e2e.d/traces"))
            .arg(root.join("tests/fixtures/kernel-e2e").join(fixture))
            .output()
            .expect("bash runs"),
    )
}

/// The boot of a byte-identical kernel that the script once called a failure: rcu_preempt,
/// running on the other CPU during the dump, printed with "?" frames only, is left out and
/// reported; the dumping task (init, also "running task") is counted.
#[test]
fn running_task_left_out() {
    let out = traces("running-task.log");
    assert!(
        out.ends_with(
            "traces: 3 of 3 task traces reach the bottom (ret_from_fork*, entry_*, asm_*); \
             1 running task left out (on another CPU: 17 rcu_preempt); 0 unwinder warnings\n"
        ),
        "{out}"
    );
    insta::assert_snapshot!(out);
}

/// What must stay in the count: the dumping task with no reliable frame, a sleeping task whose
/// reliable frames stop early, a trace with no frame; a task in state R with reliable frames
/// is counted too. Only the task on another CPU (here in state S) is left out.
#[test]
fn short_traces_stay_counted() {
    insta::assert_snapshot!(traces("counted.log"));
}
