//! The protobuf form of goroutine profiles (`/debug/pprof/goroutine`, `?debug=0`, and
//! `/debug/pprof/goroutineleak`): pprof's `profile.proto`, gzipped on the wire.
//!
//! Only the messages a goroutine profile uses are declared; prost skips the other fields.
//! Like debug=1, a sample aggregates identical stacks and prints no wait state: the state is
//! inferred from the frames.

use std::collections::BTreeMap;

use prost::Message;

use crate::parse::{infer_state, Frame, Goroutine, ParseError, ParseStats};

#[derive(Clone, PartialEq, Message)]
struct Profile {
    #[prost(message, repeated, tag = "1")]
    sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    sample: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    time_nanos: i64,
}

#[derive(Clone, PartialEq, Message)]
struct ValueType {
    #[prost(int64, tag = "1")]
    r#type: i64,
    #[prost(int64, tag = "2")]
    unit: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    label: Vec<Label>,
}

#[derive(Clone, PartialEq, Message)]
struct Label {
    #[prost(int64, tag = "1")]
    key: i64,
    #[prost(int64, tag = "2")]
    str: i64,
    #[prost(int64, tag = "3")]
    num: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Location {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(message, repeated, tag = "4")]
    line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
struct Line {
    #[prost(uint64, tag = "1")]
    function_id: u64,
    #[prost(int64, tag = "2")]
    line: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Function {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "2")]
    name: i64,
    #[prost(int64, tag = "4")]
    filename: i64,
}

/// True when the bytes look like the start of a `profile.proto` message rather than text:
/// the first byte is the tag of one of Profile's fields (Go writes `period_type`, field 11,
/// first; other writers start with `sample_type`, field 1) and a control byte that text
/// never holds follows within the first bytes.
pub(crate) fn looks_like_profile(head: &[u8]) -> bool {
    const FIELD_TAGS: &[u8] = &[
        0x0a, 0x12, 0x1a, 0x22, 0x2a, 0x32, 0x38, 0x40, 0x48, 0x50, 0x5a, 0x60, 0x68, 0x70,
    ];
    let Some(first) = head.first() else {
        return false;
    };
    FIELD_TAGS.contains(first)
        && head
            .iter()
            .take(16)
            .any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
}

/// Decodes a whole profile and hands each sample over as a weighted goroutine record.
pub(crate) fn parse_profile(
    bytes: &[u8],
    mut each: impl FnMut(Goroutine),
) -> Result<ParseStats, ParseError> {
    let p = Profile::decode(bytes).map_err(|e| ParseError::Protobuf(e.to_string()))?;
    let string = |i: i64| -> &str {
        usize::try_from(i)
            .ok()
            .and_then(|i| p.string_table.get(i))
            .map_or("", String::as_str)
    };
    let kind = p.sample_type.first().map_or("", |t| string(t.r#type));
    if kind != "goroutine" && kind != "goroutineleak" {
        return Err(ParseError::NotGoroutines(if kind.is_empty() {
            "it has no sample type".into()
        } else {
            format!("its samples are `{kind}`")
        }));
    }
    let leaked = kind == "goroutineleak";
    let functions: BTreeMap<u64, &Function> = p.function.iter().map(|f| (f.id, f)).collect();
    let locations: BTreeMap<u64, &Location> = p.location.iter().map(|l| (l.id, l)).collect();
    let mut stats = ParseStats {
        format: if leaked {
            "proto (goroutineleak)"
        } else {
            "proto"
        },
        dumps: 1,
        leak_checked: leaked,
        time_unix_nanos: (p.time_nanos > 0).then_some(p.time_nanos),
        ..ParseStats::default()
    };
    for s in &p.sample {
        // A delta profile (`-diff_base`) carries negative counts: only goroutines that are
        // there are analysed.
        let weight = s.value.first().copied().unwrap_or(0);
        if weight <= 0 {
            continue;
        }
        let mut frames = Vec::new();
        for id in &s.location_id {
            let Some(loc) = locations.get(id) else {
                continue;
            };
            // Inlined calls share a location: its lines go from the innermost call outwards,
            // the order of a stack.
            for line in &loc.line {
                let Some(f) = functions.get(&line.function_id) else {
                    continue;
                };
                frames.push(Frame {
                    function: string(f.name).to_string(),
                    file: string(f.filename).to_string(),
                    line: u32::try_from(line.line).unwrap_or(0),
                });
            }
        }
        let labels = s
            .label
            .iter()
            .map(|l| {
                let value = if l.str != 0 {
                    string(l.str).to_string()
                } else {
                    l.num.to_string()
                };
                (string(l.key).to_string(), value)
            })
            .collect();
        let weight = weight as usize;
        stats.goroutines += weight;
        each(Goroutine {
            state: infer_state(&frames).to_string(),
            frames,
            labels,
            leaked,
            weight,
            ..Goroutine::default()
        });
    }
    // A leak profile with no sample is a healthy answer, not an unreadable input.
    if stats.goroutines == 0 && !leaked {
        return Err(ParseError::NoGoroutines);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_a_profile_header() {
        let p = Profile {
            sample_type: vec![ValueType { r#type: 1, unit: 2 }],
            string_table: vec!["".into(), "goroutine".into(), "count".into()],
            ..Profile::default()
        };
        let bytes = p.encode_to_vec();
        assert!(looks_like_profile(&bytes));
        assert!(!looks_like_profile(b"goroutine 1 [running]:\n"));
        assert!(!looks_like_profile(b"\n\ngoroutine 1 [running]:\n"));
    }

    #[test]
    fn delta_profiles_keep_only_positive_counts() {
        let sample = |value: i64| Sample {
            location_id: vec![],
            value: vec![value],
            label: vec![],
        };
        let p = Profile {
            sample_type: vec![ValueType { r#type: 1, unit: 2 }],
            sample: vec![sample(3), sample(-2), sample(0)],
            string_table: vec!["".into(), "goroutine".into(), "count".into()],
            ..Profile::default()
        };
        let mut weights = Vec::new();
        let stats = parse_profile(&p.encode_to_vec(), |g| weights.push(g.weight)).unwrap();
        assert_eq!((weights, stats.goroutines), (vec![3], 3));
    }

    #[test]
    fn garbage_after_a_profile_header_is_a_clear_error() {
        let err = parse_profile(&[0x0a, 0x04, 0x08, 0x01, 0xff, 0xff], |_| {}).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid protobuf profile"),
            "{err}"
        );
    }

    #[test]
    fn other_profiles_are_named_in_the_error() {
        let p = Profile {
            sample_type: vec![ValueType { r#type: 1, unit: 2 }],
            string_table: vec!["".into(), "alloc_objects".into(), "count".into()],
            ..Profile::default()
        };
        let err = parse_profile(&p.encode_to_vec(), |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a goroutine profile: its samples are `alloc_objects`"
        );
    }

    #[test]
    fn samples_become_weighted_goroutines_with_inlined_frames() {
        let p = Profile {
            sample_type: vec![ValueType { r#type: 1, unit: 2 }],
            sample: vec![Sample {
                location_id: vec![1, 2],
                value: vec![7],
                label: vec![Label {
                    key: 5,
                    str: 6,
                    num: 0,
                }],
            }],
            location: vec![
                Location {
                    id: 1,
                    line: vec![Line {
                        function_id: 1,
                        line: 10,
                    }],
                },
                Location {
                    id: 2,
                    line: vec![
                        Line {
                            function_id: 2,
                            line: 20,
                        },
                        Line {
                            function_id: 3,
                            line: 30,
                        },
                    ],
                },
            ],
            function: vec![
                Function {
                    id: 1,
                    name: 3,
                    filename: 4,
                },
                Function {
                    id: 2,
                    name: 7,
                    filename: 4,
                },
                Function {
                    id: 3,
                    name: 8,
                    filename: 4,
                },
            ],
            string_table: [
                "",
                "goroutine",
                "count",
                "sync.runtime_SemacquireWaitGroup",
                "/src/main.go",
                "handler",
                "/orders",
                "main.inner",
                "main.outer",
            ]
            .map(String::from)
            .to_vec(),
            time_nanos: 0,
        };
        let mut seen = Vec::new();
        let stats = parse_profile(&p.encode_to_vec(), |g| seen.push(g)).unwrap();
        assert_eq!(stats.goroutines, 7);
        let g = &seen[0];
        assert_eq!(g.weight, 7);
        assert_eq!(g.state, "sync.WaitGroup.Wait");
        let names: Vec<_> = g.frames.iter().map(|f| f.function.as_str()).collect();
        assert_eq!(
            names,
            [
                "sync.runtime_SemacquireWaitGroup",
                "main.inner",
                "main.outer"
            ]
        );
        assert_eq!(g.labels.get("handler").map(String::as_str), Some("/orders"));
    }
}
