//! What the valet-client test binaries share: a tiny JSON-RPC server on loopback, for services
//! the tests stand in for (an ERC-7677 paymaster service, a bundler without a fee method).
#![allow(dead_code)] // Each test binary uses its own part of it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

/// A JSON-RPC request the service received: method and params.
pub(crate) type Received = Arc<Mutex<Vec<(String, Vec<Value>)>>>;
/// Answers a request: `Ok(result)` or `Err(error object)`.
pub(crate) type Handler = Arc<dyn Fn(&str, &[Value]) -> Result<Value, Value> + Send + Sync>;

/// A tiny HTTP/1.1 JSON-RPC server on 127.0.0.1 (keep-alive, one thread per connection),
/// stopped and joined when dropped.
pub(crate) struct RpcServer {
    pub(crate) url: String,
    pub(crate) received: Received,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl RpcServer {
    pub(crate) fn start(handler: Handler) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let stop = Arc::new(AtomicBool::new(false));
        let received: Received = Arc::default();
        let acceptor = {
            let (stop, received) = (stop.clone(), received.clone());
            std::thread::spawn(move || {
                let mut connections = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (stop, received, handler) = (stop.clone(), received.clone(), handler.clone());
                            connections.push(std::thread::spawn(move || serve(stream, &handler, &stop, &received)));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break,
                    }
                }
                for connection in connections {
                    let _ = connection.join();
                }
            })
        };
        Self { url, received, stop, acceptor: Some(acceptor) }
    }

    pub(crate) fn methods(&self) -> Vec<String> {
        self.received.lock().expect("lock").iter().map(|(m, _)| m.clone()).collect()
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Answers the requests on one connection until it closes or the server stops.
fn serve(mut stream: TcpStream, handler: &Handler, stop: &AtomicBool, received: &Received) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buffer = Vec::new();
    loop {
        if let Some((used, body)) = request_in(&buffer) {
            buffer.drain(..used);
            let answer = answer(&body, handler, received);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            );
            if stream.write_all(response.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// A whole request at the start of `buffer`: how many bytes it takes and its body.
fn request_in(buffer: &[u8]) -> Option<(usize, Vec<u8>)> {
    let end = buffer.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buffer[..end]);
    let length = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-length")))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (buffer.len() >= end + length).then(|| (end + length, buffer[end..end + length].to_vec()))
}

fn answer(body: &[u8], handler: &Handler, received: &Received) -> String {
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let method = request["method"].as_str().unwrap_or_default().to_string();
    let params = request["params"].as_array().cloned().unwrap_or_default();
    received.lock().expect("lock").push((method.clone(), params.clone()));
    let reply = match handler(&method, &params) {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": request["id"], "result": result }),
        Err(error) => json!({ "jsonrpc": "2.0", "id": request["id"], "error": error }),
    };
    reply.to_string()
}
