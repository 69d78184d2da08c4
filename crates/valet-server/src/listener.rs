//! The service's front door: its own accept loop over hyper, so that a slow or hostile client
//! cannot hold the service up. [`Limits`] says how long a client may take and how many may be
//! connected at once; [`serve`] enforces it:
//!
//! - **Request heads.** A request head must arrive whole within `header_timeout` of the
//!   connection being accepted, or of its first byte after an idle spell; else the connection is
//!   closed. A request line (or URI) longer than `max_request_line` is answered 414
//!   `uri_too_long`, a head longer than `max_head` 431 `headers_too_large`, both in the API's JSON
//!   error shape and before hyper sees them (hyper's own answers to those are empty).
//! - **Request bodies.** A body must arrive whole within `body_timeout` of its head, however it
//!   trickles: else 408 `request_timeout` and the connection is closed. With axum's body limit
//!   (2 MB), what one connection can make the service buffer is one body, for `body_timeout` at
//!   most; all of them together, `max_connections` bodies.
//! - **Idle connections.** A connection with no request for `idle_timeout`, or whose client has
//!   not taken any of an answer for as long, is closed.
//! - **The connection cap.** At most `max_connections` connections are served. Past that,
//!   `reserve_connections` more are served one request each: `GET /health` as usual (so a monitor
//!   still sees the service), anything else 503 `too_many_connections` with `Retry-After`. Past
//!   those too, a connection is answered that 503 at once and closed, so no client hangs. Both
//!   numbers are lowered to fit the process's open-file limit, so that the reserve still has file
//!   descriptors when the cap is reached.
//! - **Accept errors** (out of file descriptors, …) are logged and retried after a short pause;
//!   they never end the loop nor make it spin.
//! - **Shutdown** stops accepting, closes idle connections, lets requests in flight finish, and
//!   waits `shutdown_grace` at most before closing what is left.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use axum::response::IntoResponse;
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use crate::Error;
use crate::api::ApiError;

/// How long a client may take and how many may be connected at once (see the module's notes
/// for what happens past each). Set it on [`crate::Service::limits`] before serving.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// A request head must arrive whole within this of the connection (or of its first byte
    /// after an idle spell). Default 10 s.
    pub header_timeout: Duration,
    /// A request body must arrive whole within this of its head. Default 30 s.
    pub body_timeout: Duration,
    /// A connection with no request for this long, or whose client takes nothing of an answer
    /// for this long, is closed. Default 60 s.
    pub idle_timeout: Duration,
    /// Connections served at once. Default 1,024 (lowered to fit the open-file limit).
    pub max_connections: usize,
    /// Connections past `max_connections` still served one request each: `/health`, or a 503
    /// `too_many_connections`. Default 32.
    pub reserve_connections: usize,
    /// The longest request line (method, URI, version), in bytes: past it, 414 `uri_too_long`.
    /// Default 8 KiB.
    pub max_request_line: usize,
    /// The longest request head (request line and headers), in bytes: past it, 431
    /// `headers_too_large`. Default 64 KiB.
    pub max_head: usize,
    /// How long shutdown waits for requests in flight before closing their connections.
    /// Default 30 s.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            reserve_connections: 32,
            max_request_line: 8 * 1024,
            max_head: 64 * 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// Refuses limits that would make the service unusable (a zero timeout or size).
    fn check(&self) -> Result<(), Error> {
        for (name, value) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(Error::Config(format!("listener limit `{name}` = {value:?}: it must be positive")));
            }
        }
        for (name, value) in [
            ("max_connections", self.max_connections),
            ("max_request_line", self.max_request_line),
            ("max_head", self.max_head),
        ] {
            if value == 0 {
                return Err(Error::Config(format!("listener limit `{name}` = 0: it must be positive")));
            }
        }
        if self.max_head < self.max_request_line {
            return Err(Error::Config(format!(
                "listener limit `max_head` = {} is below `max_request_line` = {}",
                self.max_head, self.max_request_line
            )));
        }
        Ok(())
    }
}

/// File descriptors kept out of the connection budget, for the vault, the chain client, logs, ….
const FD_HEADROOM: u64 = 128;
/// How long to pause after an accept error that is not about one connection (e.g. EMFILE).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// After a refused head is answered, how long (and how many bytes) the rest of what the client
/// sends is read and dropped, so that closing does not reset the connection before the client
/// has read the answer.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// Serves `router` on `listener` within `limits` until `shutdown` resolves (see the module's notes).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    limits.check()?;
    let mut limits = limits;
    let (max, reserve) = fit(limits.max_connections, limits.reserve_connections, open_file_limit());
    if (max, reserve) != (limits.max_connections, limits.reserve_connections) {
        tracing::warn!(
            asked = limits.max_connections,
            max_connections = max,
            reserve_connections = reserve,
            "the open-file limit leaves room for fewer connections than asked; raise `ulimit -n` for more"
        );
        (limits.max_connections, limits.reserve_connections) = (max, reserve);
    }
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let spare = Arc::new(Semaphore::new(limits.reserve_connections));
    let turned_away = raw_answer(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        &format!("the service is at its connection limit ({}); retry shortly", limits.max_connections),
        "retry-after: 1\r\n",
    );
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut at_cap = false;
    let mut accept_failing = false;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = joined && e.is_panic() {
                    tracing::error!(error = %e, "a connection task panicked");
                }
            }
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) if is_connection_error(&e) => continue,
                    Err(e) => {
                        if !accept_failing {
                            tracing::warn!(error = %e, "accepting connections fails; retrying every {ACCEPT_BACKOFF:?}");
                        }
                        accept_failing = true;
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        }
                    }
                };
                accept_failing = false;
                let _ = stream.set_nodelay(true);
                let (tier, permit) = match slots.clone().try_acquire_owned() {
                    Ok(permit) => {
                        at_cap = false;
                        (Tier::Served, permit)
                    }
                    Err(_) => {
                        if !at_cap {
                            tracing::warn!(max_connections = limits.max_connections, "connection cap reached");
                            at_cap = true;
                        }
                        match spare.clone().try_acquire_owned() {
                            Ok(permit) => (Tier::Reserve, permit),
                            Err(_) => {
                                turn_away(&stream, &turned_away);
                                continue;
                            }
                        }
                    }
                };
                connections.spawn(connection(stream, router.clone(), limits.clone(), tier, stopped.clone(), permit));
            }
        }
    }
    drop(listener);
    tracing::info!(open = connections.len(), "valet-server stopping: no new connections");
    let _ = stop.send(true);
    let drained =
        tokio::time::timeout(limits.shutdown_grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            grace = ?limits.shutdown_grace,
            "connections still busy after the shutdown grace; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Errors of one incoming connection (it went away before we took it), not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// `max_connections` and `reserve_connections` lowered, if need be, so that together they fit
/// in `open_files` descriptors less [`FD_HEADROOM`].
fn fit(max: usize, reserve: usize, open_files: Option<u64>) -> (usize, usize) {
    let Some(open_files) = open_files else { return (max, reserve) };
    let room = usize::try_from(open_files.saturating_sub(FD_HEADROOM)).unwrap_or(usize::MAX).max(2);
    if max.saturating_add(reserve) <= room {
        return (max, reserve);
    }
    let reserve = reserve.min(room / 8);
    ((room - reserve).max(1), reserve)
}

/// The process's soft limit on open files, if it has one.
#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes into `limit`, a valid `rlimit` we own.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
    (read == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

/// Past the cap and the reserve: the 503 at once, then close. What the client already sent is
/// read first, so that closing sends a FIN rather than a reset that could discard the answer.
fn turn_away(stream: &TcpStream, answer: &[u8]) {
    let mut scratch = [0u8; 4096];
    for _ in 0..16 {
        match stream.try_read(&mut scratch) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
    let _ = stream.try_write(answer);
}

/// A whole HTTP/1.1 answer in the API's JSON error shape, for when there is no request to answer
/// through the router (`extra_headers`: complete lines, each ending `\r\n`).
fn raw_answer(status: StatusCode, code: &str, message: &str, extra_headers: &str) -> Vec<u8> {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
        status.as_str(),
        status.canonical_reason().unwrap_or_default(),
        body.len(),
    )
    .into_bytes()
}

// ------------------------------------------------------------------ one connection

/// How a connection is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    /// Under the cap: everything, with keep-alive.
    Served,
    /// Past the cap, in the reserve: one request, `/health` or a 503.
    Reserve,
}

/// Serves one connection until it ends, a deadline passes, or shutdown.
async fn connection(
    stream: TcpStream,
    router: Router,
    limits: Arc<Limits>,
    tier: Tier,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let conn = Arc::new(Conn::new(limits));
    let io = TokioIo::new(Io { stream, conn: conn.clone(), refusing: None });
    let service = {
        let conn = conn.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            conn.request_started(request.body().is_end_stream());
            answer(router.clone(), conn.clone(), tier, request)
        })
    };
    let mut http = http1::Builder::new();
    // Our own clock (`Conn`) keeps the header, idle and body deadlines: hyper's header timer
    // also runs while a connection is idle, so the two could not differ.
    http.header_read_timeout(None).keep_alive(tier == Tier::Served);
    let served = http.serve_connection(io, service);
    let mut served = std::pin::pin!(served);
    let mut stopping = false;
    loop {
        let deadline = conn.deadline().map(|(at, _)| at);
        tokio::select! {
            done = served.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = conn.changed.notified() => {}
            () = sleep_until(deadline) => {
                if let Some((at, why)) = conn.deadline() && at <= Instant::now() {
                    tracing::debug!(reason = why, "closing a connection");
                    return;
                }
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                if conn.is_quiet() {
                    return;
                }
                // Finish the request in flight, then close.
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Answers one request: through the router, unless the URI is too long or the connection is in
/// the reserve; a body that did not arrive in time turns the answer into a 408.
async fn answer(
    mut router: Router,
    conn: Arc<Conn>,
    tier: Tier,
    request: Request<Incoming>,
) -> Result<Response<AnswerBody>, Infallible> {
    let limits = conn.limits.clone();
    let response = if uri_len(request.uri()) > limits.max_request_line {
        // A long line that reached hyper unmeasured (see `Head`), under hyper's own limit.
        closing(
            ApiError::new(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                format!("the URI is {} bytes; at most {} are read", uri_len(request.uri()), limits.max_request_line),
            )
            .into_response(),
        )
    } else if tier == Tier::Reserve && !is_health(&request) {
        let mut response = closing(
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_connections",
                format!(
                    "the service is at its connection limit ({}); only /health is answered, retry shortly",
                    limits.max_connections
                ),
            )
            .into_response(),
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        response
    } else {
        let timed_out = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + limits.body_timeout;
        let request = request.map(|inner| {
            Body::new(RequestBody {
                inner,
                conn: conn.clone(),
                deadline,
                timeout: limits.body_timeout,
                timer: None,
                timed_out: timed_out.clone(),
                finished: false,
            })
        });
        std::future::poll_fn(|cx| tower_service::Service::<Request<Body>>::poll_ready(&mut router, cx)).await?;
        let response = tower_service::Service::call(&mut router, request).await?;
        if timed_out.load(Ordering::Acquire) {
            closing(
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!("the request body did not arrive within {:?}", limits.body_timeout),
                )
                .into_response(),
            )
        } else {
            response
        }
    };
    Ok(response.map(|body| AnswerBody { body, conn }))
}

/// `response`, asking that the connection be closed after it.
fn closing(mut response: Response<Body>) -> Response<Body> {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn is_health(request: &Request<Incoming>) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD) && request.uri().path() == "/health"
}

fn uri_len(uri: &Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len())
}

// ------------------------------------------------------------------ the connection's clock

/// What one connection is doing, shared by its reader ([`Io`]), its bodies and its watchdog
/// (the loop in [`connection`]), which closes it when a deadline passes.
struct Conn {
    limits: Arc<Limits>,
    state: Mutex<State>,
    /// Wakes the watchdog when a deadline may have moved earlier.
    changed: Notify,
}

struct State {
    phase: Phase,
    /// Since when the client has taken none of what we write, if it is not taking it.
    write_stalled: Option<Instant>,
}

enum Phase {
    /// Waiting for a request head, until `deadline` (`started`: some of it has arrived).
    Waiting { deadline: Instant, started: bool, head: Option<Head> },
    /// A request is being served: its body, then its answer (`body_done`: the body has been
    /// read to its end, so what is read after the answer is the next head).
    Serving { body_done: bool },
    /// The head was refused and answered; what else arrives is dropped until `deadline`.
    Refusing { deadline: Instant },
}

/// What has arrived of a request head, measured as it is read, before hyper parses it. Only heads
/// that start where a read starts are measured (a new connection, or after a request whose body
/// was read to its end); a head that arrives in the same read as the end of the previous request
/// (pipelining) is left to the URI check in [`answer`] and to hyper's own limits.
#[derive(Debug, Default)]
struct Head {
    bytes: usize,
    /// Bytes of the current line so far (CR not counted).
    line: usize,
    request_line_seen: bool,
}

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    UriTooLong,
    HeadTooLarge,
}

impl Head {
    /// Measures `read`: `Ok(true)` once the head is complete (what follows is body), or the
    /// refusal of a head past the limits.
    fn feed(&mut self, read: &[u8], limits: &Limits) -> Result<bool, Refusal> {
        for &b in read {
            self.bytes += 1;
            match b {
                b'\n' if self.line == 0 && self.request_line_seen => return Ok(true),
                b'\n' => {
                    // A blank line before the request line is allowed (RFC 9112 §2.2).
                    self.request_line_seen |= self.line > 0;
                    self.line = 0;
                }
                b'\r' => {}
                _ => {
                    self.line += 1;
                    if !self.request_line_seen && self.line > limits.max_request_line {
                        return Err(Refusal::UriTooLong);
                    }
                }
            }
            if self.bytes > limits.max_head {
                return Err(Refusal::HeadTooLarge);
            }
        }
        Ok(false)
    }
}

impl Conn {
    fn new(limits: Arc<Limits>) -> Self {
        let deadline = Instant::now() + limits.header_timeout;
        Self {
            state: Mutex::new(State {
                phase: Phase::Waiting { deadline, started: false, head: Some(Head::default()) },
                write_stalled: None,
            }),
            limits,
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: they start the head's clock and are measured; the refusal of a head past
    /// the limits.
    fn on_read(&self, read: &[u8]) -> Option<Refusal> {
        let mut state = self.lock();
        let Phase::Waiting { deadline, started, head } = &mut state.phase else { return None };
        let now = Instant::now();
        if !*started {
            *started = true;
            let by = now + self.limits.header_timeout;
            if by < *deadline {
                *deadline = by;
                self.changed.notify_one();
            }
        }
        let refusal = match head.as_mut().map(|h| h.feed(read, &self.limits)) {
            Some(Ok(true)) => {
                *head = None;
                None
            }
            Some(Err(refusal)) => Some(refusal),
            Some(Ok(false)) | None => None,
        };
        if refusal.is_some() {
            state.phase = Phase::Refusing { deadline: now + LINGER };
            self.changed.notify_one();
        }
        refusal
    }

    /// hyper has parsed a head and calls the service (`body_done`: the request has no body).
    fn request_started(&self, body_done: bool) {
        self.lock().phase = Phase::Serving { body_done };
    }

    /// The request's body has been read to its end.
    fn body_finished(&self) {
        if let Phase::Serving { body_done } = &mut self.lock().phase {
            *body_done = true;
        }
    }

    /// hyper has taken the whole answer: the connection waits for the next request.
    fn response_finished(&self) {
        let mut state = self.lock();
        if let Phase::Serving { body_done } = state.phase {
            state.phase = Phase::Waiting {
                deadline: Instant::now() + self.limits.idle_timeout,
                started: false,
                head: body_done.then(Head::default),
            };
            self.changed.notify_one();
        }
    }

    /// A write to the client went through (`stalled` false) or had to wait (true).
    fn write_progress(&self, stalled: bool) {
        let mut state = self.lock();
        match (stalled, state.write_stalled) {
            (true, None) => {
                state.write_stalled = Some(Instant::now());
                self.changed.notify_one();
            }
            (false, Some(_)) => state.write_stalled = None,
            _ => {}
        }
    }

    /// When the connection is closed unless something happens first, and why.
    fn deadline(&self) -> Option<(Instant, &'static str)> {
        let state = self.lock();
        let phase = match &state.phase {
            Phase::Waiting { deadline, started: true, .. } => {
                Some((*deadline, "the request head did not arrive within the header timeout"))
            }
            Phase::Waiting { deadline, started: false, .. } => Some((*deadline, "no request came (idle)")),
            Phase::Serving { .. } => None,
            Phase::Refusing { deadline } => Some((*deadline, "a refused head was answered")),
        };
        let write = state.write_stalled.map(|since| {
            (since + self.limits.idle_timeout, "the client took none of the answer within the idle timeout")
        });
        match (phase, write) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// Nothing in flight and nothing of a request arrived: it can be closed at once.
    fn is_quiet(&self) -> bool {
        matches!(self.lock().phase, Phase::Waiting { started: false, .. })
    }
}

// ------------------------------------------------------------------ the socket, as hyper sees it

/// The TCP stream, telling [`Conn`] what is read and whether writes get through; a head past
/// the limits is answered here, in JSON, and never reaches hyper.
struct Io {
    stream: TcpStream,
    conn: Arc<Conn>,
    refusing: Option<Refusing>,
}

/// A refused head being answered: the answer, how much of it is written, then the linger.
struct Refusing {
    answer: Vec<u8>,
    written: usize,
    shut: bool,
    drained: usize,
}

impl Io {
    /// Writes the refusal, half-closes, drops what the client still sends (up to
    /// [`LINGER_BYTES`]; the watchdog ends it after [`LINGER`]), then reports end of input to
    /// hyper, which ends the connection without writing anything of its own.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(refusing) = &mut self.refusing else { return Poll::Ready(Ok(())) };
        while refusing.written < refusing.answer.len() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &refusing.answer[refusing.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            refusing.written += n;
        }
        if !refusing.shut {
            ready!(Pin::new(&mut self.stream).poll_shutdown(cx))?;
            refusing.shut = true;
        }
        let mut scratch = [0u8; 8192];
        while refusing.drained < LINGER_BYTES {
            let mut buf = ReadBuf::new(&mut scratch);
            ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf))?;
            if buf.filled().is_empty() {
                break;
            }
            refusing.drained += buf.filled().len();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.refusing.is_some() {
            return this.poll_refuse(cx);
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        if read.is_empty() {
            return Poll::Ready(Ok(()));
        }
        if let Some(refusal) = this.conn.on_read(read) {
            buf.set_filled(before);
            let limits = &this.conn.limits;
            let answer = match refusal {
                Refusal::UriTooLong => raw_answer(
                    StatusCode::URI_TOO_LONG,
                    "uri_too_long",
                    &format!("the request line is longer than {} bytes", limits.max_request_line),
                    "",
                ),
                Refusal::HeadTooLarge => raw_answer(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "headers_too_large",
                    &format!("the request head is longer than {} bytes", limits.max_head),
                    "",
                ),
            };
            tracing::debug!(?refusal, "refusing a request head");
            this.refusing = Some(Refusing { answer, written: 0, shut: false, drained: 0 });
            return this.poll_refuse(cx);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.refusing.is_some() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.conn.write_progress(written.is_pending());
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.refusing.is_some() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.conn.write_progress(written.is_pending());
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

// ------------------------------------------------------------------ bodies

/// A request's body, which must arrive whole by `deadline`: past it, reading fails (and
/// [`answer`] turns the handler's rejection into a 408).
struct RequestBody {
    inner: Incoming,
    conn: Arc<Conn>,
    deadline: Instant,
    timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
    finished: bool,
}

impl RequestBody {
    fn time_out(&mut self) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        self.timed_out.store(true, Ordering::Release);
        let message = format!("the request body did not arrive within {:?}", self.timeout);
        Poll::Ready(Some(Err(Box::new(io::Error::new(io::ErrorKind::TimedOut, message)))))
    }

    fn finish(&mut self) {
        self.finished = true;
        self.conn.body_finished();
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        // Checked on every frame, so that a body trickled byte by byte is cut off too.
        if this.timed_out.load(Ordering::Acquire) || Instant::now() >= this.deadline {
            return this.time_out();
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if this.inner.is_end_stream() {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                ready!(timer.as_mut().poll(cx));
                this.time_out()
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body; once hyper has taken it all (and drops it), the connection is idle.
struct AnswerBody {
    body: Body,
    conn: Arc<Conn>,
}

impl http_body::Body for AnswerBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for AnswerBody {
    fn drop(&mut self) {
        self.conn.response_finished();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_open_file_limit() {
        assert_eq!(fit(1024, 32, None), (1024, 32));
        assert_eq!(fit(1024, 32, Some(20_000)), (1024, 32));
        // 1,024 descriptors (a common default) less the headroom: the reserve is kept.
        assert_eq!(fit(1024, 32, Some(1024)), (864, 32));
        assert_eq!(fit(1024, 32, Some(0)), (2, 0));
    }

    #[test]
    fn heads_are_measured_line_by_line() {
        let limits = Limits { max_request_line: 16, max_head: 64, ..Limits::default() };
        let mut head = Head::default();
        assert_eq!(head.feed(b"\r\nGET /abc HTTP/1.1\r\n", &limits), Err(Refusal::UriTooLong));
        let mut head = Head::default();
        assert_eq!(head.feed(b"GET / HTTP/1.1\r\nHost: a\r\n", &limits), Ok(false));
        // What follows the blank line is body, not measured.
        assert_eq!(head.feed(&[b"\r\n".as_slice(), &[b'x'; 100]].concat(), &limits), Ok(true));
        let mut head = Head::default();
        assert_eq!(head.feed(b"GET / HTTP/1.1\r\n", &limits), Ok(false));
        assert_eq!(head.feed(&[b'h'; 60], &limits), Err(Refusal::HeadTooLarge));
    }

    #[test]
    fn zero_limits_are_refused() {
        assert!(Limits::default().check().is_ok());
        let e = Limits { idle_timeout: Duration::ZERO, ..Limits::default() }.check().expect_err("zero");
        assert!(e.to_string().contains("idle_timeout"), "{e}");
        let e = Limits { max_head: 10, max_request_line: 20, ..Limits::default() }.check().expect_err("small");
        assert!(e.to_string().contains("max_head"), "{e}");
    }
}
