//! Reading HTTP/1.1 responses off raw connections, for the clients that reqwest cannot play:
//! slow readers and clients that leave early.

pub enum Parsed {
    Complete(u16, Option<String>, Vec<u8>),
    Partial,
}

/// Parses a response read to the end of its connection.
pub fn parse(bytes: &[u8]) -> Option<Parsed> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = response.parse(bytes).ok()? else {
        return Some(Parsed::Partial);
    };
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let mut body = bytes[head..].to_vec();
    let length = header("content-length").and_then(|l| l.parse::<usize>().ok());
    if length.is_some_and(|length| length != body.len()) {
        return Some(Parsed::Partial);
    }
    if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        let Some(decoded) = dechunk(&body) else {
            return Some(Parsed::Partial);
        };
        body = decoded;
    }
    let id = header("x-request-id").map(str::to_owned);
    Some(Parsed::Complete(response.code?, id, body))
}

/// Decodes a chunked body; `None` when it was cut off.
fn dechunk(mut bytes: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let httparse::Status::Complete((start, size)) = httparse::parse_chunk_size(bytes).ok()?
        else {
            return None;
        };
        let size = usize::try_from(size).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(bytes.get(start..start + size)?);
        bytes = bytes.get(start + size + 2..)?;
    }
}

pub fn parse_status(bytes: &[u8]) -> Option<u16> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    response.parse(bytes).ok()?;
    response.code
}

/// Whether `bytes` hold a response's head and at least one byte of its body.
pub fn has_body_bytes(bytes: &[u8]) -> bool {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .is_some_and(|end| bytes.len() > end + 4)
}
