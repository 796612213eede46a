//! A minimal HTTP/1.1 client (RFC 9112) for the XEP-0363 side of the
//! soak: one request per connection, plain or over TLS (RFC 8446, any
//! certificate accepted: loopback tests only), bodies framed by
//! Content-Length or chunked transfer coding.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The parts of an `http://` or `https://` URL a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// Host as written (an IPv6 literal without its brackets).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl Url {
    pub fn parse(s: &str) -> anyhow::Result<Url> {
        let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            bail!("not an http(s) URL: {s}");
        };
        let (authority, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| anyhow!("bad IPv6 literal in {s}"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().context("bad port")?,
                None => default_port,
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().context("bad port")?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            bail!("no host in {s}");
        }
        Ok(Url {
            https,
            host,
            port,
            target: target.to_string(),
        })
    }

    /// The Host header's value.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

pub struct Response {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a connection of its own, within `timeout`.
pub async fn request(
    tls: &Arc<rustls::ClientConfig>,
    url: &Url,
    method: &str,
    headers: &[(String, String)],
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<Response> {
    tokio::time::timeout(timeout, async {
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .with_context(|| format!("connect {}", url.authority()))?;
        tcp.set_nodelay(true)?;
        if url.https {
            let name = ServerName::try_from(url.host.clone()).context("TLS server name")?;
            let s = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .context("TLS handshake")?;
            exchange(s, url, method, headers, body).await
        } else {
            exchange(tcp, url, method, headers, body).await
        }
    })
    .await
    .map_err(|_| anyhow!("timed out after {} s", timeout.as_secs()))?
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    url: &Url,
    method: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> anyhow::Result<Response> {
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: roost-load\r\n",
        url.target,
        url.authority()
    );
    if !body.is_empty() || method == "PUT" || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.context("write head")?;
    // A refusal may come before the body is taken: read the answer anyway.
    let wrote = s.write_all(body).await;
    let _ = s.flush().await;
    let resp = read_response(&mut s).await;
    match (resp, wrote) {
        (Ok(r), _) => Ok(r),
        (Err(e), Err(w)) => Err(e.context(format!("write body: {w}"))),
        (Err(e), Ok(())) => Err(e),
    }
}

const MAX_HEAD: usize = 64 * 1024;

async fn read_response<S: AsyncRead + Unpin>(s: &mut S) -> anyhow::Result<Response> {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            bail!("response head over {MAX_HEAD} bytes");
        }
        let n = s.read(&mut chunk).await.context("read response head")?;
        if n == 0 {
            bail!("connection closed before a response");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("response head not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut rest = buf[head_end + 4..].to_vec();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_to_end_lenient(s, &mut rest).await?;
        dechunk(&rest)?
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().context("bad Content-Length")?;
        while rest.len() < len {
            let n = s.read(&mut chunk).await.context("read body")?;
            if n == 0 {
                bail!("body cut short: {} of {len} bytes", rest.len());
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(len);
        rest
    } else {
        read_to_end_lenient(s, &mut rest).await?;
        rest
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Read until the peer closes; a TLS peer that closes without
/// close_notify has still sent everything it framed.
async fn read_to_end_lenient<S: AsyncRead + Unpin>(
    s: &mut S,
    out: &mut Vec<u8>,
) -> anyhow::Result<()> {
    match s.read_to_end(out).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(()),
        Err(e) => Err(e).context("read body"),
    }
}

/// Undo chunked transfer coding (RFC 9112 §7.1); trailers are ignored.
fn dechunk(mut b: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let i = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("chunk size line cut short"))?;
        let line = std::str::from_utf8(&b[..i]).context("chunk size")?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .context("chunk size")?;
        b = &b[i + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            bail!("chunk cut short");
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_ports_paths_and_ipv6() {
        let u = Url::parse("https://127.0.0.1:5281/upload/abc/f.bin?s=1&e=2").unwrap();
        assert_eq!(
            u,
            Url {
                https: true,
                host: "127.0.0.1".into(),
                port: 5281,
                target: "/upload/abc/f.bin?s=1&e=2".into()
            }
        );
        let u = Url::parse("http://[::1]:8080/x").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.https), ("::1", 8080, false));
        assert_eq!(u.authority(), "[::1]:8080");
        let u = Url::parse("https://upload.example").unwrap();
        assert_eq!((u.port, u.target.as_str()), (443, "/"));
        assert!(Url::parse("ftp://x/y").is_err());
        assert!(Url::parse("http://:80/").is_err());
    }

    #[test]
    fn chunked_bodies_are_joined() {
        let b = dechunk(b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n").unwrap();
        assert_eq!(b, b"Wikipedia");
        assert!(dechunk(b"ff\r\nshort\r\n").is_err());
    }

    #[tokio::test]
    async fn a_response_framed_by_content_length() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            b.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloEXTRA")
                .await
                .unwrap();
        });
        let r = read_response(&mut a).await.unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.body, b"hello");
        assert_eq!(r.header("x-a"), Some("b"));
    }
}
