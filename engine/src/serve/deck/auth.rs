//! Who is calling the deck's API.
//!
//! - **Sign-in** checks the password with the engine's login funnel
//!   ([`Engine::login`], argon2 as for Flight SQL, audited with interface
//!   `web`). A success opens a web [`Session`] under a random 256-bit
//!   token, sent only as an `HttpOnly; SameSite=Strict` cookie that expires
//!   when a Flight SQL token would, together with a random CSRF token the
//!   page keeps in memory and sends back as `x-csrf-token` on every request
//!   that changes something.
//! - **Failed sign-ins** are counted per user name and per client address:
//!   after [`FREE_FAILURES`] failures for one name, or [`FREE_ADDRESS_FAILURES`]
//!   from one address (many people may share one behind a proxy), in
//!   [`FAILURE_WINDOW`], the next attempt waits (30 s, doubling up to 15
//!   min); a refused attempt is answered `429` with `Retry-After`, audited,
//!   and its password is not even checked, so guessing one account is as
//!   slow from many addresses as from one.
//! - **Scripts** send the Flight SQL bearer token instead
//!   (`authorization: Bearer …`): the principal of that login, in a web
//!   session of its own per request. A bearer token is not sent by a
//!   browser on its own, so it needs no CSRF token.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::governance::accounts::random_token;
use crate::principal::Principal;
use crate::session::Session;

/// The session cookie's name.
pub(super) const COOKIE: &str = "autolake_session";

/// Failed sign-ins allowed per user name in [`FAILURE_WINDOW`] before
/// attempts must wait.
pub(super) const FREE_FAILURES: u32 = 5;

/// Failed sign-ins allowed per client address in [`FAILURE_WINDOW`].
pub(super) const FREE_ADDRESS_FAILURES: u32 = 20;

/// How long failures are remembered.
const FAILURE_WINDOW: Duration = Duration::from_secs(900);

/// The longest wait imposed.
const MAX_WAIT: Duration = Duration::from_secs(900);

/// A signed-in browser.
pub(super) struct WebLogin {
    pub session: Arc<Session>,
    pub csrf: String,
    expires: Instant,
    pub expires_at: DateTime<Utc>,
}

/// The deck's cookie sessions.
#[derive(Default)]
pub(super) struct WebLogins(Mutex<HashMap<String, Arc<WebLogin>>>);

impl WebLogins {
    /// Opens a login for `session`, valid for `ttl`; its token and itself.
    pub(super) fn open(&self, session: Session, ttl: Duration) -> (String, Arc<WebLogin>) {
        let token = random_token(32);
        let login = Arc::new(WebLogin {
            session: Arc::new(session),
            csrf: random_token(32),
            expires: Instant::now() + ttl,
            expires_at: Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default(),
        });
        self.lock().insert(token.clone(), Arc::clone(&login));
        (token, login)
    }

    /// The live login of a cookie token.
    pub(super) fn get(&self, token: &str) -> Option<Arc<WebLogin>> {
        let mut logins = self.lock();
        let now = Instant::now();
        logins.retain(|_, l| l.expires > now);
        logins.get(token).cloned()
    }

    /// Ends a login; whether it was live.
    pub(super) fn close(&self, token: &str) -> bool {
        self.lock().remove(token).is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<WebLogin>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Recent failures of one client address or one user name.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Counts failed sign-ins and says how long the next attempt must wait.
#[derive(Default)]
pub(super) struct Throttle(Mutex<HashMap<String, Failures>>);

impl Throttle {
    fn keys(client: IpAddr, user: &str) -> [String; 2] {
        [format!("ip {client}"), format!("user {user}")]
    }

    /// How long an attempt from `client` as `user` must still wait.
    pub(super) fn wait(&self, client: IpAddr, user: &str) -> Option<Duration> {
        let mut failures = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        failures.retain(|_, f| now.duration_since(f.last) < FAILURE_WINDOW);
        Self::keys(client, user)
            .iter()
            .zip([FREE_ADDRESS_FAILURES, FREE_FAILURES])
            .filter_map(|(key, free)| Some((failures.get(key)?, free)))
            .filter_map(|(f, free)| {
                let extra = f.count.checked_sub(free)?;
                let wait = Duration::from_secs(30)
                    .saturating_mul(1 << extra.min(5))
                    .min(MAX_WAIT);
                let until = f.last + wait;
                (until > now).then(|| until - now)
            })
            .max()
    }

    /// Records a failed attempt.
    pub(super) fn failed(&self, client: IpAddr, user: &str) {
        let mut failures = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for key in Self::keys(client, user) {
            let f = failures.entry(key).or_insert(Failures {
                count: 0,
                last: now,
            });
            f.count += 1;
            f.last = now;
        }
    }

    /// Forgets a user's failures after a successful sign-in (the client's
    /// stay: other names may have been guessed from it).
    pub(super) fn succeeded(&self, user: &str) {
        let mut failures = self.0.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&format!("user {user}"));
    }
}

/// Who an API request is from.
pub(super) struct Caller {
    pub session: Arc<Session>,
    /// The cookie login, when it came from a browser.
    pub web: Option<(String, Arc<WebLogin>)>,
}

impl Caller {
    /// The caller's principal.
    pub(super) fn principal(&self) -> &Principal {
        self.session.principal()
    }
}

/// Compares secrets in time independent of where they differ.
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_free_ones_wait_longer_each_time() {
        let throttle = Throttle::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let elsewhere: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            assert_eq!(throttle.wait(ip, "alice"), None);
            throttle.failed(ip, "alice");
        }
        // The next attempt at this name waits, from any address; other
        // names from the same address do not.
        let first = throttle.wait(ip, "alice").unwrap();
        assert!(first > Duration::from_secs(25), "{first:?}");
        assert!(throttle.wait(elsewhere, "alice").is_some());
        assert!(throttle.wait(ip, "bob").is_none());
        throttle.failed(ip, "alice");
        assert!(throttle.wait(ip, "alice").unwrap() > Duration::from_secs(55));
        throttle.succeeded("alice");
        assert!(throttle.wait(elsewhere, "alice").is_none());
        // One address guessing many names waits after its own allowance.
        for i in 0..FREE_ADDRESS_FAILURES {
            throttle.failed(elsewhere, &format!("user{i}"));
        }
        assert!(throttle.wait(elsewhere, "carol").is_some());
        assert!(throttle.wait(ip, "carol").is_none());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
