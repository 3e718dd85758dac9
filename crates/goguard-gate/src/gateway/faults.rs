//! The faults switched on at run time (`/admin/faults`), by route: one board per gateway,
//! handed from each stack to the next, so that a fault outlives a reload while its route
//! exists. Each route's [`RouteFaults`] is shared with that route's fault layer in every
//! stack that has the route (the running one, and a gray release's beside it).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Faults as Settings;
use crate::layer::fault::{Bound, Fault, Rule};
use crate::layer::RouteFaults;

/// The longest `POST /admin/faults` body read.
pub const MAX_REQUEST_BYTES: usize = 128 * 1024;
/// The most faults switched on at once, over every route.
pub const MAX_FAULTS: usize = 256;

#[derive(Default)]
pub struct FaultBoard {
    routes: Mutex<BTreeMap<String, Arc<RouteFaults>>>,
    next_id: AtomicU64,
    /// Requests faulted now over every route.
    active: Arc<AtomicUsize>,
}

/// A fault asked for through the admin API, checked.
pub struct Wanted {
    pub route: String,
    pub rule: Rule,
    pub ttl: Duration,
}

impl FaultBoard {
    /// The route's run-time faults (made on first use).
    pub fn route(&self, name: &str) -> Arc<RouteFaults> {
        self.lock().entry(name.to_string()).or_default().clone()
    }

    /// The bound over every route, on this board's count.
    pub fn bound(&self, settings: &Settings) -> Bound {
        Bound {
            active: self.active.clone(),
            max: settings.max_active_faults as usize,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<RouteFaults>>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Switches a fault on; it ends by itself after its ttl. Refused past [`MAX_FAULTS`].
    pub fn add(&self, w: Wanted) -> Result<Arc<Fault>, String> {
        if self.list().len() >= MAX_FAULTS {
            return Err(format!(
                "{MAX_FAULTS} faults are on already: remove some first"
            ));
        }
        let id = format!("f{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let fault = Arc::new(Fault::new(id, w.rule, Some(w.ttl)));
        self.route(&w.route).add(fault.clone());
        Ok(fault)
    }

    /// Every fault switched on and not expired, with its route.
    pub fn list(&self) -> Vec<(String, Arc<Fault>)> {
        let now = Instant::now();
        let routes = self.lock().clone();
        let mut out: Vec<_> = routes
            .iter()
            .flat_map(|(name, r)| {
                r.list()
                    .iter()
                    .filter(|f| !f.expired(now))
                    .map(|f| (name.clone(), f.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        // In the order they were switched on.
        out.sort_by_key(|(_, f)| f.id[1..].parse::<u64>().unwrap_or(0));
        out
    }

    /// Removes the faults `which` picks, on every route; returns them with their routes.
    pub fn remove(&self, which: impl Fn(&str, &Fault) -> bool) -> Vec<(String, Arc<Fault>)> {
        let routes = self.lock().clone();
        let mut out = Vec::new();
        for (name, r) in routes {
            out.extend(
                r.remove(|f| which(&name, f))
                    .into_iter()
                    .map(|f| (name.clone(), f)),
            );
        }
        out
    }

    /// Removes the expired faults; returns them.
    pub fn sweep(&self) -> Vec<(String, Arc<Fault>)> {
        let now = Instant::now();
        self.remove(|_, f| f.expired(now))
    }

    /// Drops the faults of routes that are not in `names` any more (after a reload);
    /// returns them. Their routes' counts go too.
    pub fn keep_routes(&self, names: &[&str]) -> Vec<(String, Arc<Fault>)> {
        let mut routes = self.lock();
        let gone: Vec<String> = routes
            .keys()
            .filter(|k| !names.contains(&k.as_str()))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for name in gone {
            if let Some(r) = routes.remove(&name) {
                out.extend(r.list().iter().map(|f| (name.clone(), f.clone())));
            }
        }
        out
    }
}

/// Reads a `POST /admin/faults` body: `{"route":..,"kind":..,..,"ttl":"60s"}`, checked
/// against the routes that exist and the ttl bounds. The error is one line for the client.
pub fn parse_request(
    body: &[u8],
    routes: &[&str],
    settings: &Settings,
    colour: bool,
) -> Result<Wanted, String> {
    let mut v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| format!("the body is not a JSON object: {e}"))?;
    let route = match v.remove("route") {
        Some(serde_json::Value::String(r)) => r,
        Some(_) => return Err("route: a route's name (a string)".into()),
        None => return Err("route: missing (the name of a route)".into()),
    };
    if !routes.contains(&route.as_str()) {
        return Err(format!(
            "route: no route `{route}` (routes: {})",
            routes.join(", ")
        ));
    }
    let ttl = match v.remove("ttl") {
        None | Some(serde_json::Value::Null) => settings.default_ttl,
        Some(serde_json::Value::String(t)) => humantime::parse_duration(&t)
            .map_err(|e| format!("ttl: `{t}`: {e} (write 60s, 500ms, 5m)"))?,
        Some(_) => return Err("ttl: a duration as text (\"60s\")".into()),
    };
    if ttl.is_zero() {
        return Err("ttl: more than 0".into());
    }
    if ttl > settings.max_ttl {
        return Err(format!(
            "ttl: {} is above the maximum, {} ([faults] max_ttl)",
            humantime::format_duration(ttl),
            humantime::format_duration(settings.max_ttl)
        ));
    }
    // toxiproxy's spelling of a bandwidth: `rate` in KB/s (1000 bytes).
    if let Some(rate) = v.remove("rate") {
        if v.contains_key("bytes_per_second") {
            return Err(
                "rate: give rate (KB/s, as toxiproxy) or bytes_per_second, not both".into(),
            );
        }
        let kb = rate
            .as_u64()
            .filter(|kb| *kb > 0)
            .ok_or("rate: a whole number of KB/s (1000 bytes), at least 1")?;
        v.insert("bytes_per_second".into(), kb.saturating_mul(1000).into());
    }
    if !v.contains_key("kind") {
        return Err("kind: missing (delay, abort, reset or bandwidth)".into());
    }
    let rule: Rule = serde_json::from_value(serde_json::Value::Object(v)).map_err(|e| {
        // serde_json's message ends with the position in the re-encoded value: none
        // the client could use.
        let m = e.to_string();
        m.split(" at line ").next().unwrap_or(&m).to_string()
    })?;
    if let Some((field, message)) = rule.problems().into_iter().next() {
        return Err(format!("{}: {message}", field.join(".")));
    }
    if rule.coloured_only && !colour {
        return Err("coloured_only: no request is coloured without a [colour] section in the configuration; set coloured_only to false to fault a share of all requests".into());
    }
    Ok(Wanted { route, rule, ttl })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked() {
        let s = Settings::default();
        let routes = ["orders"];
        let p = |b: &str| parse_request(b.as_bytes(), &routes, &s, true);
        let w = p(r#"{"route":"orders","kind":"delay","delay":"200ms","ttl":"60s"}"#).unwrap();
        assert_eq!(w.ttl, Duration::from_secs(60));
        assert_eq!(w.rule.delay, Some(Duration::from_millis(200)));
        assert!(w.rule.coloured_only);
        let w = p(r#"{"route":"orders","kind":"reset","coloured_only":false}"#).unwrap();
        assert_eq!(w.ttl, s.default_ttl);
        let err = |b: &str| p(b).err().unwrap();
        assert!(err(r#"{"route":"order","kind":"reset"}"#).starts_with("route: no route `order`"));
        assert!(err(r#"{"route":"orders","kind":"slow"}"#).contains("unknown variant `slow`"));
        assert_eq!(
            err(r#"{"route":"orders","kind":"delay"}"#),
            "delay: a delay fault needs `delay`"
        );
        assert!(
            err(r#"{"route":"orders","kind":"reset","ttl":"2h"}"#).contains("above the maximum")
        );
        assert!(err(r#"{"route":"orders","kind":"reset","colour":1}"#)
            .contains("unknown field `colour`"));
        assert!(err("[1]").starts_with("the body is not a JSON object"));
        assert!(err(r#"{"kind":"reset"}"#).starts_with("route: missing"));
        let w = p(r#"{"route":"orders","kind":"bandwidth","rate":4}"#).unwrap();
        assert_eq!(w.rule.bytes_per_second, Some(4000), "toxiproxy's KB/s");
        assert!(
            err(r#"{"route":"orders","kind":"bandwidth","rate":4,"bytes_per_second":1}"#)
                .contains("not both")
        );
        let no_colour = parse_request(br#"{"route":"orders","kind":"reset"}"#, &routes, &s, false);
        assert!(no_colour.err().unwrap().starts_with("coloured_only"));
    }
}
