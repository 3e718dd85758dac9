//! The cache's second level in Redis, shared by every gateway, and the lock that lets one of
//! them fill a missing entry while the others wait for it (5.2's L3): `SET NX PX` taken with
//! a token of its own, released by a script that deletes it only while it still holds that
//! token, so that a gateway whose lock ran out never frees another's. Every call goes
//! through the gateway's Redis link ([`crate::redis_link`]): when Redis is away the cache
//! works on its first level alone.

use std::time::{Duration, Instant};

use super::entry::{decode, encode, Stored};
use crate::redis_link::RedisLink;

/// Deletes the lock only if it still holds our token.
const UNLOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// How often a gateway waiting for another's fill looks for the entry.
const POLL: Duration = Duration::from_millis(10);

/// One route's entries in Redis.
pub struct SecondLevel {
    link: RedisLink,
    /// `goguard:cache:ROUTE:`; the lock of a key is under `goguard:cache-lock:ROUTE:`.
    data: String,
    lock: String,
    unlock: redis::Script,
}

/// Who fills a missing entry.
pub enum Lock {
    /// This gateway: release with the token when done.
    Taken(String),
    /// Another gateway holds the lock.
    Held,
    /// Redis did not answer: nobody can say.
    Unknown,
}

impl SecondLevel {
    pub fn new(link: RedisLink, route: &str) -> SecondLevel {
        SecondLevel {
            link,
            data: format!("goguard:cache:{route}:"),
            lock: format!("goguard:cache-lock:{route}:"),
            unlock: redis::Script::new(UNLOCK),
        }
    }

    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    /// The entry in Redis, if any and still servable.
    pub async fn get(&self, key: &str, now: Instant) -> Option<Stored> {
        let k = format!("{}{key}", self.data);
        let bytes: Option<Vec<u8>> = self
            .link
            .call(|mut c| async move { redis::cmd("GET").arg(k).query_async(&mut c).await })
            .await
            .ok()?;
        decode(&bytes?, now)
    }

    /// Stores an entry for as long as it may be served.
    pub async fn put(&self, key: &str, e: &Stored, now: Instant) {
        let (bytes, ttl) = encode(e, now);
        if ttl.is_zero() {
            return;
        }
        let k = format!("{}{key}", self.data);
        let _ = self
            .link
            .call(|mut c| async move {
                redis::cmd("SET")
                    .arg(k)
                    .arg(bytes)
                    .arg("PX")
                    .arg(ttl.as_millis().max(1) as u64)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await;
    }

    /// Takes the fill lock of `key` for `hold`, if nobody holds it.
    pub async fn lock(&self, key: &str, hold: Duration) -> Lock {
        let token = format!("{:016x}", fastrand::u64(..));
        let k = format!("{}{key}", self.lock);
        let t = token.clone();
        let set = self
            .link
            .call(|mut c| async move {
                redis::cmd("SET")
                    .arg(k)
                    .arg(t)
                    .arg("NX")
                    .arg("PX")
                    .arg(hold.as_millis().max(1) as u64)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await;
        match set {
            Ok(Some(_)) => Lock::Taken(token),
            Ok(None) => Lock::Held,
            Err(_) => Lock::Unknown,
        }
    }

    /// Releases the lock if it is still ours.
    pub async fn unlock(&self, key: &str, token: String) {
        let mut call = self.unlock.prepare_invoke();
        call.key(format!("{}{key}", self.lock)).arg(token);
        let _ = self
            .link
            .call(|mut c| async move { call.invoke_async::<i64>(&mut c).await })
            .await;
    }

    /// Waits up to `bound` for another gateway to store the entry; `None` when it has not
    /// by then (or Redis went away): the caller then asks the service itself.
    pub async fn wait(
        &self,
        key: &str,
        bound: Duration,
        now: impl Fn() -> Instant,
    ) -> Option<Stored> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            if let Some(e) = self.get(key, now()).await {
                return Some(e);
            }
            if self.link.is_down() || tokio::time::Instant::now() + POLL > deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
