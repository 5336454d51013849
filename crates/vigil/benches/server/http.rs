//! A minimal HTTP/1.1 client over raw TCP, as `tests/cli/media.rs` drives the server: request
//! heads written by hand, response heads parsed, chunked bodies decoded incrementally.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response head.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub chunked: bool,
    pub text: String,
}

/// Reads a response head into `buf`; on return `buf` holds the bytes after it.
pub async fn read_head(rd: &mut (impl AsyncRead + Unpin), buf: &mut Vec<u8>) -> io::Result<Head> {
    let mut tmp = [0u8; 2048];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..p]).into_owned();
            buf.drain(..p + 4);
            let status = text
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let chunked = text
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked");
            return Ok(Head {
                status,
                chunked,
                text,
            });
        }
        let n = rd.read(&mut tmp).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response head",
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// GETs `path` on a new connection (`Connection: close`); returns the status and the body.
pub async fn get(addr: SocketAddr, path: &str) -> io::Result<(u16, Vec<u8>)> {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// POSTs a JSON body on a new connection (`Connection: close`); returns the status and the
/// body (de-chunked).
pub async fn post_json(addr: SocketAddr, path: &str, body: &str) -> io::Result<(u16, Vec<u8>)> {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    request(addr, req).await
}

/// Sends a request on a new connection and reads the whole response.
async fn request(addr: SocketAddr, req: String) -> io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let head = read_head(&mut s, &mut buf).await?;
    s.read_to_end(&mut buf).await?;
    let body = if head.chunked {
        let mut out = Vec::new();
        let mut d = Dechunker::default();
        d.feed(&buf, |b| out.extend_from_slice(b))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        out
    } else {
        buf
    };
    Ok((head.status, body))
}

/// Appends `data` as one HTTP chunk.
pub fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// In a chunk-size line: the size so far; whether an extension (`;...`) started.
    #[default]
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// After the last chunk: trailers, ignored.
    Done,
}

/// Decodes a chunked body as it arrives, whatever the read boundaries.
#[derive(Debug, Default)]
pub struct Dechunker {
    state: State,
    size: usize,
    digits: usize,
}

impl Dechunker {
    /// Feeds received bytes; hands every piece of body data to `out`. Returns whether the last
    /// chunk has been seen.
    pub fn feed(&mut self, mut input: &[u8], mut out: impl FnMut(&[u8])) -> Result<bool, String> {
        while let Some((&b, rest)) = input.split_first() {
            match self.state {
                State::Data => {
                    let n = self.size.min(input.len());
                    out(&input[..n]);
                    input = &input[n..];
                    self.size -= n;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let d = (b as char).to_digit(16).unwrap_or(0) as usize;
                        self.size = self
                            .size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(d))
                            .ok_or("chunk size overflows")?;
                        self.digits += 1;
                    }
                    b';' | b' ' | b'\t' => self.state = State::Ext,
                    b'\r' => self.state = State::SizeLf,
                    _ => return Err(format!("bad byte {b:#x} in a chunk size")),
                },
                State::Ext => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    }
                }
                State::SizeLf => {
                    if b != b'\n' || self.digits == 0 {
                        return Err("malformed chunk-size line".into());
                    }
                    self.digits = 0;
                    if self.size == 0 {
                        self.state = State::Done;
                        return Ok(true);
                    }
                    self.state = State::Data;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    self.state = State::Size;
                }
                State::Done => return Ok(true),
            }
            input = rest;
        }
        Ok(self.state == State::Done)
    }
}

/// A PutMedia request head (chunked body, ABSOLUTE timecodes, acknowledgements) for
/// `stream`, unsigned, its producer start timestamp now.
pub fn put_media_head(addr: SocketAddr, stream: &str) -> String {
    let start_ts = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    format!(
        "POST /putMedia HTTP/1.1\r\nhost: {addr}\r\nx-amzn-stream-name: {stream}\r\n\
         x-amzn-fragment-timecode-type: ABSOLUTE\r\n\
         x-amzn-producer-start-timestamp: {start_ts:.3}\r\n\
         x-amzn-fragment-acknowledgment-required: 1\r\ntransfer-encoding: chunked\r\n\
         connection: keep-alive\r\ncontent-type: application/json\r\n\r\n"
    )
}
