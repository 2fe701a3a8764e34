//! The API server's only way out to the "cluster": an HTTP CONNECT proxy on a Unix socket that
//! opens tunnels to loopback addresses and refuses every other one.
//!
//! kube-apiserver dials webhooks, aggregated APIs and pod proxies through its `cluster` egress
//! selector. In the test control plane Services and pods have made-up addresses (10.96.x.x,
//! 10.244.x.x) that must never be dialed: a webhook configuration or a CRD's conversion settings
//! naming a Service (as the chart writes them) would otherwise send traffic there. With this
//! proxy in the way such a call fails at once, and is written to `egress-refused.log` in the
//! cluster's directory; a webhook at `https://127.0.0.1:<port>` works as before.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The egress selector configuration sending the API server's `cluster` traffic to `socket`.
pub fn selector_config(socket: &Path) -> String {
    format!(
        "apiVersion: apiserver.k8s.io/v1beta1\n\
         kind: EgressSelectorConfiguration\n\
         egressSelections:\n\
         - name: cluster\n  \
           connection:\n    \
             proxyProtocol: HTTPConnect\n    \
             transport:\n      \
               uds:\n        \
                 udsName: {}\n",
        socket.display()
    )
}

/// Whether `target` (`host:port` of a CONNECT) is on this machine's loopback.
pub fn is_loopback(target: &str) -> bool {
    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Serves the proxy on `socket` for the rest of the process; refusals go to `refused`.
pub fn serve(socket: &Path, refused: PathBuf) -> std::io::Result<()> {
    let listener = UnixListener::bind(socket)?;
    std::thread::Builder::new()
        .name("egress-proxy".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                let refused = refused.clone();
                std::thread::spawn(move || tunnel(conn, &refused));
            }
        })?;
    Ok(())
}

fn tunnel(conn: UnixStream, refused: &Path) {
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {}
        }
    }
    let mut writer = conn;
    let target = request
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    if !request.starts_with("CONNECT ") || !is_loopback(&target) {
        if let Ok(mut log) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(refused)
        {
            let _ = writeln!(log, "{}", request.trim_end());
        }
        eprintln!("test control plane: refused API server egress to {target:?}");
        let _ = writer.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n");
        return;
    }
    let Ok(upstream) = TcpStream::connect(&target) else {
        let _ = writer.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
        return;
    };
    if writer
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let (Ok(mut up_read), Ok(mut down_write)) = (upstream.try_clone(), writer.try_clone()) else {
        return;
    };
    let buffered = reader.buffer().to_vec();
    let mut up_write = upstream;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_read, &mut down_write);
        let _ = down_write.shutdown(std::net::Shutdown::Write);
    });
    if up_write.write_all(&buffered).is_ok() {
        let mut rest = reader.into_inner();
        let _ = std::io::copy(&mut rest, &mut up_write);
    }
    let _ = up_write.shutdown(std::net::Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_let_through() {
        for ok in ["127.0.0.1:9443", "127.1.2.3:1", "[::1]:443", "localhost:80"] {
            assert!(is_loopback(ok), "{ok}");
        }
        for refused in [
            "10.96.0.12:443",
            "10.244.0.5:9443",
            "example.com:443",
            "[fd00::1]:443",
            "",
        ] {
            assert!(!is_loopback(refused), "{refused}");
        }
    }
}
