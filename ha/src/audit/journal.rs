//! Each fence record into journald, with structured fields, so that a site's existing journal
//! transport (systemd-journal-remote, or any pipeline reading the journal) carries every rabbit's
//! records to one place, where `gfs2-fence-events --journal-dir` reads them back.
//!
//! The entry's [`RECORD_FIELD`] (`GFS2_FENCE_RECORD`) is the record's JSONL line exactly as appended to the detailed
//! log (chain fields included), so the chain can be verified from the journal alone; the other
//! `GFS2_FENCE_*` fields repeat what a `journalctl` user filters on (`GFS2_FENCE_RABBIT=`,
//! `GFS2_FENCE_TARGET=`, ...; `EventRecord::journal_fields` makes them). `SYSLOG_IDENTIFIER` is
//! [`IDENT`]; `MESSAGE` is the readable line.
//!
//! Sent with journald's native protocol (systemd's "Native Journal Protocol"): one datagram to
//! `/run/systemd/journal/socket` (`GFS2_FENCE_JOURNAL_SOCKET` names another, for tests), fields as
//! `KEY=value` lines or, for a value holding a newline, `KEY`, a newline, its length as 64-bit
//! little-endian and the value; a payload too large for a datagram goes in a sealed memfd passed
//! with `SCM_RIGHTS`, as `sd_journal_send` does. Non-blocking and best effort, like the syslog
//! anchors: no journald, no entry, and fencing goes on. No locks.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};

/// The `SYSLOG_IDENTIFIER` of record entries.
pub const IDENT: &str = "gfs2-fence-record";
/// The field holding the record's JSONL line.
pub const RECORD_FIELD: &str = "GFS2_FENCE_RECORD";
/// journald's native socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// The native protocol's payload for `fields`.
pub fn encode(fields: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in fields {
        out.extend_from_slice(key.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

/// Sends an entry to journald (`GFS2_FENCE_JOURNAL_SOCKET` or [`JOURNAL_SOCKET`]).
pub fn send(fields: &[(&str, String)]) {
    let socket = std::env::var_os("GFS2_FENCE_JOURNAL_SOCKET").unwrap_or_else(|| JOURNAL_SOCKET.into());
    send_to(Path::new(&socket), &encode(fields));
}

/// Sends a payload to the datagram socket `socket`; nothing when there is none.
pub fn send_to(socket: &Path, payload: &[u8]) {
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else { return };
    let _ = sock.set_nonblocking(true);
    match sock.send_to(payload, socket) {
        Err(e) if e.raw_os_error() == Some(nix::libc::EMSGSIZE) || e.raw_os_error() == Some(nix::libc::ENOBUFS) => {
            let _ = send_in_memfd(&sock, socket, payload);
        }
        _ => {}
    }
}

/// A payload larger than a datagram: written into a sealed memfd whose descriptor is the message.
fn send_in_memfd(sock: &std::os::unix::net::UnixDatagram, socket: &Path, payload: &[u8]) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(c"gfs2-fence-record", MFdFlags::MFD_ALLOW_SEALING | MFdFlags::MFD_CLOEXEC)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(payload).map_err(|_| nix::errno::Errno::EIO)?;
    let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_SEAL;
    fcntl(&file, FcntlArg::F_ADD_SEALS(seals))?;
    let addr = UnixAddr::new(socket)?;
    let fds = [file.as_raw_fd()];
    sendmsg(sock.as_raw_fd(), &[], &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), Some(&addr)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_with_newlines_are_sent_with_their_length() {
        let payload = encode(&[("A", "one".into()), ("B", "two\nlines".into())]);
        let mut want = b"A=one\nB\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\n");
        assert_eq!(payload, want);
    }

    #[test]
    fn a_payload_too_large_for_a_datagram_arrives_in_a_sealed_memfd() {
        use std::os::unix::net::UnixDatagram;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_nonblocking(true).unwrap();
        let big = "x".repeat(4 << 20);
        send_to(&path, &encode(&[("MESSAGE", big.clone())]));
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut buf = [0u8; 16];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg =
            nix::sys::socket::recvmsg::<()>(server.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()).unwrap();
        let fd = msg
            .cmsgs()
            .unwrap()
            .find_map(|c| match c {
                nix::sys::socket::ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
            .expect("a descriptor");
        // SAFETY: the descriptor was just received and is owned by nothing else.
        let file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        // journald maps the memfd whole; the descriptor's offset is the sender's, at the end.
        let mut got = vec![0u8; file.metadata().unwrap().len() as usize];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut got, 0).unwrap();
        assert!(got == encode(&[("MESSAGE", big)]), "{} bytes arrived", got.len());
        let seals = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GET_SEALS).unwrap();
        assert!(nix::fcntl::SealFlag::from_bits_truncate(seals).contains(nix::fcntl::SealFlag::F_SEAL_WRITE));
    }
}
