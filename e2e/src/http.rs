//! Plain HTTP/1.1 on loopback, enough for test servers: no client library, no pooling. (HTTPS:
//! [`crate::https`].)

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long one exchange may take (a loaded test server can be slow).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One HTTP/1.1 exchange with a loopback server, asking it to close the connection after its
/// response: returns the status and the body.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<(u16, Vec<u8>)> {
    let host = addr.to_string();
    let exchange = async {
        let stream = TcpStream::connect(addr).await?;
        exchange(stream, &host, method, path, headers, body).await
    };
    timed(method, path, exchange).await
}

async fn timed(
    method: &str,
    target: &str,
    exchange: impl Future<Output = anyhow::Result<Vec<u8>>>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{method} {target}: no answer within {REQUEST_TIMEOUT:?}"))?
        .with_context(|| format!("{method} {target}"))?;
    parse_response(&response).with_context(|| format!("{method} {target}"))
}

/// Sends one request on `stream` and reads the whole response (the server closes after it).
async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Vec<u8>> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    // A TLS server may close without close_notify once the response is complete.
    if let Err(error) = stream.read_to_end(&mut response).await
        && (response.is_empty() || error.kind() != std::io::ErrorKind::UnexpectedEof)
    {
        return Err(error.into());
    }
    Ok(response)
}

/// The status and the body of a complete response, its chunked encoding undone.
fn parse_response(response: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP response")?;
    let head = std::str::from_utf8(&response[..split]).context("HTTP head is not UTF-8")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("no status line")?;
    let body = &response[split + 4..];
    let chunked = head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.eq_ignore_ascii_case("transfer-encoding") && value.trim() == "chunked"
        })
    });
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let (mut rest, mut decoded) = (body, Vec::new());
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunk")?;
        let size = std::str::from_utf8(&rest[..end])?.split(';').next();
        let size = usize::from_str_radix(size.unwrap_or_default().trim(), 16)?;
        if size == 0 {
            return Ok((status, decoded));
        }
        let chunk = rest
            .get(end + 2..end + 2 + size)
            .context("truncated chunk")?;
        decoded.extend_from_slice(chunk);
        rest = rest.get(end + 4 + size..).context("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded() {
        let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(response).unwrap(),
            (200, b"hello world".to_vec())
        );
        let plain = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
        assert_eq!(parse_response(plain).unwrap(), (404, b"no".to_vec()));
    }
}
