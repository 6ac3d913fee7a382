//! Clients written by hand on a `TcpStream`, for what a conforming client
//! never sends: half a request, frames with reserved bits, unmasked frames,
//! bytes that are not UTF-8. Nothing here checks what it writes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::WAIT;

/// An HTTP response's status line and headers, and what followed them.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    /// Lowercased names.
    pub headers: Vec<(String, String)>,
    /// Bytes read after the head (a body, or the first WebSocket frames).
    pub rest: Vec<u8>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(found, _)| found == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A WebSocket upgrade request for `path_and_query`.
pub fn upgrade_request(addr: SocketAddr, path_and_query: &str) -> String {
    format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

/// Reads a response head from `stream`, failing the test after [`WAIT`].
pub async fn read_head(stream: &mut TcpStream) -> Head {
    let mut read = Vec::new();
    let mut buffer = [0u8; 4096];
    let end = loop {
        if let Some(end) = read.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("a response head in time")
            .expect("read");
        assert!(n > 0, "connection closed before a response head");
        read.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8_lossy(&read[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Head {
        status,
        headers,
        rest: read[end + 4..].to_vec(),
    }
}

/// How a connection the test stopped writing to ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// The server closed it (a FIN) after this long.
    Closed(Duration),
    /// The server reset it after this long: it dropped the connection with
    /// bytes of ours unread.
    Reset(Duration),
    /// Still open after the wait.
    Open,
}

impl Ending {
    /// Closed or reset, after this long.
    pub fn after(&self) -> Option<Duration> {
        match self {
            Self::Closed(after) | Self::Reset(after) => Some(*after),
            Self::Open => None,
        }
    }
}

/// Reads (and discards) until the server closes or resets the connection,
/// or `wait` passes.
pub async fn wait_for_close(stream: &mut TcpStream, wait: Duration) -> Ending {
    let start = tokio::time::Instant::now();
    let deadline = start + wait;
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return Ending::Open,
            Ok(Ok(0)) => return Ending::Closed(start.elapsed()),
            Ok(Err(_)) => return Ending::Reset(start.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// One frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The code of a Close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == OP_CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    /// A text frame's JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        (self.opcode == OP_TEXT)
            .then(|| serde_json::from_slice(&self.payload).ok())
            .flatten()
    }
}

pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;
/// FIN set.
pub const FIN: u8 = 0x80;
/// The first reserved bit (permessage-deflate's, when negotiated).
pub const RSV1: u8 = 0x40;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One frame: `first` is FIN, the reserved bits and the opcode; `masked`:
/// masked as a client must.
pub fn encode_frame(first: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => frame.push(mask_bit | len as u8),
        len @ 126..=0xffff => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if masked {
        frame.extend_from_slice(&MASK);
        frame.extend(
            payload
                .iter()
                .enumerate()
                .map(|(i, byte)| byte ^ MASK[i % 4]),
        );
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

/// A WebSocket after a real upgrade, read and written frame by frame.
#[derive(Debug)]
pub struct RawSocket {
    pub stream: TcpStream,
    read: Vec<u8>,
}

impl RawSocket {
    /// Upgrades at `path_and_query`, asserting 101.
    pub async fn connect(addr: SocketAddr, path_and_query: &str) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(upgrade_request(addr, path_and_query).as_bytes())
            .await
            .expect("write the upgrade request");
        let head = read_head(&mut stream).await;
        assert_eq!(head.status, 101, "upgrade refused: {head:?}");
        Self {
            stream,
            read: head.rest,
        }
    }

    /// Writes one frame (see [`encode_frame`]).
    pub async fn write_frame(&mut self, first: u8, masked: bool, payload: &[u8]) {
        self.write_raw(&encode_frame(first, masked, payload)).await;
    }

    /// Writes bytes as they are: frames encoded by [`encode_frame`], in one write.
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write frames");
    }

    /// A masked, final text frame of `text`.
    pub async fn send_text(&mut self, text: &str) {
        self.write_frame(FIN | OP_TEXT, true, text.as_bytes()).await;
    }

    /// The next frame, failing the test after [`WAIT`]; `None` when the
    /// connection ended first.
    pub async fn read_frame(&mut self) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            let mut buffer = [0u8; 8192];
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buffer))
                .await
                .unwrap_or_else(|_| panic!("no frame within {WAIT:?}"))
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.read.extend_from_slice(&buffer[..n]);
        }
    }

    /// Frames until a Close, which it returns (`None`: the connection ended
    /// without one), with the text frames before it.
    pub async fn read_until_close(&mut self) -> (Option<Frame>, Vec<serde_json::Value>) {
        let mut before = Vec::new();
        while let Some(frame) = self.read_frame().await {
            if frame.opcode == OP_CLOSE {
                return (Some(frame), before);
            }
            before.extend(frame.json());
        }
        (None, before)
    }

    /// Server frames are unmasked and, here, never longer than 64 KiB.
    fn parse(&mut self) -> Option<Frame> {
        let buf = &self.read;
        if buf.len() < 2 {
            return None;
        }
        let opcode = buf[0] & 0x0f;
        let (len, start) = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
            126 => return None,
            127 => panic!("a server frame over 64 KiB"),
            len => (usize::from(len), 2),
        };
        if buf.len() < start + len {
            return None;
        }
        let payload = buf[start..start + len].to_vec();
        self.read.drain(..start + len);
        Some(Frame { opcode, payload })
    }
}
