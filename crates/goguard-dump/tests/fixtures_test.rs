//! Hand-checked dumps in the formats of older Go versions and of rarely seen header parts,
//! each with what goguard must make of it.

use goguard_dump::analyze;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn group<'a>(a: &'a goguard_dump::Analysis, function: &str) -> &'a goguard_dump::Group {
    a.groups
        .iter()
        .find(|g| g.top_frame.as_ref().is_some_and(|f| f.function == function))
        .unwrap_or_else(|| panic!("no group for {function}: {:#?}", a.groups))
}

/// Go 1.17-1.20: `created by F` without `in goroutine N`, `semacquire` for every sync wait,
/// full argument lists.
#[test]
fn go_1_17_dumps() {
    let a = analyze(&fixture("go117.txt")).unwrap();
    assert_eq!(a.total, 5);
    let producers = group(&a, "main.produce");
    assert_eq!(producers.count, 2);
    assert_eq!(producers.wait_minutes, Some([13, 14]));
    assert_eq!(producers.created_by.as_ref().unwrap().function, "main.main");
    assert_eq!(producers.created_by.as_ref().unwrap().line, 30);
    assert!(producers.suspect, "blocked 14 minutes");
    assert_eq!(producers.rule, Some("G106"));
    let waiter = group(&a, "main.collect");
    assert_eq!(waiter.state, "semacquire");
    assert_eq!(waiter.class, goguard_dump::StateClass::Sync);
    assert!(waiter.suspect);
    assert_eq!(group(&a, "main.update").count, 1);
}

/// `(scan)`, `locked to thread`, `synctest bubble N`, `[originating from goroutine N]`
/// ancestors, elided frames, `?` arguments, inlined `(...)` frames and a goroutine running
/// on another thread.
#[test]
fn rarely_seen_header_parts_and_frames() {
    let a = analyze(&fixture("go121_extras.txt")).unwrap();
    assert_eq!(a.total, 5);
    assert!(!a.truncated);
    let workers = group(&a, "main.consume");
    // (scan), locked to thread and the synctest bubble do not split the group.
    assert_eq!(workers.count, 2);
    assert_eq!(workers.state, "chan receive");
    assert_eq!(workers.wait_minutes, Some([3, 5]));
    assert_eq!(
        workers.frames.len(),
        2,
        "the ancestor trace is not part of the stack"
    );
    assert_eq!(workers.frames[1].line, 18);
    let deep = group(&a, "main.deep");
    assert_eq!(deep.frames.len(), 2);
    assert_eq!(deep.created_by.as_ref().unwrap().line, 35);
    let other = a
        .groups
        .iter()
        .find(|g| g.frames.is_empty())
        .expect("the goroutine on another thread is still counted");
    assert_eq!(other.created_by.as_ref().unwrap().line, 36);
}

/// A goroutine whose stack was not printed is not known to be a server loop or a runtime
/// helper: nothing is said about it.
#[test]
fn a_goroutine_without_frames_is_not_called_long_lived() {
    let a = analyze(&fixture("go121_extras.txt")).unwrap();
    let other = a.groups.iter().find(|g| g.frames.is_empty()).unwrap();
    assert!(!other.reason.contains("long-lived"), "{}", other.reason);
}
