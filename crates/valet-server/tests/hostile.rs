//! The service against a hostile client: invented methods, oversized and malformed requests,
//! numbers JSON cannot carry exactly, specs built to cost it chain calls. Every answer is the
//! API's JSON error naming the problem, nothing grows without bound, and nothing panics.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use alloy::transports::http::reqwest;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use valet_client::Devnet;

mod common;
use common::*;

/// Whatever the method, the metrics keep one label for the ones they do not know.
#[tokio::test]
async fn invented_methods_do_not_grow_the_metrics() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot(&devnet, "methods", false, None).await;
    for i in 0..60 {
        let method = format!("X{}", "M".repeat(200 + i));
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a token");
        let response = s.http.request(method, format!("{}/v1/sessions", s.url)).send().await.expect("answers");
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    let metrics = s.http.get(format!("{}/metrics", s.url)).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("method=\"OTHER\""), "{metrics}");
    assert!(!metrics.contains("XMMM"), "an invented method became a label");
    assert!(metrics.len() < 4_000, "metrics grew to {} bytes", metrics.len());
}

/// Errors the framework writes itself come in the API's JSON shape too.
#[tokio::test]
async fn every_error_answer_is_json() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot(&devnet, "errors", false, None).await;
    let key = app_key(&s, "hostile").await;
    let json_error = |status: u16, body: &Value, code: &str| {
        assert_eq!(body["error"], code, "{status}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{status}: {body}");
    };
    // A body over the limit.
    let huge = format!("{{\"owner\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let (status, body) = s.raw("POST", "/v1/sessions", Some(&key), Some(huge), &[]).await;
    assert_eq!(status, 413, "{body}");
    json_error(status, &body, "payload_too_large");
    // A path that is not UTF-8 once decoded.
    let (status, body) = s.raw("GET", "/v1/sessions/%FF", Some(&key), None, &[]).await;
    assert_eq!(status, 400, "{body}");
    json_error(status, &body, "bad_request");
    // An unknown route and a method a route does not take.
    let (status, body) = s.raw("GET", "/v1/nothing", Some(&key), None, &[]).await;
    json_error(status, &body, "not_found");
    let (status, body) = s.raw("PUT", "/v1/sessions", Some(&key), None, &[]).await;
    assert_eq!(status, 405);
    json_error(status, &body, "method_not_allowed");
}

/// The media type is `application/json` exactly (parameters allowed), and the `Bearer` scheme is
/// case-insensitive, as HTTP says.
#[tokio::test]
async fn content_type_and_authorization_are_read_as_http_defines_them() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot(&devnet, "headers", false, None).await;
    let key = app_key(&s, "headers").await;
    let post_app = |content_type: &'static str| {
        s.http
            .post(format!("{}/v1/apps", s.url))
            .header("authorization", format!("Bearer {ADMIN}"))
            .header("content-type", content_type)
            .body(json!({ "name": "x" }).to_string())
            .send()
    };
    let response = post_app("application/jsonx").await.expect("answers");
    assert_eq!(response.status(), 415);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["error"], "unsupported_media_type", "{answer}");
    let response = post_app("application/json; charset=utf-8").await.expect("answers");
    assert_eq!(response.status(), 201);
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let response = s
            .http
            .get(format!("{}/v1/sessions", s.url))
            .header("authorization", format!("{scheme} {key}"))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 200, "scheme `{scheme}`");
    }
    let (status, _) = s.raw("GET", "/v1/sessions", None, None, &[("authorization", &format!("Basic {key}"))]).await;
    assert_eq!(status, 401);
}

/// A spec is checked for everything that needs no chain before any chain call: with the node
/// gone, a spec with 5,000 limits (8 at most) is still a 400 naming the count, not a 503 or a wait.
#[tokio::test]
async fn specs_are_checked_before_any_chain_call() {
    let devnet = Devnet::start().await.expect("devnet");
    let owner = devnet.key(3).address();
    let (s, _, _, _) = boot(&devnet, "cheap", false, None).await;
    let key = app_key(&s, "cheap").await;
    drop(devnet); // anvil stops: any chain call now fails
    let mut spec = String::from(
        "valid_for = \"1h\"\n[[permission]]\ntarget = \"ValetNFT\"\nfunction = \"mint(address to, uint256 quantity)\"\n",
    );
    for _ in 0..5_000 {
        spec += "[[limit]]\ntoken = \"ValetToken\"\namount = \"1 ether\"\n";
    }
    let (status, body) =
        s.call("POST", "/v1/sessions", Some(&key), Some(json!({ "owner": owner, "spec": spec }))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("limit count = 5000")), "{body}");
    // And a duration that overflows is named, not a panic.
    let forever = "valid_for = \"18446744073709551615s\"\n[[permission]]\ntarget = \"ValetNFT\"\n";
    let (status, body) =
        s.call("POST", "/v1/sessions", Some(&key), Some(json!({ "owner": owner, "spec": forever }))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("valid_for")), "{body}");
}

/// A JSON integer above u64 arrives as a float, already rounded: it is refused, not used.
#[tokio::test]
async fn numbers_json_cannot_carry_exactly_are_refused() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot(&devnet, "numbers", false, None).await;
    let key = app_key(&s, "numbers").await;
    let owner = devnet.key(3);
    let spec = "valid_for = \"1h\"\n[[permission]]\ntarget = \"ValetNFT\"\nfunction = \"mint(address to, uint256 quantity)\"\n";
    let (id, _) = granted(&s, &key, &owner, spec).await;
    let body = r#"{ "calls": [{ "to": "ValetNFT", "function": "mint(address to, uint256 quantity)", "args": ["$account", 18446744073709551616] }] }"#;
    let (status, answer) =
        s.raw("POST", &format!("/v1/sessions/{id}/execute"), Some(&key), Some(body.to_string()), &[]).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].as_str().is_some_and(|m| m.contains("not an exact integer")), "{answer}");
    // The same number as a decimal string is exact (and here refused by the rule-less session's
    // chain only if it is sent; it is the encoding that matters).
    let request = json!({
        "permission_request": {
            "permission": { "type": "erc20-token-allowance", "data": { "tokenAddress": "ValetToken", "allowance": 18446744073709551616u128 as f64 } },
            "rules": [{ "type": "expiry", "data": { "timestamp": 4_000_000_000u64 } }]
        },
        "owner": owner.address()
    });
    let (status, answer) = s.call("POST", "/v1/sessions", Some(&key), Some(request)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].as_str().is_some_and(|m| m.contains("not an exact integer")), "{answer}");
}

/// The SQLite vault (sealed keys, the audit log) and its WAL files are readable by their owner only.
#[tokio::test]
async fn the_database_files_are_private() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, dir, _) = boot(&devnet, "modes", false, None).await;
    app_key(&s, "modes").await; // a write, so the WAL files exist
    for file in ["valet.db", "valet.db-wal", "valet.db-shm"] {
        let mode = std::fs::metadata(dir.join(file)).expect(file).permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} is {mode:o}");
    }
}

// ------------------------------------------------------------------ slow and greedy clients

/// A client that sends part of a request head and then nothing, or trickles it a byte at a time,
/// is disconnected once the header timeout has passed; so is one that sends nothing at all.
#[tokio::test]
async fn a_partial_request_head_is_cut_off_after_the_header_timeout() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot_with(&devnet, "head-timeout", false, None, None, 1, |service, _| {
        service.limits.header_timeout = Duration::from_millis(500);
    })
    .await;
    let mut partial = connect(&s).await;
    partial.write_all(b"GET /health HTTP/1.1\r\nHost: valet\r\nX-Slow: ").await.expect("writes");
    let (after, got) = until_closed(&mut partial, Duration::from_secs(5)).await;
    assert!(after >= Duration::from_millis(400), "closed after {after:?}, before the timeout");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let mut silent = connect(&s).await;
    until_closed(&mut silent, Duration::from_secs(5)).await;
    // Each byte does not restart the clock.
    let (mut reader, mut writer) = connect(&s).await.into_split();
    let trickle = tokio::spawn(async move {
        for b in b"GET /health HTTP/1.1\r\nHost: valet\r\nX-Slow: ".iter().cycle() {
            if writer.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let (after, _) = until_closed(&mut reader, Duration::from_secs(5)).await;
    assert!(after < Duration::from_secs(3), "a trickled head held the connection {after:?}");
    trickle.abort();
    // The service still answers.
    let (status, _) = s.call("GET", "/health", None, None).await;
    assert_eq!(status, 200);
}

/// A body announced as 2 MB that stops, or trickles, is cut off once the body timeout has passed:
/// a 408 in JSON, and the connection closed; it is not buffered for as long as the client likes.
#[tokio::test]
async fn a_trickled_body_is_cut_off_after_the_body_timeout() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot_with(&devnet, "body-timeout", false, None, None, 1, |service, _| {
        service.limits.body_timeout = Duration::from_secs(1);
    })
    .await;
    // An app's client (unauthenticated ones are turned away before their body is read).
    let key = app_key(&s, "slow").await;
    let head = format!(
        "POST /v1/sessions HTTP/1.1\r\nHost: valet\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
    );
    let head = head.as_str();
    // A body that stops after its first kilobyte.
    let start = Instant::now();
    let mut stopped = connect(&s).await;
    stopped.write_all(format!("{head}{{\"owner\": \"{}", "x".repeat(1000)).as_bytes()).await.expect("writes");
    let answer = read_answer(&mut stopped).await;
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.body["error"], "request_timeout", "{answer:?}");
    assert!(answer.body["message"].as_str().is_some_and(|m| m.contains("did not arrive")), "{answer:?}");
    assert!(start.elapsed() >= Duration::from_millis(900), "cut off after {:?}", start.elapsed());
    until_closed(&mut stopped, Duration::from_secs(5)).await;
    // A body that trickles a byte every 20 ms (2 MB would take 11 hours): cut off all the same.
    let (mut reader, mut writer) = connect(&s).await.into_split();
    writer.write_all(head.as_bytes()).await.expect("writes");
    let trickle = tokio::spawn(async move {
        while writer.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let (after, got) = until_closed(&mut reader, Duration::from_secs(5)).await;
    assert!(after < Duration::from_secs(3), "a trickled body held the connection {after:?}");
    // What came, if anything came before the close, is the 408.
    assert!(got.is_empty() || got.starts_with(b"HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(&got));
    trickle.abort();
}

/// A keep-alive connection carries several requests (bodies longer than any head included), and
/// is closed once idle for the idle timeout.
#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot_with(&devnet, "idle-timeout", false, None, None, 1, |service, _| {
        service.limits.idle_timeout = Duration::from_secs(1);
        service.limits.header_timeout = Duration::from_secs(30);
    })
    .await;
    let key = app_key(&s, "idle").await;
    let mut stream = connect(&s).await;
    let body = format!("{{\"owner\": \"{}\"}}", "x".repeat(100_000));
    for _ in 0..3 {
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: valet\r\n\r\n").await.expect("writes");
        assert_eq!(read_answer(&mut stream).await.status, 200);
        let post = format!(
            "POST /v1/sessions HTTP/1.1\r\nHost: valet\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(post.as_bytes()).await.expect("writes");
        let answer = read_answer(&mut stream).await;
        assert_eq!(answer.status, 400, "{answer:?}");
    }
    let (after, got) = until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(after >= Duration::from_millis(800), "closed after {after:?}, before the idle timeout");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
}

/// At the connection cap, `/health` is still answered (from a small reserve of connections) and
/// anything else gets a quick 503 in JSON; past the reserve too, the 503 comes at once. No new
/// connection hangs, and service resumes as soon as a connection closes.
#[tokio::test]
async fn at_the_connection_cap_health_still_answers() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot_with(&devnet, "cap", false, None, None, 1, |service, _| {
        service.limits.max_connections = 8;
        service.limits.reserve_connections = 2;
        service.limits.header_timeout = Duration::from_secs(30);
    })
    .await;
    let health = "GET /health HTTP/1.1\r\nHost: valet\r\n\r\n";
    let sessions = "GET /v1/sessions HTTP/1.1\r\nHost: valet\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(connect(&s).await);
    }
    // The reserve taken as well: turned away at once.
    let spare = [connect(&s).await, connect(&s).await];
    let start = Instant::now();
    let answer = request_raw(&s, health).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.body["error"], "too_many_connections", "{answer:?}");
    assert!(answer.header("retry-after").is_some(), "{answer:?}");
    assert!(start.elapsed() < Duration::from_secs(2), "turned away after {:?}", start.elapsed());
    // The reserve free again: /health is answered past the cap.
    drop(spare);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = request_raw(&s, health).await;
        if answer.status == 200 {
            assert_eq!(answer.body["status"], "ok", "{answer:?}");
            break;
        }
        assert_eq!(answer.body["error"], "too_many_connections", "{answer:?}");
        assert!(Instant::now() < deadline, "/health never answered at the cap");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Anything else is a 503 naming the cap, and the connection is closed after it.
    let mut stream = connect(&s).await;
    stream.write_all(sessions.as_bytes()).await.expect("writes");
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.body["error"], "too_many_connections", "{answer:?}");
    assert!(answer.header("retry-after").is_some(), "{answer:?}");
    until_closed(&mut stream, Duration::from_secs(5)).await;
    // One held connection closes: full service again.
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = request_raw(&s, sessions).await;
        if answer.status == 401 {
            break;
        }
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(Instant::now() < deadline, "service did not resume under the cap");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A 100,000-character path is a 414 in the API's JSON shape (hyper's own 414 is empty), on a new
/// connection, after a request on a kept-alive one, and when pipelined behind another request.
#[tokio::test]
async fn a_100k_character_path_gets_a_json_414() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot(&devnet, "long-uri", false, None).await;
    let long = format!("GET /v1/sessions/{} HTTP/1.1\r\nHost: valet\r\n\r\n", "a".repeat(100_000));
    let json_414 = |answer: &Answer| {
        assert_eq!(answer.status, 414, "{answer:?}");
        assert_eq!(answer.body["error"], "uri_too_long", "{answer:?}");
        assert!(answer.body["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer:?}");
        assert!(answer.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{answer:?}");
    };
    json_414(&request_raw(&s, &long).await);
    let mut stream = connect(&s).await;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: valet\r\n\r\n").await.expect("writes");
    assert_eq!(read_answer(&mut stream).await.status, 200);
    stream.write_all(long.as_bytes()).await.expect("writes");
    json_414(&read_answer(&mut stream).await);
    // Pipelined: the long line arrives with the end of the previous request.
    let mut stream = connect(&s).await;
    let medium = format!("GET /v1/sessions/{} HTTP/1.1\r\nHost: valet\r\n\r\n", "a".repeat(10_000));
    stream.write_all(format!("GET /metrics HTTP/1.1\r\nHost: valet\r\n\r\n{medium}").as_bytes()).await.expect("writes");
    let answers = read_answers(&mut stream, 2).await;
    assert_eq!(answers[0].status, 200);
    json_414(&answers[1]);
    // Through an ordinary client too (which builds no URI past 64 KiB).
    let (status, body) = s.raw("GET", &format!("/v1/sessions/{}", "a".repeat(20_000)), None, None, &[]).await;
    assert_eq!(status, 414, "{body}");
    assert_eq!(body["error"], "uri_too_long", "{body}");
}

/// Shutdown stops accepting, closes idle connections at once, and lets a request in flight finish
/// (on a connection then closed) before `serve` returns.
#[tokio::test]
async fn shutdown_lets_requests_in_flight_finish() {
    let devnet = Devnet::start().await.expect("devnet");
    let (mut s, _, _, _) = boot(&devnet, "shutdown", false, None).await;
    let mut idle = connect(&s).await;
    idle.write_all(b"GET /metrics HTTP/1.1\r\nHost: valet\r\n\r\n").await.expect("writes");
    assert_eq!(read_answer(&mut idle).await.status, 200);
    let body = json!({ "name": "late" }).to_string();
    let mut busy = connect(&s).await;
    let head = format!(
        "POST /v1/apps HTTP/1.1\r\nHost: valet\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    busy.write_all(format!("{head}{}", &body[..5]).as_bytes()).await.expect("writes");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = s.shutdown.take().expect("a shutdown sender").send(());
    let (after, _) = until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(after < Duration::from_secs(1), "the idle connection stayed {after:?}");
    let addr = s.url.trim_start_matches("http://").to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(&addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    busy.write_all(&body.as_bytes()[5..]).await.expect("writes");
    let answer = read_answer(&mut busy).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    until_closed(&mut busy, Duration::from_secs(5)).await;
    let task = s.task.take().expect("the serving task");
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("serve returns").expect("serves");
}

/// A client without a valid API key is answered 401 before its body is read: it cannot make the
/// service buffer (up to the body limit) or wait (up to the body timeout) for anything.
#[tokio::test]
async fn unauthenticated_bodies_are_never_read() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot(&devnet, "auth-first", false, None).await;
    for auth in ["", "Authorization: Bearer not-a-key\r\n", "Authorization: Basic eDp5\r\n"] {
        for path in ["/v1/sessions", "/v1/apps", "/v1/sessions/0x01/execute"] {
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: valet\r\n{auth}Content-Type: application/json\r\nContent-Length: 2000000\r\n\r\n"
            );
            let start = Instant::now();
            let mut stream = connect(&s).await;
            stream.write_all(head.as_bytes()).await.expect("writes");
            let answer = read_answer(&mut stream).await;
            assert_eq!(
                (answer.status, answer.body["error"].as_str()),
                (401, Some("unauthorized")),
                "{path} {auth:?}: {answer:?}"
            );
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "answered at once, not after the body: {:?}",
                start.elapsed()
            );
        }
    }
    // The admin token's scheme is case-insensitive too.
    let (status, body) = s
        .raw(
            "POST",
            "/v1/apps",
            None,
            Some(json!({ "name": "x" }).to_string()),
            &[("authorization", &format!("bearer {ADMIN}"))],
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Queries are typed: an unknown parameter, a malformed value or broken percent-encoding is a 400
/// naming it, never ignored.
#[tokio::test]
async fn queries_are_read_strictly() {
    let devnet = Devnet::start().await.expect("devnet");
    let (s, _, _, _) = boot(&devnet, "queries", false, None).await;
    let key = app_key(&s, "queries").await;
    let (status, body) = s.call("GET", "/v1/audit?limit=5", Some(&key), None).await;
    assert_eq!(status, 200, "{body}");
    for (query, named) in [
        ("/v1/audit?limit=5&acount=0x01", "acount"),
        ("/v1/audit?limit=0", "limit `0`"),
        ("/v1/sessions?account=0xZZ", "0xZZ"),
        ("/v1/sessions?account=%FF", "account"),
        ("/v1/accounts/0x0000000000000000000000000000000000000001?salt=-1", "salt `-1`"),
    ] {
        let (status, body) = s.call("GET", query, Some(&key), None).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")), "{query}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains(named)), "{query}: {body}");
    }
}
