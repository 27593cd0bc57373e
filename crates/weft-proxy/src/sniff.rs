//! Protocol detection on a connection's first bytes, as Envoy's listener
//! filters do it: `tls_inspector` (a TLS ClientHello: transport `tls`, the
//! SNI server name, the ALPN protocols) and `http_inspector` (an HTTP/1
//! request line → `http/1.0` / `http/1.1`, the HTTP/2 preface → `h2c`).
//!
//! The parsers are pure functions of a byte prefix that say "need more"
//! until they can decide, so they never read past what they are given and
//! never panic on truncated or garbage input. [`inspect`] peeks (the bytes
//! stay in the socket for whatever serves the connection) until both
//! inspectors have decided or the detection timeout passes.

use std::time::Duration;

use tokio::net::TcpStream;

/// The most bytes inspected: a ClientHello record is at most 16 KiB plus
/// its header; an HTTP/1 request line longer than this is not sniffed.
pub const MAX_PEEK: usize = 16 * 1024 + 5;

/// The h2 connection preface.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detected {
    /// `tls` when a ClientHello was seen, else `raw_buffer` (Envoy's names).
    pub transport: &'static str,
    /// The SNI of the ClientHello.
    pub server_name: Option<String>,
    /// ALPN of the ClientHello, or the sniffed plaintext HTTP protocol
    /// (`http/1.0`, `http/1.1`, `h2c`): Envoy's application protocols.
    pub application_protocols: Vec<String>,
}

/// What a ClientHello parser can say of a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    /// Not decided yet: more bytes are needed.
    NeedMore,
    /// Not a TLS ClientHello.
    NotTls,
    /// A ClientHello.
    Hello {
        /// Its server name (SNI host name), lower-cased.
        server_name: Option<String>,
        /// Its ALPN protocols, in order.
        alpn: Vec<String>,
    },
}

/// What the HTTP inspector can say of a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Http {
    /// Not decided yet.
    NeedMore,
    /// Not HTTP/1 or HTTP/2 prior knowledge.
    NotHttp,
    /// This application protocol (`http/1.0`, `http/1.1`, `h2c`).
    Protocol(&'static str),
}

/// A bounded reader over a byte slice: every read is checked, running out
/// is "need more".
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Ran out of bytes.
struct Short;

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        let end = self.pos.checked_add(n).ok_or(Short)?;
        let s = self.buf.get(self.pos..end).ok_or(Short)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<usize, Short> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u24(&mut self) -> Result<usize, Short> {
        let b = self.take(3)?;
        Ok((usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }

    /// A length-prefixed (`u8` or `u16`) vector.
    fn vec8(&mut self) -> Result<&'a [u8], Short> {
        let n = usize::from(self.u8()?);
        self.take(n)
    }

    fn vec16(&mut self) -> Result<&'a [u8], Short> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// Parses a TLS ClientHello from the start of a connection (RFC 8446 §4.1.2;
/// the first record only, as Envoy's inspector does for all but the
/// rarest hellos split across records).
pub fn client_hello(buf: &[u8]) -> Tls {
    // Record header: handshake (22), legacy version 3.x, length.
    match buf {
        [] => return Tls::NeedMore,
        [t, ..] if *t != 22 => return Tls::NotTls,
        [_, major, ..] if *major != 3 => return Tls::NotTls,
        _ => {}
    }
    let mut r = Reader::new(buf);
    let record = (|| {
        r.take(3)?;
        let len = r.u16()?;
        Ok::<_, Short>(len)
    })();
    let Ok(record_len) = record else {
        return Tls::NeedMore;
    };
    if record_len == 0 || record_len > 16 * 1024 + 256 {
        return Tls::NotTls;
    }
    // Parse what the record holds; a hello longer than the record is
    // parsed from what arrived and judged short only if the record is.
    let available = buf.len().saturating_sub(5).min(record_len);
    let body = &buf[5..5 + available];
    let complete = available == record_len;
    match parse_handshake(body) {
        Ok(Some(t)) => t,
        Ok(None) => Tls::NotTls,
        Err(Short) if complete => Tls::NotTls,
        Err(Short) => Tls::NeedMore,
    }
}

fn parse_handshake(body: &[u8]) -> Result<Option<Tls>, Short> {
    let mut r = Reader::new(body);
    if r.u8()? != 1 {
        return Ok(None); // not a ClientHello
    }
    let end = 4 + r.u24()?;
    let _version = r.take(2)?;
    let _random = r.take(32)?;
    let session = r.vec8()?;
    if session.len() > 32 {
        return Ok(None);
    }
    let suites = r.vec16()?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Ok(None);
    }
    let compression = r.vec8()?;
    if compression.is_empty() {
        return Ok(None);
    }
    let mut server_name = None;
    let mut alpn = Vec::new();
    if r.pos >= end {
        // No extensions at all (legal before TLS 1.3).
        return Ok(Some(Tls::Hello { server_name, alpn }));
    }
    let mut exts = Reader::new(r.vec16()?);
    while exts.pos < exts.buf.len() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        match kind {
            0 => server_name = sni(data),
            16 => alpn = alpn_list(data),
            _ => {}
        }
    }
    Ok(Some(Tls::Hello { server_name, alpn }))
}

/// The host name of a `server_name` extension, if it holds one.
fn sni(data: &[u8]) -> Option<String> {
    let mut r = Reader::new(data);
    let mut list = Reader::new(r.vec16().ok()?);
    while list.pos < list.buf.len() {
        let kind = list.u8().ok()?;
        let name = list.vec16().ok()?;
        if kind == 0 {
            let s = std::str::from_utf8(name).ok()?;
            let valid = !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
            return valid.then(|| s.to_ascii_lowercase());
        }
    }
    None
}

fn alpn_list(data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut r = Reader::new(data);
    let Ok(list) = r.vec16() else {
        return out;
    };
    let mut list = Reader::new(list);
    while let Ok(p) = list.vec8() {
        if let Ok(s) = std::str::from_utf8(p) {
            out.push(s.to_string());
        }
    }
    out
}

/// Envoy's HTTP inspector: the HTTP/2 preface, or an HTTP/1 request line
/// (`METHOD SP target SP HTTP/1.x CRLF`).
pub fn http(buf: &[u8]) -> Http {
    let n = buf.len().min(H2_PREFACE.len());
    if buf[..n] == H2_PREFACE[..n] {
        return if n == H2_PREFACE.len() {
            Http::Protocol("h2c")
        } else {
            Http::NeedMore
        };
    }
    const MAX_METHOD: usize = 24;
    let method_end = buf.iter().take(MAX_METHOD + 1).position(|b| *b == b' ');
    let method = &buf[..method_end.unwrap_or(buf.len().min(MAX_METHOD + 1))];
    if method.is_empty() && method_end.is_some()
        || !method.iter().all(|b| b.is_ascii_uppercase() || *b == b'-')
    {
        return Http::NotHttp;
    }
    let Some(method_end) = method_end else {
        return if method.len() > MAX_METHOD {
            Http::NotHttp
        } else {
            Http::NeedMore
        };
    };
    let limit = buf.len().min(8 * 1024);
    let Some(eol) = buf[..limit].windows(2).position(|w| w == b"\r\n") else {
        return if limit == 8 * 1024 || buf[..limit].contains(&b'\n') {
            Http::NotHttp
        } else {
            Http::NeedMore
        };
    };
    let line = &buf[method_end + 1..eol.max(method_end + 1)];
    match line.rsplit(|b| *b == b' ').next() {
        Some(b"HTTP/1.1") if line.contains(&b' ') => Http::Protocol("http/1.1"),
        Some(b"HTTP/1.0") if line.contains(&b' ') => Http::Protocol("http/1.0"),
        _ => Http::NotHttp,
    }
}

/// What to look for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Run the TLS inspector (some chain matches SNI or transport `tls`).
    pub tls: bool,
    /// Run the HTTP inspector (some chain matches application protocols).
    pub http: bool,
}

/// Decides from a prefix; `None` while an inspector still needs bytes.
pub fn decide(buf: &[u8], wanted: Wanted, eof: bool) -> Option<Detected> {
    let mut d = Detected {
        transport: "raw_buffer",
        ..Detected::default()
    };
    if wanted.tls {
        match client_hello(buf) {
            Tls::Hello { server_name, alpn } => {
                d.transport = "tls";
                d.server_name = server_name;
                d.application_protocols = alpn;
                return Some(d);
            }
            Tls::NeedMore if !eof => return None,
            _ => {}
        }
    }
    if wanted.http {
        match http(buf) {
            Http::Protocol(p) => d.application_protocols = vec![p.to_string()],
            Http::NeedMore if !eof => return None,
            _ => {}
        }
    }
    Some(d)
}

/// Peeks at `stream` until the wanted inspectors decide, the peer stops
/// sending (EOF) or `timeout` passes (`None`: wait as long as it takes,
/// Istio's `protocolDetectionTimeout: 0s`); then says what it saw. On
/// timeout what is known so far counts (Envoy's
/// `continue_on_listener_filters_timeout`): plain TCP.
pub async fn inspect(stream: &TcpStream, wanted: Wanted, timeout: Option<Duration>) -> Detected {
    let plain = Detected {
        transport: "raw_buffer",
        ..Detected::default()
    };
    if wanted == Wanted::default() {
        return plain;
    }
    let mut buf = vec![0u8; MAX_PEEK];
    let peek = async {
        let mut seen = 0;
        let mut pause = Duration::from_millis(1);
        loop {
            let (n, eof) = match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => (seen, true),
                Ok(n) => (n, n == buf.len()),
            };
            if let Some(d) = decide(&buf[..n], wanted, eof) {
                return d;
            }
            if n == seen {
                // Nothing new: peek doesn't wait for more than is there,
                // so back off a little before looking again.
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(20));
            } else {
                pause = Duration::from_millis(1);
            }
            seen = n;
        }
    };
    match timeout {
        Some(t) => tokio::time::timeout(t, peek).await.unwrap_or(plain),
        None => peek.await,
    }
}

#[cfg(test)]
mod tests;
