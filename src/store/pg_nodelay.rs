//! Workaround: sqlx 0.9.0 leaves Nagle's algorithm on for PostgreSQL TCP
//! connections (transact-rs/sqlx#4335; fixed upstream by #4336, not yet in a
//! release). A multi-row insert then waits ~40 ms for the server's delayed
//! ACK: measured here, group commits on PostgreSQL ran 4-6x slower over TCP
//! than over a Unix socket. Until a sqlx release sets TCP_NODELAY itself,
//! `after_connect` calls `set_nodelay_to_server` for each new connection.
//! Remove this module when sqlx is upgraded past 0.9.0.

use std::net::{SocketAddr, ToSocketAddrs};

/// The TCP addresses a PostgreSQL host and port resolve to (none for a Unix socket).
pub fn server_addresses(host: &str, port: u16) -> Vec<SocketAddr> {
    if host.starts_with('/') {
        return Vec::new();
    }
    (host, port).to_socket_addrs().map(Iterator::collect).unwrap_or_default()
}

/// Sets TCP_NODELAY on every socket of this process connected to one of
/// `servers` (the connection just opened among them; the others have it set).
#[cfg(target_os = "linux")]
pub fn set_nodelay_to_server(servers: &[SocketAddr]) {
    use std::os::fd::RawFd;
    if servers.is_empty() {
        return;
    }
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else {
            continue;
        };
        if peer_of(fd).is_some_and(|peer| servers.contains(&peer)) {
            let on: libc::c_int = 1;
            // SAFETY: setsockopt only reads `on`; on an fd that is not (or no
            // longer) a TCP socket it fails with an error, which is ignored.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub fn set_nodelay_to_server(_servers: &[SocketAddr]) {}

/// The peer address of `fd` if it is a connected IP socket.
#[cfg(target_os = "linux")]
fn peer_of(fd: std::os::fd::RawFd) -> Option<SocketAddr> {
    // SAFETY: getpeername writes at most `len` bytes into the storage that
    // `try_init` provides; a non-socket fd makes it fail, which is handled.
    let result = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            if libc::getpeername(fd, storage.cast(), len) == -1 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
        })
    };
    result.ok().and_then(|(_, addr)| addr.as_socket())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn sets_nodelay_on_sockets_to_the_server_only() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let to_server = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let to_other = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        assert!(!to_server.nodelay().unwrap());
        set_nodelay_to_server(&server_addresses("127.0.0.1", server.local_addr().unwrap().port()));
        assert!(to_server.nodelay().unwrap());
        assert!(!to_other.nodelay().unwrap());
    }
}
