//! Limits shared by every gateway instance through Redis (5.5): one atomic Lua script checks
//! and updates all the GCRA cells of a request in one round trip, on Redis's own clock.
//!
//! When Redis cannot answer within the timeout, the caller falls back to its local limits
//! (or fails closed when configured). The switch is reported once each way, as a metric
//! and an event; while Redis is down it is tried again once a second, not on every request
//! (the connection's handling is [`crate::redis_link`]'s).

use std::sync::Arc;
use std::time::Duration;

use crate::events::{EventQueue, Reason};
use crate::limit::Gcra;
pub use crate::redis_link::Unavailable;
use crate::redis_link::{LinkRole, RedisLink};

/// GCRA over several keys at once: all allowed (and all updated) or the first denial.
/// Times are microseconds of Redis's clock, so instances never disagree about "now".
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  if tat - now > tolerance then
    return {i, tat - now - tolerance}
  end
  tats[i] = tat + interval
end
for i = 1, #KEYS do
  local ttl = math.ceil((tats[i] - now) / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', ttl)
end
return {0, 0}
"#;

/// Redis is left alone for a second after it failed.
const ROLE: LinkRole = LinkRole {
    name: "shared limits",
    lost: Reason::SharedLimitsUnavailable,
    back: Reason::SharedLimitsRecovered,
    pause: (Duration::from_secs(1), Duration::from_secs(1)),
};

/// A connection to the shared limits, cheap to clone.
#[derive(Clone)]
pub struct SharedLimits(Arc<Inner>);

struct Inner {
    link: RedisLink,
    fail_closed: bool,
    script: redis::Script,
}

impl SharedLimits {
    /// Starts connecting in the background; until connected, checks report `Unavailable`.
    pub fn new(
        url: &str,
        timeout: Duration,
        fail_closed: bool,
        events: Option<EventQueue>,
    ) -> SharedLimits {
        SharedLimits(Arc::new(Inner {
            link: RedisLink::new(url, timeout, ROLE, events),
            fail_closed,
            script: redis::Script::new(SCRIPT),
        }))
    }

    /// Whether a Redis outage rejects requests instead of limiting locally.
    pub fn fail_closed(&self) -> bool {
        self.0.fail_closed
    }

    /// True while the gateway limits on its own because Redis is away.
    pub fn in_fallback(&self) -> bool {
        self.0.link.is_down()
    }

    /// Calls to Redis that failed or timed out.
    pub fn errors(&self) -> u64 {
        self.0.link.errors()
    }

    /// Checks the cells `(key, cell)` together: `Ok(None)` when all allow, `Ok(Some((i,
    /// retry_after)))` when cell `i` denies, `Err` when Redis did not answer.
    pub async fn check(
        &self,
        cells: &[(String, Gcra)],
    ) -> Result<Option<(usize, Duration)>, Unavailable> {
        let mut call = self.0.script.prepare_invoke();
        for (key, cell) in cells {
            call.key(key)
                .arg(cell.interval().as_micros() as u64)
                .arg(cell.tolerance().as_micros() as u64);
        }
        let v = self
            .0
            .link
            .call(|mut conn| async move { call.invoke_async::<Vec<i64>>(&mut conn).await })
            .await?;
        if v.len() != 2 {
            tracing::warn!(answer = ?v, "unexpected answer from the shared-limit script");
            self.0.link.failed();
            return Err(Unavailable);
        }
        Ok((v[0] > 0).then(|| {
            (
                (v[0] - 1) as usize,
                Duration::from_micros(v[1].max(0) as u64),
            )
        }))
    }
}
