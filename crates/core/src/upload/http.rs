//! The HTTP side of XEP-0363 on the HTTP(S) listeners, under `/upload/`:
//! PUT to a signed URL, streamed to disk (never whole in memory) and
//! checked against the signed size and type; GET and HEAD streamed back
//! with `Content-Type`, `Content-Length`, `Content-Disposition`, `ETag`
//! and single byte ranges; CORS for web clients (preflight `OPTIONS`).
//! 403 for a bad or expired signature, 404 for no such file, 409 for a
//! slot used twice, 413 for more bytes than signed.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{header, Method, Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{read_meta, Slot, Uploads, PATH_PREFIX};
use crate::http::ConnInfo;

pub type ResBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// Percent-encoding of a path segment or query value (RFC 3986
/// unreserved characters stay).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn full(status: StatusCode, text: &str) -> Response<ResBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(format!("{text}\n")))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    cors(r)
}

fn cors(mut r: Response<ResBody>) -> Response<ResBody> {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        header::HeaderValue::from_static("GET, HEAD, PUT, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        header::HeaderValue::from_static("Content-Type, Content-Length, Range"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::HeaderValue::from_static("Content-Length, Content-Range, ETag"),
    );
    r
}

fn query(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| decode(v))
}

/// `/upload/<id>/<name>`: the id and the decoded name.
fn target(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix(PATH_PREFIX)?;
    let (id, name) = rest.split_once('/')?;
    let ok_id = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric());
    let name = decode(name)?;
    (ok_id && !name.is_empty() && !name.contains('/')).then(|| (id.to_string(), name))
}

pub(crate) async fn handle(info: &Arc<ConnInfo>, req: Request<Incoming>) -> Response<ResBody> {
    let Some(uploads) = info.server.uploads.get().cloned() else {
        return full(StatusCode::NOT_FOUND, "not found");
    };
    let Some((id, name)) = target(req.uri().path()) else {
        return full(StatusCode::NOT_FOUND, "not found");
    };
    match *req.method() {
        Method::OPTIONS => {
            let mut r = full(StatusCode::NO_CONTENT, "");
            *r.body_mut() = Full::new(Bytes::new())
                .map_err(|n| match n {})
                .boxed_unsync();
            r
        }
        Method::PUT => put(info, &uploads, id, name, req).await,
        Method::GET | Method::HEAD => get(&uploads, id, name, req).await,
        _ => full(StatusCode::METHOD_NOT_ALLOWED, "GET, HEAD, PUT or OPTIONS"),
    }
}

async fn put(
    info: &Arc<ConnInfo>,
    uploads: &Arc<Uploads>,
    id: String,
    filename: String,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let header = |h: header::HeaderName| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let Some(size) = header(header::CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok()) else {
        return full(StatusCode::LENGTH_REQUIRED, "Content-Length is needed");
    };
    let slot = Slot {
        id: id.clone(),
        filename,
        size,
        content_type: header(header::CONTENT_TYPE)
            .unwrap_or_else(|| "application/octet-stream".into()),
        owner: query(&req, "o").unwrap_or_default(),
        expiry: query(&req, "e").and_then(|e| e.parse().ok()).unwrap_or(0),
    };
    let sig = query(&req, "s").unwrap_or_default();
    if !uploads.verify(&slot, &sig) {
        return full(
            StatusCode::FORBIDDEN,
            "this URL is not valid (or no longer)",
        );
    }
    if size > uploads.config.max_file_size {
        return full(StatusCode::PAYLOAD_TOO_LARGE, "the file is too large");
    }
    let dir = uploads.dir.join(&id);
    if tokio::fs::create_dir(&dir).await.is_err() {
        return full(StatusCode::CONFLICT, "this slot was used");
    }
    let tmp = dir.join("data.partial");
    let result = async {
        let mut file = tokio::fs::File::create(&tmp).await?;
        let mut body = req.into_body();
        let mut got: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(std::io::Error::other)?;
            if let Ok(data) = frame.into_data() {
                got += data.len() as u64;
                if got > size {
                    return Ok(Err(StatusCode::PAYLOAD_TOO_LARGE));
                }
                file.write_all(&data).await?;
                // Slow uploads are fine while they move.
                info.extend_deadline();
            }
        }
        if got != size {
            return Ok(Err(StatusCode::BAD_REQUEST));
        }
        file.sync_all().await?;
        Ok::<_, std::io::Error>(Ok(()))
    }
    .await;
    match result {
        Ok(Ok(())) => {
            let done = tokio::fs::rename(&tmp, dir.join("data")).await.is_ok()
                && super::write_meta(&dir, &slot).is_ok();
            if !done {
                let _ = tokio::fs::remove_dir_all(&dir).await;
                return full(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the file could not be stored",
                );
            }
            uploads.add_usage(&slot.owner, slot.size as i64);
            tracing::info!(owner = %slot.owner, size = slot.size, "file uploaded");
            full(StatusCode::CREATED, "stored")
        }
        Ok(Err(status)) => {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            full(status, "the body does not match the slot's size")
        }
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            tracing::info!(error = %e, "upload failed");
            full(StatusCode::BAD_REQUEST, "the upload failed")
        }
    }
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` within `len`; `Err` when unsatisfiable.
fn range(spec: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let r = spec.strip_prefix("bytes=")?;
    if r.contains(',') {
        return None; // several ranges: the whole file instead
    }
    let (a, b) = r.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (len.saturating_sub(n), len.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, len.checked_sub(1)?),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.min(len.saturating_sub(1)),
        ),
    };
    Some(if start > end || start >= len {
        Err(())
    } else {
        Ok((start, end))
    })
}

async fn get(
    uploads: &Arc<Uploads>,
    id: String,
    name: String,
    req: Request<Incoming>,
) -> Response<ResBody> {
    let dir = uploads.dir.join(&id);
    let Some(meta) = read_meta(&dir).filter(|m| m.filename == name) else {
        return full(StatusCode::NOT_FOUND, "no such file");
    };
    let etag = format!("\"{id}\"");
    if req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        let mut r = full(StatusCode::NOT_MODIFIED, "");
        *r.body_mut() = Full::new(Bytes::new())
            .map_err(|n| match n {})
            .boxed_unsync();
        return r;
    }
    let Ok(mut file) = tokio::fs::File::open(dir.join("data")).await else {
        return full(StatusCode::NOT_FOUND, "no such file");
    };
    let len = meta.size;
    let (status, start, end) = match req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| range(r, len))
    {
        Some(Ok((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Some(Err(())) => {
            let mut r = full(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                header::HeaderValue::from_str(&format!("bytes */{len}"))
                    .unwrap_or(header::HeaderValue::from_static("bytes */0")),
            );
            return r;
        }
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    if start > 0 && file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return full(StatusCode::INTERNAL_SERVER_ERROR, "read error");
    }
    let head = req.method() == Method::HEAD;
    let body: ResBody = if head || count == 0 {
        Full::new(Bytes::new())
            .map_err(|n| match n {})
            .boxed_unsync()
    } else {
        // Read in chunks as the client takes them: never the whole file.
        let stream = futures_util::stream::unfold((file, count), |(mut f, left)| async move {
            if left == 0 {
                return None;
            }
            let mut buf = vec![0u8; left.min(64 * 1024) as usize];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Frame::data(Bytes::from(buf))), (f, left - n as u64)))
                }
                Err(e) => Some((Err(e), (f, 0))),
            }
        });
        BodyExt::boxed_unsync(StreamBody::new(stream.boxed()))
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    let val = |s: String| header::HeaderValue::from_str(&s).ok();
    if let Some(v) = val(meta.content_type.clone()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(v) = val(count.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Some(v) = val(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::ACCEPT_RANGES,
        header::HeaderValue::from_static("bytes"),
    );
    // Images, audio and video show inline; anything else is a download.
    let inline = ["image/", "audio/", "video/"]
        .iter()
        .any(|p| meta.content_type.starts_with(p));
    let disposition = format!(
        "{}; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        encode(&meta.filename)
    );
    if let Some(v) = val(disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Some(v) = val(format!("bytes {start}-{end}/{len}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    // Stored files are never executed by the browser as pages.
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    cors(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(range("bytes=100-", 100), Some(Err(())));
        assert_eq!(range("bytes=0-1,5-6", 100), None);
    }

    #[test]
    fn names_round_trip_through_urls() {
        let n = "my photo (1) ä.jpg";
        assert_eq!(decode(&encode(n)).as_deref(), Some(n));
        assert_eq!(
            target(&format!("/upload/abc123/{}", encode(n))),
            Some(("abc123".into(), n.into()))
        );
        assert_eq!(target("/upload/../etc/passwd"), None);
    }
}
