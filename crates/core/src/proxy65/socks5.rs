//! XEP-0065: SOCKS5 Bytestreams — the part of RFC 1928 a bytestreams proxy
//! speaks (XEP-0065 §9.2): no authentication (method 0), CONNECT only, with
//! a domain-name address that is the stream's SHA-1 hash. Parsing is kept
//! apart from I/O so that each message is tested on its own.

use std::time::Duration;

use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// RFC 1928 §3: VER.
pub const VERSION: u8 = 0x05;
/// RFC 1928 §3: NO AUTHENTICATION REQUIRED.
pub const METHOD_NO_AUTH: u8 = 0x00;
/// RFC 1928 §3: NO ACCEPTABLE METHODS.
pub const METHOD_NONE_ACCEPTABLE: u8 = 0xFF;
/// RFC 1928 §4: CMD CONNECT.
pub const CMD_CONNECT: u8 = 0x01;
/// RFC 1928 §5: ATYP IP V4 address.
pub const ATYP_IPV4: u8 = 0x01;
/// RFC 1928 §5: ATYP DOMAINNAME, the one XEP-0065 §9.2 uses.
pub const ATYP_DOMAIN: u8 = 0x03;

/// RFC 1928 §6: the REP values this proxy sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    Succeeded = 0x00,
    GeneralFailure = 0x01,
    /// A third connection for a stream, or the proxy is full.
    NotAllowedByRuleset = 0x02,
    /// The address is not a stream address (40 hexadecimal digits).
    HostUnreachable = 0x04,
    CommandNotSupported = 0x07,
    AddressTypeNotSupported = 0x08,
}

/// A stream's address: the hexadecimal SHA-1 of SID + requester JID +
/// target JID (XEP-0065 §5.3.2), always in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamAddress(String);

impl StreamAddress {
    /// XEP-0065 §5.3.2: `SHA1(SID + Requester JID + Target JID)`; the JIDs
    /// are given in their normalised string form.
    pub fn compute(sid: &str, requester: &str, target: &str) -> StreamAddress {
        let mut sha = Sha1::new();
        sha.update(sid.as_bytes());
        sha.update(requester.as_bytes());
        sha.update(target.as_bytes());
        StreamAddress(crate::s2s::dialback::hex(&sha.finalize()))
    }

    /// DST.ADDR as sent: 40 hexadecimal digits (either case).
    pub fn parse(dst_addr: &[u8]) -> Option<StreamAddress> {
        (dst_addr.len() == 40 && dst_addr.iter().all(u8::is_ascii_hexdigit)).then(|| {
            StreamAddress(
                dst_addr
                    .iter()
                    .map(|b| char::from(b.to_ascii_lowercase()))
                    .collect(),
            )
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StreamAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a SOCKS5 exchange ended before a stream address was known.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("the client did not finish the SOCKS5 handshake in time")]
    Timeout,
    #[error("not SOCKS version 5 (VER {0:#04x})")]
    Version(u8),
    #[error("the client offered no acceptable authentication method")]
    NoAcceptableMethod,
    #[error("request refused with REP {0:?}")]
    Refused(Reply),
}

/// RFC 1928 §3: the method chosen from those offered; only "no
/// authentication" (XEP-0065 leaves authentication out of scope).
pub fn choose_method(offered: &[u8]) -> Option<u8> {
    offered.contains(&METHOD_NO_AUTH).then_some(METHOD_NO_AUTH)
}

/// RFC 1928 §4: check VER, CMD, RSV, ATYP of a request; the error is what
/// to answer (`Version` is answered by closing, there being no common
/// language to answer in).
pub fn check_request_head(head: [u8; 4]) -> Result<(), HandshakeError> {
    let [version, command, _reserved, address_type] = head;
    if version != VERSION {
        return Err(HandshakeError::Version(version));
    }
    if command != CMD_CONNECT {
        // XEP-0065 §9.2: TCP CONNECT only; UDP (§7) is not offered.
        return Err(HandshakeError::Refused(Reply::CommandNotSupported));
    }
    if address_type != ATYP_DOMAIN {
        // XEP-0065 §9.2: ATYP is hard-coded to DOMAINNAME.
        return Err(HandshakeError::Refused(Reply::AddressTypeNotSupported));
    }
    Ok(())
}

/// A CONNECT request for a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub address: StreamAddress,
    /// DST.PORT: 0 by XEP-0065 §5.3.2, which the proxy MAY ignore (§9.1).
    pub port: u16,
}

impl ConnectRequest {
    /// RFC 1928 §6 reply; XEP-0065 §5.3.2: BND.ADDR and BND.PORT repeat
    /// DST.ADDR and DST.PORT.
    pub fn reply(&self, reply: Reply) -> Vec<u8> {
        let name = self.address.as_str().as_bytes();
        let mut out = Vec::with_capacity(7 + name.len());
        out.extend_from_slice(&[VERSION, reply as u8, 0x00, ATYP_DOMAIN]);
        // A stream address is 40 bytes: it fits the one-byte length.
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(&self.port.to_be_bytes());
        out
    }
}

/// RFC 1928 §6 failure reply when no address was read: BND is 0.0.0.0:0.
pub fn failure_reply(reply: Reply) -> [u8; 10] {
    [VERSION, reply as u8, 0x00, ATYP_IPV4, 0, 0, 0, 0, 0, 0]
}

/// Run the server side of RFC 1928 §3–§4 up to a valid CONNECT: choose the
/// method, read the request, answer refusals. The success reply is left to
/// the caller, which first checks that the stream can take the connection.
/// Every read falls under one deadline, so a silent client cannot hold the
/// connection.
pub async fn accept<S>(stream: &mut S, limit: Duration) -> Result<ConnectRequest, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(limit, negotiate(stream)).await {
        Ok(result) => result,
        Err(_) => Err(HandshakeError::Timeout),
    }
}

async fn negotiate<S>(stream: &mut S) -> Result<ConnectRequest, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // RFC 1928 §3: VER, NMETHODS, METHODS.
    let mut greeting = [0u8; 2];
    stream.read_exact(&mut greeting).await?;
    if greeting[0] != VERSION {
        return Err(HandshakeError::Version(greeting[0]));
    }
    let mut methods = vec![0u8; usize::from(greeting[1])];
    stream.read_exact(&mut methods).await?;
    let Some(method) = choose_method(&methods) else {
        stream.write_all(&[VERSION, METHOD_NONE_ACCEPTABLE]).await?;
        return Err(HandshakeError::NoAcceptableMethod);
    };
    stream.write_all(&[VERSION, method]).await?;

    // RFC 1928 §4: VER, CMD, RSV, ATYP, DST.ADDR, DST.PORT.
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    if let Err(e) = check_request_head(head) {
        if let HandshakeError::Refused(reply) = e {
            stream.write_all(&failure_reply(reply)).await?;
        }
        return Err(e);
    }
    let length = stream.read_u8().await?;
    let mut name = vec![0u8; usize::from(length)];
    stream.read_exact(&mut name).await?;
    let port = stream.read_u16().await?;
    let Some(address) = StreamAddress::parse(&name) else {
        stream
            .write_all(&failure_reply(Reply::HostUnreachable))
            .await?;
        return Err(HandshakeError::Refused(Reply::HostUnreachable));
    };
    Ok(ConnectRequest { address, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9cd5a3e5d6ae5c0ad1c0b6c8be0c8c2c0f7c5ae1";

    fn connect_bytes(atyp: u8, name: &[u8]) -> Vec<u8> {
        let mut b = vec![VERSION, CMD_CONNECT, 0, atyp, name.len() as u8];
        b.extend_from_slice(name);
        b.extend_from_slice(&[0, 0]);
        b
    }

    /// Play `client` against `accept`; what the proxy wrote and its verdict.
    async fn run(client: &[u8]) -> (Vec<u8>, Result<ConnectRequest, HandshakeError>) {
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        theirs.write_all(client).await.unwrap();
        // The client sends nothing more: a short message ends in EOF.
        theirs.shutdown().await.unwrap();
        let verdict = accept(&mut ours, Duration::from_secs(5)).await;
        drop(ours);
        let mut written = Vec::new();
        theirs.read_to_end(&mut written).await.unwrap();
        (written, verdict)
    }

    #[test]
    fn the_address_is_the_sha1_of_sid_requester_and_target() {
        // SHA1("abc"), RFC 3174 test vector 1, split over the three inputs.
        assert_eq!(
            StreamAddress::compute("a", "b", "c").as_str(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn an_address_is_forty_hex_digits_in_lower_case() {
        let upper = HASH.to_ascii_uppercase();
        assert_eq!(
            StreamAddress::parse(upper.as_bytes()).unwrap().as_str(),
            HASH
        );
        assert!(StreamAddress::parse(&HASH.as_bytes()[..39]).is_none());
        assert!(StreamAddress::parse(b"example.org").is_none());
        let mut not_hex = HASH.as_bytes().to_vec();
        not_hex[0] = b'g';
        assert!(StreamAddress::parse(&not_hex).is_none());
    }

    #[test]
    fn only_no_authentication_is_chosen() {
        assert_eq!(choose_method(&[0x02, 0x00]), Some(METHOD_NO_AUTH));
        assert_eq!(choose_method(&[0x01, 0x02]), None);
        assert_eq!(choose_method(&[]), None);
    }

    #[test]
    fn request_heads_other_than_connect_to_a_domain_are_refused() {
        assert!(check_request_head([5, 1, 0, 3]).is_ok());
        assert!(matches!(
            check_request_head([4, 1, 0, 3]),
            Err(HandshakeError::Version(4))
        ));
        assert!(matches!(
            check_request_head([5, 3, 0, 3]),
            Err(HandshakeError::Refused(Reply::CommandNotSupported))
        ));
        assert!(matches!(
            check_request_head([5, 1, 0, 1]),
            Err(HandshakeError::Refused(Reply::AddressTypeNotSupported))
        ));
    }

    #[test]
    fn the_reply_repeats_the_requested_address_and_port() {
        let request = ConnectRequest {
            address: StreamAddress::parse(HASH.as_bytes()).unwrap(),
            port: 0,
        };
        let reply = request.reply(Reply::Succeeded);
        assert_eq!(&reply[..5], &[5, 0, 0, 3, 40]);
        assert_eq!(&reply[5..45], HASH.as_bytes());
        assert_eq!(&reply[45..], &[0, 0]);
    }

    #[tokio::test]
    async fn a_well_formed_connect_gives_the_stream_address() {
        let mut client = vec![VERSION, 1, METHOD_NO_AUTH];
        client.extend(connect_bytes(ATYP_DOMAIN, HASH.as_bytes()));
        let (written, verdict) = run(&client).await;
        assert_eq!(written, [VERSION, METHOD_NO_AUTH]);
        assert_eq!(verdict.unwrap().address.as_str(), HASH);
    }

    #[tokio::test]
    async fn a_greeting_without_method_zero_gets_ff() {
        let (written, verdict) = run(&[VERSION, 1, 0x02]).await;
        assert_eq!(written, [VERSION, METHOD_NONE_ACCEPTABLE]);
        assert!(matches!(verdict, Err(HandshakeError::NoAcceptableMethod)));
    }

    #[tokio::test]
    async fn socks4_gets_no_answer() {
        let (written, verdict) = run(&[4, 1, 0, 0]).await;
        assert!(written.is_empty());
        assert!(matches!(verdict, Err(HandshakeError::Version(4))));
    }

    #[tokio::test]
    async fn an_ipv4_address_is_refused_with_08() {
        let mut client = vec![VERSION, 1, METHOD_NO_AUTH];
        client.extend(connect_bytes(ATYP_IPV4, &[127, 0, 0, 1]));
        let (written, _) = run(&client).await;
        assert_eq!(
            &written[2..],
            &failure_reply(Reply::AddressTypeNotSupported)
        );
    }

    #[tokio::test]
    async fn a_name_that_is_not_a_hash_is_refused_with_04() {
        let mut client = vec![VERSION, 1, METHOD_NO_AUTH];
        client.extend(connect_bytes(ATYP_DOMAIN, b"example.org"));
        let (written, _) = run(&client).await;
        assert_eq!(&written[2..], &failure_reply(Reply::HostUnreachable));
    }

    #[tokio::test]
    async fn a_truncated_request_ends_without_hanging() {
        let (written, verdict) = run(&[VERSION, 3, 0]).await;
        assert!(written.is_empty());
        assert!(matches!(verdict, Err(HandshakeError::Io(_))));
    }

    #[tokio::test]
    async fn a_silent_client_times_out() {
        let (mut ours, _theirs) = tokio::io::duplex(64);
        let verdict = accept(&mut ours, Duration::from_millis(50)).await;
        assert!(matches!(verdict, Err(HandshakeError::Timeout)));
    }
}
