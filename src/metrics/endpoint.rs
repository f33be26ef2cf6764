//! The HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (the process is
//! alive) and `/readyz` (caught up, event-time lag within bounds, sinks up).
//!
//! Workers keep their counters to themselves; the endpoint asks for a [`Snapshot`] at each
//! request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use banditflow_core::time::now_ms;

use super::exporter::Exported;
use super::snapshot::Snapshot;

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listen address could not be bound.
    #[error("cannot listen on {listen}: {reason}")]
    Listen {
        /// The address.
        listen: SocketAddr,
        /// What the server said.
        reason: String,
    },
    /// A metric could not be registered (a programming error).
    #[error("metrics registry: {0}")]
    Registry(#[from] prometheus::Error),
}

/// Whether the worker is ready at wall-clock `now_ms`: caught up, its event-time lag within
/// the threshold, every sink up. The error says why not.
pub fn readiness(snapshot: &Snapshot, now_ms: i64) -> Result<(), String> {
    if !snapshot.caught_up {
        return Err("not caught up".into());
    }
    if let (Some(max), Some(through)) = (snapshot.ready_max_lag_ms, snapshot.complete_through_ms) {
        if now_ms - through > max {
            return Err(format!("event-time lag {} ms over {max} ms", now_ms - through));
        }
    }
    let down: Vec<&str> = snapshot.sinks.iter().filter(|s| !s.up).map(|s| s.name).collect();
    if !down.is_empty() {
        return Err(format!("sinks down: {}", down.join(", ")));
    }
    Ok(())
}

/// The running endpoint; dropping it stops the server.
pub struct Endpoint {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The address it listens on (the port is chosen by the OS if `listen` had port 0).
    pub address: SocketAddr,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listen`, asking `snapshot` at each request.
pub fn serve<S>(listen: SocketAddr, snapshot: S) -> Result<Endpoint, MetricsError>
where
    S: Fn() -> Snapshot + Send + 'static,
{
    let exported = Exported::new()?;
    let server = tiny_http::Server::http(listen).map_err(|e| MetricsError::Listen { listen, reason: e.to_string() })?;
    let address = server.server_addr().to_ip().unwrap_or(listen);
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let exported = Mutex::new(exported);
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            while !stopping.load(Ordering::Acquire) {
                let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(100)) else { continue };
                let path = request.url().split('?').next().unwrap_or("").to_owned();
                let response = match path.as_str() {
                    "/metrics" => {
                        let body = exported.lock().map(|e| e.render(&snapshot())).unwrap_or_default();
                        let header = tiny_http::Header::from_bytes("Content-Type", "text/plain; version=0.0.4").ok();
                        let mut response = tiny_http::Response::from_data(body);
                        if let Some(header) = header {
                            response.add_header(header);
                        }
                        response
                    }
                    "/healthz" => tiny_http::Response::from_data(b"ok\n".to_vec()),
                    "/readyz" => match readiness(&snapshot(), now_ms()) {
                        Ok(()) => tiny_http::Response::from_data(b"ready\n".to_vec()),
                        Err(why) => tiny_http::Response::from_data(format!("{why}\n").into_bytes()).with_status_code(503),
                    },
                    _ => tiny_http::Response::from_data(b"not found\n".to_vec()).with_status_code(404),
                };
                let _ = request.respond(response);
            }
        })
        .map_err(|e| MetricsError::Listen { listen, reason: e.to_string() })?;
    Ok(Endpoint { stop, thread: Some(thread), address })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::snapshot::SinkState;

    fn ready() -> Snapshot {
        Snapshot {
            caught_up: true,
            complete_through_ms: Some(100_000),
            ready_max_lag_ms: Some(5_000),
            sinks: vec![SinkState { name: "redis", up: true, ..SinkState::default() }],
            ..Snapshot::default()
        }
    }

    #[test]
    fn ready_only_when_caught_up_within_the_lag_threshold_with_every_sink_up() {
        assert_eq!(readiness(&ready(), 105_000), Ok(()));
        assert_eq!(readiness(&Snapshot { caught_up: false, ..ready() }, 105_000), Err("not caught up".into()));
        assert_eq!(readiness(&ready(), 105_001), Err("event-time lag 5001 ms over 5000 ms".into()));
        let down = Snapshot { sinks: vec![SinkState { name: "redis", up: false, ..SinkState::default() }], ..ready() };
        assert_eq!(readiness(&down, 105_000), Err("sinks down: redis".into()));
    }

}
