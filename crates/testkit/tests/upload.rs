//! XEP-0363 HTTP File Upload end to end: a slot over XMPP, a PUT of a
//! multi-megabyte file to the signed URL over real HTTP, a GET (whole and
//! ranged) that returns the same bytes; and the refusals: too large,
//! over quota, forged or reused URL, wrong size, unknown file, strangers.

use std::net::SocketAddr;

use minidom::Element;
use roost_testkit::{Client, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "urn:xmpp:http:upload:0";

async fn server(tweak: impl FnOnce(&mut roost_server::Config)) -> TestServer {
    let port = roost_testkit::federation::free_port("127.0.0.1");
    TestServer::start_with(|c| {
        c.listen.http = port.to_string().as_str().into();
        c.upload.url = Some(format!("http://{port}"));
        tweak(c)
    })
    .await
}

/// One HTTP/1.1 request on its own connection; status, headers, body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    // The body may be refused early; write what the server takes.
    let _ = tcp.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tcp.read_to_end(&mut raw).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The path and query of a slot URL.
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    format!("/{}", rest.split_once('/').unwrap().1)
}

async fn request_slot(c: &mut Client, name: &str, size: u64, ctype: &str) -> Element {
    c.iq(
        "get",
        Some("upload.localhost"),
        &format!("<request xmlns='{NS}' filename='{name}' size='{size}' content-type='{ctype}'/>"),
    )
    .await
}

fn urls(r: &Element) -> (String, String) {
    let slot = r
        .get_child("slot", NS)
        .unwrap_or_else(|| panic!("{}", String::from(r)));
    let put = slot.get_child("put", NS).unwrap().attr("url").unwrap();
    let get = slot.get_child("get", NS).unwrap().attr("url").unwrap();
    (path_of(put), path_of(get))
}

#[tokio::test]
async fn a_file_goes_up_and_comes_back_the_same() {
    let s = server(|_| {}).await;
    let addr = s.running.http.unwrap();
    s.user("alice").await;
    let mut a = s.login("alice", "phone").await;
    // The service is found and says its limit.
    let info = a
        .iq(
            "get",
            Some("upload.localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    let text = String::from(&info);
    assert!(
        text.contains("category='store'") && text.contains(NS),
        "{text}"
    );
    assert!(text.contains("max-file-size"));
    let data: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i * 7 + i / 13) as u8)
        .collect();
    let r = request_slot(&mut a, "holiday photo.jpg", data.len() as u64, "image/jpeg").await;
    let (put, get) = urls(&r);
    assert_ne!(put, get, "the GET URL carries no signature");
    let headers = [
        ("Content-Type", "image/jpeg".to_string()),
        ("Content-Length", data.len().to_string()),
    ];
    let (status, _, _) = http(addr, "PUT", &put, &headers, &data).await;
    assert_eq!(status, 201);
    // The same URL cannot be used twice.
    let (status, _, _) = http(addr, "PUT", &put, &headers, &data).await;
    assert_eq!(status, 409);
    let (status, h, body) = http(addr, "GET", &get, &[], b"").await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), data.len());
    assert!(body == data, "the same bytes");
    assert_eq!(header(&h, "content-type"), Some("image/jpeg"));
    assert_eq!(
        header(&h, "content-length"),
        Some(data.len().to_string().as_str())
    );
    assert!(header(&h, "content-disposition")
        .unwrap()
        .starts_with("inline"));
    assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    let etag = header(&h, "etag").unwrap().to_string();
    // A range, and a conditional GET.
    let (status, h, body) =
        http(addr, "GET", &get, &[("Range", "bytes=100-199".into())], b"").await;
    assert_eq!(status, 206);
    assert_eq!(body, &data[100..200]);
    assert_eq!(
        header(&h, "content-range"),
        Some(format!("bytes 100-199/{}", data.len()).as_str())
    );
    let (status, _, _) = http(addr, "GET", &get, &[("If-None-Match", etag)], b"").await;
    assert_eq!(status, 304);
    // CORS preflight for web clients.
    let (status, h, _) = http(
        addr,
        "OPTIONS",
        &put,
        &[("Origin", "https://web.example".into())],
        b"",
    )
    .await;
    assert_eq!(status, 204);
    assert!(header(&h, "access-control-allow-methods")
        .unwrap()
        .contains("PUT"));
    // Unknown files.
    let (status, _, _) = http(addr, "GET", "/upload/nosuchid/x.jpg", &[], b"").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_slots_and_bad_puts_are_refused() {
    let s = server(|c| {
        c.upload.max_file_size = 1000;
        c.upload.quota = 1500;
    })
    .await;
    let addr = s.running.http.unwrap();
    s.user("alice").await;
    let mut a = s.login("alice", "phone").await;
    // Too large: file-too-large with the limit.
    let r = request_slot(&mut a, "big.bin", 2000, "application/octet-stream").await;
    assert_eq!(r.attr("type"), Some("error"));
    let t = String::from(&r);
    assert!(
        t.contains("not-acceptable") && t.contains("file-too-large") && t.contains(">1000<"),
        "{t}"
    );
    // A bad size.
    let r = request_slot(&mut a, "x.bin", 0, "text/plain").await;
    assert!(String::from(&r).contains("not-acceptable"));
    // A forged signature, the wrong size, the wrong type.
    let r = request_slot(&mut a, "a.txt", 800, "text/plain").await;
    let (put, _) = urls(&r);
    let body = vec![b'a'; 800];
    let ok = [
        ("Content-Type", "text/plain".to_string()),
        ("Content-Length", "800".into()),
    ];
    let forged = put.replace("&s=", "&s=00");
    assert_eq!(http(addr, "PUT", &forged, &ok, &body).await.0, 403);
    let other_type = [
        ("Content-Type", "text/html".to_string()),
        ("Content-Length", "800".into()),
    ];
    assert_eq!(http(addr, "PUT", &put, &other_type, &body).await.0, 403);
    let other_size = [
        ("Content-Type", "text/plain".to_string()),
        ("Content-Length", "700".into()),
    ];
    assert_eq!(
        http(addr, "PUT", &put, &other_size, &body[..700]).await.0,
        403
    );
    assert_eq!(http(addr, "PUT", &put, &ok, &body).await.0, 201);
    // 800 of 1500 used: 800 more is over the quota.
    let r = request_slot(&mut a, "b.txt", 800, "text/plain").await;
    assert!(
        String::from(&r).contains("resource-constraint"),
        "{}",
        String::from(&r)
    );
}

#[tokio::test]
async fn a_removed_accounts_files_go() {
    let s = server(|c| c.admins = vec!["admin@localhost".into()]).await;
    let addr = s.running.http.unwrap();
    s.user("alice").await;
    s.user("admin").await;
    let mut a = s.login("alice", "phone").await;
    let r = request_slot(&mut a, "n.txt", 5, "text/plain").await;
    let (put, get) = urls(&r);
    let h = [
        ("Content-Type", "text/plain".to_string()),
        ("Content-Length", "5".into()),
    ];
    assert_eq!(http(addr, "PUT", &put, &h, b"hello").await.0, 201);
    assert_eq!(http(addr, "GET", &get, &[], b"").await.0, 200);
    let mut admin = s.login("admin", "desk").await;
    admin
        .iq(
            "set",
            Some("localhost"),
            "<command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#delete-user' action='execute'>\
             <x xmlns='jabber:x:data' type='submit'><field var='accountjids'><value>alice@localhost</value></field></x></command>",
        )
        .await;
    assert_eq!(http(addr, "GET", &get, &[], b"").await.0, 404);
}
