//! libiscsi's SCSI and iSCSI conformance suite (`iscsi-test-cu --dataloss`) against a LUN
//! of the booted appliance, compared with the committed expectations in
//! tests/conformance/expected.txt: every test not listed there must pass, every listed
//! one must fail as written (a fix shows up as a failure here, so the file is updated and
//! stays true).

use star_lab::array::{one_controller, url, TESTER, TESTER2};
use star_lab::{root, scratch};
use std::collections::BTreeMap;
use std::process::Command;

/// One test's outcome as iscsi-test-cu reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
}

/// Reads iscsi-test-cu's verbose output: "Suite: S" starts a suite, "  Test: T ..." a
/// test, whose outcome is the next "passed" or "FAILED" right after the dots or at the
/// start of a line (it may come lines later, after the test's own messages).
fn parse_results(log: &str) -> BTreeMap<String, Outcome> {
    let mut results = BTreeMap::new();
    let mut suite = String::new();
    let mut pending: Option<String> = None;
    for line in log.lines() {
        if let Some(s) = line.strip_prefix("Suite: ") {
            suite = s.trim().to_string();
            continue;
        }
        let rest = if let Some(t) = line.trim_start().strip_prefix("Test: ") {
            let name = t.split(" ...").next().unwrap_or(t).trim();
            pending = Some(format!("{suite}.{name}"));
            &t[t.find("...").map_or(t.len(), |i| i + 3)..]
        } else {
            line
        };
        if let Some(name) = &pending {
            // The outcome starts its line (or follows "..."); a test's own messages say
            // "[FAILED] ..." in brackets, and may follow the outcome on its line.
            let rest = rest.trim_start();
            let outcome = if rest.starts_with("passed") {
                Some(Outcome::Passed)
            } else if rest.starts_with("FAILED") {
                Some(Outcome::Failed)
            } else {
                None
            };
            if let Some(o) = outcome {
                results.insert(name.clone(), o);
                pending = None;
            }
        }
    }
    results
}

/// CUnit's own count of failed tests, from its "Run Summary" line "tests  total ran passed
/// failed inactive".
fn summary_failed(log: &str) -> Option<usize> {
    let line = log.lines().find(|l| l.trim_start().starts_with("tests "))?;
    line.split_whitespace().nth(4)?.parse().ok()
}

/// The committed expectations: "Suite.Test  reason" per test that does not pass; a reason
/// starting "either:" accepts a pass too.
fn expected_failures() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root().join("tests/conformance/expected.txt")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, reason) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            assert!(
                !reason.trim().is_empty(),
                "expected.txt: {name} has no reason"
            );
            (name.to_string(), reason.trim().to_string())
        })
        .collect()
}

#[test]
fn parser_reads_passes_and_late_failures() {
    let log = "Suite: Read10\n  Test: Simple ...passed\n  Test: BeyondEol ...    \
               [FAILED] READ10 beyond end\nFAILED\n    1. test_read10.c:40  - x\nSuite: \
               Reserve6\n  Test: LUNReset ...passed    [FAILED] PRIN: UNIT ATTENTION\n\
               Suite: Unmap\n  Test: Simple ...    [SKIPPED] no UNMAP\npassed\n";
    let r = parse_results(log);
    assert_eq!(r.get("Read10.Simple"), Some(&Outcome::Passed));
    assert_eq!(r.get("Read10.BeyondEol"), Some(&Outcome::Failed));
    assert_eq!(r.get("Reserve6.LUNReset"), Some(&Outcome::Passed));
    assert_eq!(r.get("Unmap.Simple"), Some(&Outcome::Passed));
    assert_eq!(r.len(), 4);
    let summary = "Run Summary:    Type  Total    Ran Passed Failed Inactive\n              \
                   suites     51     51    n/a      0        0\n               tests    \
                   230    230    211     19        0\n";
    assert_eq!(summary_failed(summary), Some(19));
}

#[test]
fn libiscsi_conformance_suite_matches_the_expectations() {
    let dir = scratch("conformance");
    let (mut vm, _, port) = one_controller(&dir);

    // LUN 1 (data1, 32 MiB): both of the suite's initiator names are mapped to it.
    let o = Command::new("iscsi-test-cu")
        .args([
            "--dataloss",
            "-t",
            "ALL",
            "-i",
            TESTER,
            "-I",
            TESTER2,
            &url(port, 1),
        ])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stdout).into_owned();
    std::fs::write(dir.join("iscsi-test-cu.log"), &log).unwrap();
    vm.power_off();

    let results = parse_results(&log);
    let expected = expected_failures();
    assert!(
        results.len() > 200,
        "only {} test results in iscsi-test-cu's output ({}):\n{log}{}",
        results.len(),
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let failed = results.values().filter(|o| **o == Outcome::Failed).count();
    assert_eq!(
        summary_failed(&log),
        Some(failed),
        "the parsed results disagree with iscsi-test-cu's summary:\n{log}"
    );
    let mut problems = Vec::new();
    for (name, outcome) in &results {
        match (outcome, expected.get(name)) {
            (Outcome::Failed, None) => problems.push(format!("{name}: FAILED (a regression)")),
            // "either:" marks a test whose outcome depends on timing on this kernel.
            (Outcome::Passed, Some(reason)) if !reason.starts_with("either:") => problems.push(
                format!("{name}: passed, but expected.txt says it fails: take it out"),
            ),
            _ => {}
        }
    }
    for name in expected.keys() {
        if !results.contains_key(name) {
            problems.push(format!("{name}: listed in expected.txt but did not run"));
        }
    }
    let passed = results.values().filter(|o| **o == Outcome::Passed).count();
    eprintln!(
        "iscsi-test-cu: {} tests, {passed} passed, {} expected failures",
        results.len(),
        expected.len()
    );
    assert!(
        problems.is_empty(),
        "conformance differs from tests/conformance/expected.txt (log in {}):\n{}",
        dir.display(),
        problems.join("\n")
    );
}
