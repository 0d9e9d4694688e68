//! The command deck: `autolake serve`'s HTTP port.
//!
//! One HTTP/1.1 server (hyper) answers `/healthz`, `/metrics`, the deck's
//! pages at `/`, and their JSON API under `/api/v1/` ([`api`], routes in
//! the README).
//!
//! Design, after Arroyo's console (a single-page app whose built files
//! `arroyo-api` embeds with rust-embed) and Dagster's and MLflow's run,
//! lineage and registry views:
//! - **The pages are three committed static files** (`engine/deck/`:
//!   `index.html`, `deck.css`, `deck.js`), embedded with `include_bytes!`:
//!   no Node.js or bundler at build time, and nothing is fetched at run
//!   time (the Content-Security-Policy allows this origin only). Charts
//!   and the lineage graph are SVG drawn by the page's own script, so no
//!   chart library is vendored. Routing is by URL fragment (`#/jobs`), so
//!   the server has one page to serve.
//! - **Every view and action is a statement through the funnel** with
//!   interface `web` ([`Interface::Web`]): listing jobs is `SELECT … FROM
//!   system.jobs`, pausing one is `ALTER JOB j PAUSE`, run as the signed-in
//!   user's session. Privileges, row policies, masks and the audit entry
//!   are those of the same SQL typed in the CLI; a refused action is
//!   refused and audited there, whatever the page offered. What a page
//!   shows and offers is narrowed further for the user: lists keep the
//!   objects the user holds a privilege on (all of them for `admin` and
//!   `auditor`, whose role reads `system.*`), and each action is offered
//!   only when [`Session::permits`] says the funnel would admit it.
//! - **Sign-in, cookies, CSRF and throttling** are in [`auth`]. A request
//!   that changes something (any method but GET and HEAD) with the session
//!   cookie needs the login's CSRF token in `x-csrf-token`, and one from a
//!   browser must come from this origin (`Origin`, when sent, matches
//!   `Host`); sign-in itself takes JSON only, which a cross-site form
//!   cannot send without a CORS preflight this server never grants.

mod api;
mod auth;
mod json;
mod reply;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::governance::accounts::UserStore;
use crate::principal::Interface;
use crate::session::Engine;
use auth::{COOKIE, Caller, Throttle, WebLogins, same_secret};
use reply::{Reply, method_not_allowed};

/// The largest request body read (a SQL console statement, a sign-in).
const MAX_BODY: usize = 1 << 20;

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The deck's static files: (path, content type, bytes).
const STATIC: [(&str, &str, &[u8]); 4] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../../../deck/index.html"),
    ),
    (
        "/deck.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../deck/deck.css"),
    ),
    (
        "/deck.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../deck/deck.js"),
    ),
    (
        "/favicon.svg",
        "image/svg+xml",
        include_bytes!("../../../deck/favicon.svg"),
    ),
];

/// What every response carries: the page may load and call this origin
/// only, never be framed, and sends no referrer.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// The HTTP port's state.
pub(crate) struct Deck {
    engine: Arc<Engine>,
    users: UserStore,
    token_ttl: Duration,
    logins: WebLogins,
    flight: Arc<super::flight::Logins>,
    throttle: Throttle,
    /// Whether the scheduler runs in this process (the overview says).
    scheduler: bool,
}

impl Deck {
    pub(crate) fn new(
        engine: Arc<Engine>,
        token_ttl: Duration,
        flight: Arc<super::flight::Logins>,
        scheduler: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            users: UserStore::new(Arc::clone(engine.lake())),
            engine,
            token_ttl,
            logins: WebLogins::default(),
            flight,
            throttle: Throttle::default(),
            scheduler,
        })
    }

    /// Serves HTTP/1.1 connections until `stop`; connections in flight
    /// finish their current request.
    pub(crate) async fn serve(self: Arc<Self>, listener: TcpListener, stop: watch::Receiver<bool>) {
        let mut accepting = stop.clone();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = accepting.wait_for(|s| *s) => return,
            };
            let Ok((socket, peer)) = accepted else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let deck = Arc::clone(&self);
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let deck = Arc::clone(&deck);
                    async move { Ok::<_, Infallible>(deck.handle(request, peer).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(socket), service);
                tokio::pin!(connection);
                let stopping = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                tokio::select! {
                    _ = connection.as_mut() => {}
                    () = stopping => {
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    }
                }
            });
        }
    }

    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_string();
        let mut response = if path.starts_with("/api/") {
            let reply = self.api(request, peer.ip()).await;
            let mut response = Response::new(Full::new(Bytes::from(reply.body.to_string())));
            *response.status_mut() = reply.status;
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            for (name, value) in reply.headers {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.append(name, value);
                }
            }
            response
        } else {
            self.page(request.method(), &path).await
        };
        for (name, value) in SECURITY_HEADERS {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        response
    }

    /// `/healthz`, `/metrics` and the static files.
    async fn page(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let plain = |status: StatusCode, kind: &'static str, body: Bytes| {
            let mut response = Response::new(Full::new(body));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            response
        };
        if method != Method::GET && method != Method::HEAD {
            let mut response = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                Bytes::from_static(b"method not allowed\n"),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match path {
            "/healthz" => plain(StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
            "/metrics" => plain(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                Bytes::from(super::scrape(&self.engine).await),
            ),
            _ => match STATIC
                .iter()
                .find(|(p, _, _)| *p == path || (*p == "/" && path == "/index.html"))
            {
                Some((_, kind, bytes)) => {
                    let mut response = plain(StatusCode::OK, kind, Bytes::from_static(bytes));
                    response
                        .headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                    response
                }
                None => plain(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    Bytes::from_static(b"not found\n"),
                ),
            },
        }
    }

    /// The API: sign-in and sign-out here, every view in [`api`].
    async fn api(&self, request: Request<Incoming>, client: IpAddr) -> Reply {
        let (parts, body) = request.into_parts();
        let Some(route) = parts.uri.path().strip_prefix("/api/v1/") else {
            return Reply::error(
                StatusCode::NOT_FOUND,
                "no such API: routes are under /api/v1/",
            );
        };
        let route: Vec<String> = route
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let query = parts.uri.query().map(parse_query).unwrap_or_default();
        let changes = parts.method != Method::GET && parts.method != Method::HEAD;
        if changes && !same_origin(&parts.headers) {
            return Reply::error(
                StatusCode::FORBIDDEN,
                "cross-origin request refused: the deck's API answers its own pages only",
            );
        }
        let body = if changes {
            match read_json(body).await {
                Ok(v) => v,
                Err(reply) => return reply,
            }
        } else {
            Value::Null
        };
        let route: Vec<&str> = route.iter().map(String::as_str).collect();
        if route == ["session"] && parts.method == Method::POST {
            return self.sign_in(&parts.headers, &body, client).await;
        }
        let caller = match self.caller(&parts.headers) {
            Some(caller) => caller,
            None => {
                return Reply::error(
                    StatusCode::UNAUTHORIZED,
                    "not signed in: sign in with POST /api/v1/session, or send a Flight SQL \
                     bearer token as 'authorization: Bearer <token>'",
                );
            }
        };
        if changes && let Some((_, login)) = &caller.web {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !same_secret(sent, &login.csrf) {
                return Reply::error(
                    StatusCode::FORBIDDEN,
                    "missing or wrong CSRF token: send the x-csrf-token the session returned",
                );
            }
        }
        if route == ["session"] {
            return match parts.method {
                Method::GET => self.whoami(&caller).await,
                Method::DELETE => self.sign_out(&caller),
                _ => method_not_allowed(),
            };
        }
        api::route(
            &self.engine,
            self.scheduler,
            &caller,
            &parts.method,
            &route,
            &query,
            &body,
        )
        .await
    }

    /// The caller of a request: its session cookie, else its bearer token.
    fn caller(&self, headers: &hyper::HeaderMap) -> Option<Caller> {
        if let Some(token) = cookie(headers, COOKIE)
            && let Some(login) = self.logins.get(&token)
        {
            return Some(Caller {
                session: Arc::clone(&login.session),
                web: Some((token, login)),
            });
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })?;
        let principal = self.flight.principal(bearer.trim())?;
        Some(Caller {
            session: Arc::new(self.engine.session(principal, Interface::Web)),
            web: None,
        })
    }

    async fn sign_in(&self, headers: &hyper::HeaderMap, body: &Value, client: IpAddr) -> Reply {
        let json_body = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json_body {
            return Reply::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "sign in with a JSON body: {\"user\": \"…\", \"password\": \"…\"}",
            );
        }
        let (Some(user), Some(password)) = (body["user"].as_str(), body["password"].as_str())
        else {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "sign in with a JSON body: {\"user\": \"…\", \"password\": \"…\"}",
            );
        };
        if let Some(wait) = self.throttle.wait(client, user) {
            let seconds = wait.as_secs().max(1);
            let message = format!("too many failed sign-ins: try again in {seconds} s");
            let claimed = crate::principal::Principal {
                name: user.to_string(),
                roles: Vec::new(),
                stored: true,
            };
            let mut entry =
                crate::governance::audit::Entry::new(&claimed, Vec::new(), Interface::Web);
            entry.kind = "LOGIN".to_string();
            entry.statement = format!("LOGIN {user}");
            entry.outcome = crate::governance::audit::Outcome::Denied;
            entry.error = Some(message.clone());
            self.engine.audit().record(entry);
            return Reply::error(StatusCode::TOO_MANY_REQUESTS, message)
                .with_header(header::RETRY_AFTER, seconds.to_string());
        }
        match self
            .engine
            .login(&self.users, user, password, Interface::Web)
            .await
        {
            Ok(Some(session)) => {
                self.throttle.succeeded(user);
                let (token, login) = self.logins.open(session, self.token_ttl);
                let cookie = format!(
                    "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                    self.token_ttl.as_secs()
                );
                let caller = Caller {
                    session: Arc::clone(&login.session),
                    web: Some((token, login)),
                };
                self.whoami(&caller)
                    .await
                    .with_header(header::SET_COOKIE, cookie)
            }
            Ok(None) => {
                self.throttle.failed(client, user);
                Reply::error(StatusCode::UNAUTHORIZED, "invalid user name or password")
            }
            Err(e) => e.into(),
        }
    }

    fn sign_out(&self, caller: &Caller) -> Reply {
        if let Some((token, _)) = &caller.web {
            self.logins.close(token);
            let mut entry = crate::governance::audit::Entry::new(
                caller.principal(),
                caller.principal().roles.clone(),
                Interface::Web,
            );
            entry.kind = "LOGOUT".to_string();
            entry.statement = format!("LOGOUT {}", caller.principal().name);
            self.engine.audit().record(entry);
        }
        Reply::ok(json!({"signed_out": true})).with_header(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )
    }

    /// The signed-in user, its CSRF token, and what the deck shows it.
    async fn whoami(&self, caller: &Caller) -> Reply {
        let principal = caller.principal();
        let state = match self.engine.governance().state().await {
            Ok(state) => state,
            Err(e) => return e.into(),
        };
        let roles = state.roles_of(principal);
        let views = api::views(&state, principal);
        Reply::ok(json!({
            "user": principal.name,
            "roles": roles,
            "csrf": caller.web.as_ref().map(|(_, l)| l.csrf.clone()),
            "expires_at": caller.web.as_ref().map(|(_, l)| l.expires_at.to_rfc3339()),
            "views": views,
            "lake": self.engine.lake().uri(),
        }))
    }
}

/// A request's JSON body (empty: `null`).
async fn read_json(body: Incoming) -> Result<Value, Reply> {
    let bytes = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            Reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cannot read the request body (at most {MAX_BODY} bytes): {e}"),
            )
        })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        Reply::error(
            StatusCode::BAD_REQUEST,
            format!("the request body is not valid JSON: {e}"),
        )
    })
}

/// Whether a state-changing request's `Origin` (when the browser sent
/// one) is this server, as `Host` names it.
fn same_origin(headers: &hyper::HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest == host)
}

/// A cookie's value.
fn cookie(headers: &hyper::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// `a=1&b=x%20y` as pairs, decoded.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// Decodes `%XX` escapes (invalid ones stay as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(high << 4 | low);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_as_browsers_send_them() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%é1"), "%é1");
        assert_eq!(
            parse_query("user=demo+eng&outcome=denied&q=a%26b"),
            vec![
                ("user".to_string(), "demo eng".to_string()),
                ("outcome".to_string(), "denied".to_string()),
                ("q".to_string(), "a&b".to_string()),
            ]
        );
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("x=1; autolake_session=abc"),
        );
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("abc"));
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://evil.test"));
        assert!(!same_origin(&headers));
    }
}
