//! Where each protection's section of a route's configuration becomes its layer, on state
//! taken over from the previous stack while the rule is unchanged. One function per
//! protection, called from [`super::route::RouteStack::build`].

use std::any::Any;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use tower::service_fn;
use tower::util::BoxCloneSyncService;

use super::route::BoxedBody;
use super::{fingerprint, Kept, Stack};
use crate::clock::SharedClock;
use crate::config::{BreakerScope, Fallback, Route};
use crate::layer::bloom::Source as BloomSource;
use crate::layer::breaker::Fallback as FallbackService;
use crate::layer::colour::Judge;
use crate::layer::{
    full, BloomHandle, BloomLayer, Body, BoxError, BreakerHandle, BreakerLayer, CacheHandle,
    CacheLayer, ColourHandle, ColourLayer, ConcurrencyHandle, ConcurrencyLayer, FaultLayer,
    LimitHandle, LimitLayer, ShadowLayer,
};
use crate::redis_link::RedisLink;
use crate::shared_limits::SharedLimits;
use crate::upstream::UpstreamPool;

/// The route's circuit breaker (`[routes.breaker]`), answering with `[routes.fallback]`
/// while it is open.
pub fn breaker(
    r: &Route,
    parts: &mut Parts,
    keep: &mut Keep,
) -> Result<Option<BreakerLayer<Body, Body>>, String> {
    let Some(rule) = &r.breaker else {
        return Ok(None);
    };
    let clock = parts.clock.clone();
    let make = || Ok(BreakerHandle::new(rule.clone(), clock));
    let handle = if rule.scope == BreakerScope::Upstream {
        // One breaker per upstream: made by its first route, shared by the others
        // (validation made sure their rules agree).
        match parts.upstream_breakers.get(&r.upstream) {
            Some(k) => k.value.clone(),
            None => {
                let old = parts
                    .previous
                    .and_then(|p| p.upstream_breakers.get(&r.upstream));
                let k = super::keep(old, rule, make)?;
                parts
                    .upstream_breakers
                    .insert(r.upstream.clone(), k.clone());
                k.value
            }
        }
    } else {
        keep.state("breaker", rule, make)?
    };
    let fallback = match &r.fallback {
        Some(f) => Some(fallback_service(f, parts.pools, parts.resolve)?),
        None => None,
    };
    Ok(Some(BreakerLayer::new(handle, fallback)))
}

/// The route's concurrency limit (`[routes.limit] concurrency`).
pub fn concurrency(
    r: &Route,
    keep: &mut Keep,
) -> Result<Option<BoxedBody<ConcurrencyLayer>>, String> {
    let Some(rule) = r.limit.as_ref().and_then(|l| l.concurrency.as_ref()) else {
        return Ok(None);
    };
    let handle = keep.state("concurrency", rule, || Ok(ConcurrencyHandle::new(rule)))?;
    Ok(Some(BoxedBody(ConcurrencyLayer::new(handle))))
}

/// The route's rate limits (`[routes.limit] per_key` and `total`), shared through Redis when
/// `[redis]` is set.
pub fn limit(r: &Route, parts: &Parts, keep: &mut Keep) -> Result<Option<LimitLayer>, String> {
    let Some(rule) = r
        .limit
        .as_ref()
        .filter(|l| l.per_key.is_some() || l.total.is_some())
    else {
        return Ok(None);
    };
    let shared = parts.shared_limits.cloned();
    // The state is the limiters': a change of the concurrency limit beside them keeps it.
    let kept_while = (rule.per_key.as_ref(), rule.total.as_ref(), shared.is_some());
    let handle = keep.state("limit", &kept_while, || {
        let name = format!("{}{}", parts.shared_scope, r.name);
        Ok(LimitHandle::new(&name, rule, shared, parts.clock.clone()))
    })?;
    Ok(Some(LimitLayer::new(handle)))
}

/// The route's read-through cache (`[routes.cache]`), with a second level in Redis when
/// `[redis]` is set.
pub fn cache(r: &Route, parts: &Parts, keep: &mut Keep) -> Result<Option<CacheLayer>, String> {
    let Some(rule) = &r.cache else {
        return Ok(None);
    };
    let redis = parts.cache_redis.filter(|_| rule.shared);
    // A new Redis (another URL) is a new second level.
    let kept_while = (rule, redis.map(|k| &k.rule));
    let handle = keep.state("cache", &kept_while, || {
        Ok(CacheHandle::new(
            &r.name,
            rule.clone(),
            redis.map(|k| k.value.clone()),
            parts.clock.clone(),
        ))
    })?;
    Ok(Some(CacheLayer::new(handle)))
}

/// The route's Bloom filter of valid ids (`[routes.bloom]`), loaded in the background.
pub fn bloom(r: &Route, parts: &Parts, keep: &mut Keep) -> Result<Option<BloomLayer>, String> {
    let Some(rule) = &r.bloom else {
        return Ok(None);
    };
    let source = match &rule.source {
        BloomSource::File(p) => BloomSource::File((parts.resolve)(p)),
        other => other.clone(),
    };
    let handle = keep.state("bloom", rule, || {
        Ok(BloomHandle::new(
            &r.name,
            rule.clone(),
            source,
            parts.clock.clone(),
            Some(parts.events.clone()),
        ))
    })?;
    Ok(Some(BloomLayer::new(handle)))
}

/// The colour judge of every route (`[colour]`): believed marks go on, others are removed.
/// On every route when `[colour]` is set (a route without it would forward any mark), on
/// none otherwise.
pub fn colour(parts: &Parts, keep: &mut Keep) -> Result<Option<ColourLayer>, String> {
    let Some((rule, key)) = parts.colour else {
        return Ok(None);
    };
    // A new key (a key_file rewritten) is a new judge, though the rule reads the same.
    let key_id = key.map(|k| {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(k))
    });
    let handle = keep.state("colour", &(rule, key_id), || {
        Ok(ColourHandle::new(Judge::new(
            rule,
            key.map(<[u8]>::to_vec),
        )?))
    })?;
    Ok(Some(ColourLayer::new(handle)))
}

/// The route's shadow upstream (`[routes.colour] shadow`): coloured requests go there.
pub fn shadow(r: &Route, parts: &Parts, keep: &mut Keep) -> Result<Option<ShadowLayer>, String> {
    let Some(name) = r.colour.as_ref().and_then(|c| c.shadow.as_ref()) else {
        return Ok(None);
    };
    let pool = parts
        .pools
        .get(name)
        .ok_or_else(|| format!("colour.shadow: no upstream `{name}`"))?
        .value
        .clone();
    let sent = keep.state("shadow", name, || {
        Ok(Arc::new(std::sync::atomic::AtomicU64::new(0)))
    })?;
    Ok(Some(ShadowLayer::new(
        BoxCloneSyncService::new(pool),
        name,
        sent,
    )))
}

/// The route's faults: its `[[routes.faults]]`, and those switched on through the admin
/// API. On every route, since a fault can be switched on for any route at run time; with
/// none in force it costs a load.
pub fn fault(r: &Route, parts: &Parts) -> Result<Option<FaultLayer>, String> {
    Ok(Some(FaultLayer::new(
        r.faults.clone(),
        &r.name,
        parts.faults.route(&r.name),
        r.max_active_faults.map(|m| m as usize),
        parts.faults.bound(parts.fault_settings),
    )))
}

/// What the routes' protections are built from besides their rules: the stack-wide parts,
/// and the previous stack, whose states they take over.
pub struct Parts<'a> {
    /// The faults switched on at run time, by route.
    pub faults: &'a super::faults::FaultBoard,
    /// `[colour]`, with its key's bytes.
    pub colour: Option<(&'a crate::config::Colour, Option<&'a [u8]>)>,
    pub fault_settings: &'a crate::config::Faults,
    pub previous: Option<&'a Stack>,
    pub pools: &'a BTreeMap<String, Kept<UpstreamPool>>,
    /// Where relative paths (fallback files) are read from.
    pub resolve: &'a dyn Fn(&Path) -> PathBuf,
    pub clock: &'a SharedClock,
    pub shared_limits: Option<&'a SharedLimits>,
    /// Where the protections report what happens to them (a filter that cannot load).
    pub events: &'a crate::events::EventQueue,
    /// The cache's link to Redis, when `[redis]` is set and a route has a cache.
    pub cache_redis: Option<&'a Kept<RedisLink>>,
    /// Breakers with `scope = "upstream"`, by upstream, as this stack makes them.
    pub upstream_breakers: BTreeMap<String, Kept<BreakerHandle>>,
    /// Put before a route's name in what its protections share through Redis: empty for the
    /// running configuration, the version (`v7/`) for one tried beside it in a gray
    /// release, whose limits must not count the running version's requests.
    pub shared_scope: String,
}

impl<'a> Parts<'a> {
    /// The states of the route of that name in the previous stack, to take over.
    pub fn keep_for(&self, route: &str) -> Keep<'a> {
        Keep {
            old: self
                .previous
                .and_then(|p| p.route_named(route))
                .map_or(&[], |r| r.kept.as_slice()),
            new: Vec::new(),
        }
    }
}

/// A protection's state as a route keeps it for the next stack: by the protection's name,
/// with its rule's fingerprint.
pub struct KeptState {
    name: &'static str,
    rule: String,
    state: Box<dyn Any + Send + Sync>,
}

/// A route's protection states: each taken over from the previous stack's route while its
/// rule is unchanged, else made anew.
pub struct Keep<'a> {
    old: &'a [KeptState],
    new: Vec<KeptState>,
}

impl Keep<'_> {
    /// The state named `name`, the previous one if it was made from the same `rule`.
    pub fn state<R, H>(
        &mut self,
        name: &'static str,
        rule: &R,
        make: impl FnOnce() -> Result<H, String>,
    ) -> Result<H, String>
    where
        R: serde::Serialize,
        H: Clone + Send + Sync + 'static,
    {
        let rule = fingerprint(rule);
        let old = self
            .old
            .iter()
            .find(|k| k.name == name && k.rule == rule)
            .and_then(|k| k.state.downcast_ref::<H>());
        let state = match old {
            Some(h) => h.clone(),
            None => make()?,
        };
        self.new.push(KeptState {
            name,
            rule,
            state: Box::new(state.clone()),
        });
        Ok(state)
    }

    pub fn into_kept(self) -> Vec<KeptState> {
        self.new
    }
}

/// The service answering for a route while its breaker is open.
fn fallback_service(
    f: &Fallback,
    pools: &BTreeMap<String, Kept<UpstreamPool>>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<FallbackService<Body, Body>, String> {
    if let Some(u) = &f.upstream {
        let pool = pools
            .get(u)
            .ok_or_else(|| format!("fallback: no upstream `{u}`"))?
            .value
            .clone();
        return Ok(BoxCloneSyncService::new(pool));
    }
    let body: Bytes = match (&f.body, &f.file) {
        (Some(b), _) => Bytes::from(b.clone()),
        (_, Some(p)) => {
            let path = resolve(p);
            Bytes::from(
                std::fs::read(&path)
                    .map_err(|e| format!("fallback.file: {}: {e}", path.display()))?,
            )
        }
        _ => Bytes::new(),
    };
    let mut status = StatusCode::from_u16(f.status).map_err(|e| e.to_string())?;
    let location = match &f.redirect {
        Some(to) => {
            if !status.is_redirection() {
                status = StatusCode::FOUND;
            }
            Some(HeaderValue::from_str(to).map_err(|e| format!("fallback.redirect: {e}"))?)
        }
        None => None,
    };
    let content_type = HeaderValue::from_str(&f.content_type)
        .map_err(|e| format!("fallback.content_type: {e}"))?;
    Ok(BoxCloneSyncService::new(service_fn(
        move |_req: Request<Body>| {
            let mut r = Response::new(full(body.clone()));
            *r.status_mut() = status;
            r.headers_mut()
                .insert(header::CONTENT_TYPE, content_type.clone());
            if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS
            {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            if let Some(l) = &location {
                r.headers_mut().insert(header::LOCATION, l.clone());
            }
            std::future::ready(Ok::<_, BoxError>(r))
        },
    )))
}
