//! systemd's notification protocol (`Type=notify`, `WatchdogSec=`): one datagram to the socket
//! named by `$NOTIFY_SOCKET`. Without that variable (not under systemd) every call does nothing.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (`READY=1`, `WATCHDOG=1`, `STOPPING=1`, `STATUS=…`) to systemd, if it listens.
pub fn notify(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        notify_to(&path.to_string_lossy(), state);
    }
}

/// Sends `state` to the notification socket `path` (`@name` for an abstract socket).
pub fn notify_to(path: &str, state: &str) {
    let addr = match path.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
        None => SocketAddr::from_pathname(path),
    };
    let sent = addr.and_then(|a| UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &a));
    if let Err(e) = sent {
        tracing::warn!("cannot notify systemd at {path}: {e}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_notification_reaches_the_socket() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("notify");
        let rx = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
        super::notify_to(sock.to_str().unwrap(), "READY=1");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
