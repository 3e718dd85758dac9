//! What one input gave at one evaluation: a number, no data (an empty result, NaN), or an
//! error (the source unreachable, a bad query). Only a number takes part in a decision.

use serde::Serialize;

/// One input's figure at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Value(f64),
    /// The source answered, without a usable number (why).
    NoData(String),
    /// The source could not be asked, or refused the question (why).
    Failed(String),
}

impl Reading {
    pub fn value(&self) -> Option<f64> {
        match self {
            Reading::Value(v) => Some(*v),
            _ => None,
        }
    }

    /// A number, or no data for NaN and infinities (Prometheus answers NaN for 0/0).
    pub fn number(v: f64) -> Reading {
        if v.is_nan() {
            Reading::NoData("NaN".into())
        } else if v.is_infinite() {
            Reading::NoData(format!("{}Inf", if v > 0.0 { "+" } else { "-" }))
        } else {
            Reading::Value(v)
        }
    }

    /// Why there is no number, if there is none.
    pub fn why(&self) -> Option<&str> {
        match self {
            Reading::Value(_) => None,
            Reading::NoData(w) | Reading::Failed(w) => Some(w),
        }
    }
}

impl Serialize for Reading {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Reading::Value(v) => m.serialize_entry("value", v)?,
            Reading::NoData(w) => m.serialize_entry("no_data", w)?,
            Reading::Failed(w) => m.serialize_entry("error", w)?,
        }
        m.end()
    }
}

impl std::fmt::Display for Reading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reading::Value(v) => write!(f, "{}", crate::num(*v)),
            Reading::NoData(w) => write!(f, "no data ({w})"),
            Reading::Failed(w) => write!(f, "error ({w})"),
        }
    }
}
