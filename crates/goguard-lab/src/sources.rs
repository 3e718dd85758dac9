//! The Go programs of the lab, embedded in the binary and written out to a temporary
//! module at run time. Each case is a package with `buggy.go` and `fixed.go` (so the static
//! rules can be checked on each), driven by `main.go` (and `cmd/labhttp` for the HTTP case:
//! importing net/http changes what the runtime's deadlock detector sees).

pub const FILES: &[(&str, &str)] = &[
    (
        "ch1deadlock/buggy.go",
        include_str!("../go/ch1deadlock/buggy.go"),
    ),
    (
        "ch1deadlock/fixed.go",
        include_str!("../go/ch1deadlock/fixed.go"),
    ),
    (
        "ch2closure/buggy.go",
        include_str!("../go/ch2closure/buggy.go"),
    ),
    (
        "ch2closure/fixed.go",
        include_str!("../go/ch2closure/fixed.go"),
    ),
    (
        "ch2context/buggy.go",
        include_str!("../go/ch2context/buggy.go"),
    ),
    (
        "ch2context/fixed.go",
        include_str!("../go/ch2context/fixed.go"),
    ),
    (
        "ch2handler/buggy.go",
        include_str!("../go/ch2handler/buggy.go"),
    ),
    (
        "ch2handler/fixed.go",
        include_str!("../go/ch2handler/fixed.go"),
    ),
    ("ch2range/buggy.go", include_str!("../go/ch2range/buggy.go")),
    ("ch2range/fixed.go", include_str!("../go/ch2range/fixed.go")),
    (
        "ch2sender/buggy.go",
        include_str!("../go/ch2sender/buggy.go"),
    ),
    (
        "ch2sender/fixed.go",
        include_str!("../go/ch2sender/fixed.go"),
    ),
    (
        "ch2ticker/buggy.go",
        include_str!("../go/ch2ticker/buggy.go"),
    ),
    (
        "ch2ticker/fixed.go",
        include_str!("../go/ch2ticker/fixed.go"),
    ),
    ("ch3after/buggy.go", include_str!("../go/ch3after/buggy.go")),
    ("ch3after/fixed.go", include_str!("../go/ch3after/fixed.go")),
    (
        "ch3default/buggy.go",
        include_str!("../go/ch3default/buggy.go"),
    ),
    (
        "ch3default/fixed.go",
        include_str!("../go/ch3default/fixed.go"),
    ),
    ("ch3drift/drift.go", include_str!("../go/ch3drift/drift.go")),
    (
        "ch4addaftergo/buggy.go",
        include_str!("../go/ch4addaftergo/buggy.go"),
    ),
    (
        "ch4addaftergo/fixed.go",
        include_str!("../go/ch4addaftergo/fixed.go"),
    ),
    (
        "ch4byvalue/buggy.go",
        include_str!("../go/ch4byvalue/buggy.go"),
    ),
    (
        "ch4byvalue/fixed.go",
        include_str!("../go/ch4byvalue/fixed.go"),
    ),
    (
        "ch4deferpanic/buggy.go",
        include_str!("../go/ch4deferpanic/buggy.go"),
    ),
    (
        "ch4deferpanic/fixed.go",
        include_str!("../go/ch4deferpanic/fixed.go"),
    ),
    (
        "ch4donetwice/buggy.go",
        include_str!("../go/ch4donetwice/buggy.go"),
    ),
    (
        "ch4donetwice/fixed.go",
        include_str!("../go/ch4donetwice/fixed.go"),
    ),
    (
        "ch4skipped/buggy.go",
        include_str!("../go/ch4skipped/buggy.go"),
    ),
    (
        "ch4skipped/fixed.go",
        include_str!("../go/ch4skipped/fixed.go"),
    ),
    (
        "cmd/labhttp/main.go",
        include_str!("../go/cmd/labhttp/main.go"),
    ),
    ("go.mod", include_str!("../go/go.mod")),
    (
        "internal/measure/measure.go",
        include_str!("../go/internal/measure/measure.go"),
    ),
    ("main.go", include_str!("../go/main.go")),
];
