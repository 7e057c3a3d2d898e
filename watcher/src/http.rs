//! Live view over HTTP: Prometheus metrics (`/metrics`) and a health check (`/healthz`) served on a
//! loopback address (`--metrics-addr`, or `--metrics-base-port` plus the unit's instance number), one
//! tiny HTTP/1.0 exchange per connection, at most `MAX_CONNECTIONS` at once, each bounded in time.
//! Metrics never cost a fence: an address that cannot be bound (another process, any local user,
//! holds the port) is tried again every [`BIND_RETRY`] in the background while the watcher fences,
//! and the heartbeat says so for `status`. Reads the shared state; writes nothing else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::shared::Shared;

/// How often an address that could not be bound is tried again.
pub const BIND_RETRY: Duration = Duration::from_secs(2);

/// The metrics address of unit instance `instance` with `--metrics-base-port base`: 127.0.0.1 and
/// the base plus the instance's number (`gfs2-fence-watcher@2` serves on base + 2), so that every
/// instance has its own port from one shared configuration. A name that is not a number is refused,
/// with the fix.
pub fn instance_addr(base: u16, instance: Option<&str>) -> Result<SocketAddr, String> {
    let Some(name) = instance else {
        return Err(format!(
            "--metrics-base-port {base} needs the unit's instance number (--instance N, as the shipped unit passes \
             %i), or give --metrics-addr"
        ));
    };
    let port = name.parse::<u16>().ok().and_then(|n| base.checked_add(n)).ok_or_else(|| {
        format!(
            "instance name {name:?} is not a number whose port {base} + N fits: name the units gfs2-fence-watcher@1, \
             @2, @3 (each serves on --metrics-base-port plus its number), or set GFS2_FENCE_METRICS_ADDR for it"
        )
    })?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Binds `addr` (again every [`BIND_RETRY`] until it can), then serves on it until the task is
/// dropped. Each state goes to the log and, through `report`, to the heartbeat.
pub async fn bind_and_serve(shared: Arc<Shared>, addr: SocketAddr) {
    let mut tries = 0u64;
    let listener = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(e) => {
                if tries == 0 {
                    tracing::warn!(%addr, "cannot serve metrics: {e}; fencing goes on, and the address is tried again every {}s (is another process, any local user, holding the port? see SECURITY.md)", BIND_RETRY.as_secs());
                }
                tries += 1;
                shared.metrics.metrics_bind_failed();
                report(&shared, format!("not served: cannot bind {addr}: {e}; retrying"));
                tokio::time::sleep(BIND_RETRY).await;
            }
        }
    };
    let addr = listener.local_addr().unwrap_or(addr);
    tracing::info!(%addr, tries, "serving /metrics and /healthz");
    report(&shared, addr.to_string());
    serve(shared, listener).await;
}

/// Puts the metrics server's state into this watcher's heartbeat (read by `status`).
fn report(shared: &Shared, state: String) {
    shared.member.lock().unwrap().set_metrics(state);
}

/// Checks `--metrics-addr`: loopback only (put a proxy in front to expose it further).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = s.parse().map_err(|_| format!("--metrics-addr {s:?} is not an address:port"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("--metrics-addr {addr} is not a loopback address (use 127.0.0.1 or [::1] and a proxy)"));
    }
    Ok(addr)
}

/// Serves `/metrics` and `/healthz` until the task is dropped.
pub async fn serve(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    // Scrapers are few and quick: a cap on connections in flight keeps a flood of idle ones (any local
    // user can connect) from taking the descriptors fencing needs; the rest wait in the kernel's
    // backlog, holding none of ours.
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut conn = match listener.accept().await {
            Ok((conn, _)) => conn,
            Err(e) => {
                // EMFILE/ENFILE and the like: back off instead of spinning on the same error.
                tracing::warn!("metrics: accept failed ({e}); pausing");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
                while n < buf.len() {
                    match conn.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") || buf[..n].ends_with(b"\n\n") {
                        break;
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let (status, kind, body) = match (head.split_whitespace().next(), path) {
                (Some("GET"), "/metrics") => {
                    ("200 OK", "text/plain; version=0.0.4", shared.metrics.render(&shared.settings))
                }
                (Some("GET"), "/healthz") => ("200 OK", "text/plain", format!("ok {}\n", shared.settings.id)),
                (Some("GET"), _) => ("404 Not Found", "text/plain", "try /metrics or /healthz\n".into()),
                _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
            };
            let reply = format!(
                "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, conn.write_all(reply.as_bytes())).await;
        });
    }
}

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;
/// How long one connection may take to send its request, and to take the reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a failed accept (out of descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);
