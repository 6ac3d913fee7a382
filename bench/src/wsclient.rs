//! A minimal WebSocket client for load generation.
//!
//! It parses server frames in place (no allocation per message), answers
//! pings, reassembles fragments, and can bind a chosen 127.0.0.x source so
//! one process can open more connections than one source address has ports.
//! It never validates what a full client would: it is a measuring device.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use anyhow::{bail, Context};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
const MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x8e];

/// One client connection after a successful upgrade.
#[derive(Debug)]
pub struct WsClient<S = TcpStream> {
    stream: S,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    fragments: Vec<u8>,
    pending_control: Vec<u8>,
    /// The close code the server sent, once it sent one.
    pub close_code: Option<u16>,
}

/// Connects to `server` from `source` (port chosen by the kernel) and
/// upgrades `path` (with its query).
pub async fn connect(
    server: SocketAddr,
    source: Option<Ipv4Addr>,
    path: &str,
) -> anyhow::Result<WsClient> {
    let socket = TcpSocket::new_v4()?;
    if let Some(source) = source {
        // Runs back to back would leave thousands of TIME_WAIT sockets on
        // each source address, whose ports bind() will not hand out again:
        // a load client's socket ends with a reset instead (linger 0), and
        // SO_REUSEADDR lets bind() take the ports that an earlier run (or
        // another tool) still holds in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.set_zero_linger()?;
        socket
            .bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))
            .with_context(|| format!("binding source {source}"))?;
    }
    let mut stream = socket.connect(server).await.context("tcp connect")?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut buffer = vec![0u8; 16 * 1024];
    let mut end = 0;
    let header_end = loop {
        if end == buffer.len() {
            bail!("upgrade response too long");
        }
        let read = stream.read(&mut buffer[end..]).await?;
        if read == 0 {
            bail!("closed during the upgrade");
        }
        end += read;
        if let Some(at) = memchr::memmem::find(&buffer[..end], b"\r\n\r\n") {
            break at + 4;
        }
    };
    if !buffer.starts_with(b"HTTP/1.1 101") {
        let head = String::from_utf8_lossy(&buffer[..header_end.min(200)]).into_owned();
        bail!("upgrade refused: {head}");
    }
    Ok(WsClient {
        stream,
        buffer,
        start: header_end,
        end,
        fragments: Vec::new(),
        pending_control: Vec::new(),
        close_code: None,
    })
}

/// A client frame (always masked, as RFC 6455 requires).
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    match payload.len() {
        len if len < 126 => frame.push(0x80 | len as u8),
        len if len <= 0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

impl WsClient {
    /// Splits into a reading client (pongs it queues are never sent) and the
    /// raw writing half, so one task can write while another reads.
    pub fn split(self) -> (WsClient<OwnedReadHalf>, OwnedWriteHalf) {
        let (read, write) = self.stream.into_split();
        let reader = WsClient {
            stream: read,
            buffer: self.buffer,
            start: self.start,
            end: self.end,
            fragments: self.fragments,
            pending_control: self.pending_control,
            close_code: self.close_code,
        };
        (reader, write)
    }
}

impl<S: AsyncRead + Unpin> WsClient<S> {
    /// Reads more bytes. Returns false at end of stream.
    pub async fn fill(&mut self) -> std::io::Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buffer.len() {
            if self.start > 0 {
                self.buffer.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let grown = self.buffer.len() * 2;
                self.buffer.resize(grown, 0);
            }
        }
        let read = self.stream.read(&mut self.buffer[self.end..]).await?;
        self.end += read;
        Ok(read > 0)
    }

    /// Calls `on_message` for every complete text or binary message buffered;
    /// queues pong replies for `flush_control`. Returns false once a close
    /// frame was seen.
    pub fn drain(&mut self, mut on_message: impl FnMut(&[u8])) -> bool {
        loop {
            let available = &self.buffer[self.start..self.end];
            if available.len() < 2 {
                return true;
            }
            let fin = available[0] & 0x80 != 0;
            let opcode = available[0] & 0x0F;
            let masked = available[1] & 0x80 != 0;
            let (mut header, length) = match available[1] & 0x7F {
                126 if available.len() >= 4 => {
                    (4, u16::from_be_bytes([available[2], available[3]]) as usize)
                }
                127 if available.len() >= 10 => {
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(&available[2..10]);
                    (10, u64::from_be_bytes(bytes) as usize)
                }
                126 | 127 => return true,
                length => (2, length as usize),
            };
            if masked {
                header += 4;
            }
            if available.len() < header + length {
                return true;
            }
            let payload_start = self.start + header;
            let payload = payload_start..payload_start + length;
            self.start += header + length;
            match opcode {
                OP_PING => {
                    let reply = client_frame(OP_PONG, &self.buffer[payload]);
                    self.pending_control.extend_from_slice(&reply);
                }
                OP_CLOSE => {
                    let body = &self.buffer[payload];
                    if body.len() >= 2 {
                        self.close_code = Some(u16::from_be_bytes([body[0], body[1]]));
                    }
                    return false;
                }
                OP_PONG => {}
                OP_CONTINUATION => {
                    self.fragments.extend_from_slice(&self.buffer[payload]);
                    if fin {
                        on_message(&self.fragments);
                        self.fragments.clear();
                    }
                }
                _ if !fin => {
                    self.fragments.clear();
                    self.fragments.extend_from_slice(&self.buffer[payload]);
                }
                _ => on_message(&self.buffer[payload]),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    /// Queues a text message to go out with the next `flush_control`.
    pub fn queue_text(&mut self, payload: &[u8]) {
        let frame = client_frame(OP_TEXT, payload);
        self.pending_control.extend_from_slice(&frame);
    }

    /// Writes queued pongs and texts.
    pub async fn flush_control(&mut self) -> std::io::Result<()> {
        if self.pending_control.is_empty() {
            return Ok(());
        }
        self.stream.write_all(&self.pending_control).await?;
        self.pending_control.clear();
        Ok(())
    }

    /// Sends one text message now.
    pub async fn send_text(&mut self, payload: &[u8]) -> std::io::Result<()> {
        self.queue_text(payload);
        self.flush_control().await
    }

    /// Reads until `done` accepts a message; errors at end of stream.
    pub async fn read_until(&mut self, mut done: impl FnMut(&[u8]) -> bool) -> anyhow::Result<()> {
        loop {
            let mut found = false;
            let open = self.drain(|message| found |= done(message));
            self.flush_control().await?;
            if found {
                return Ok(());
            }
            if !open {
                bail!("closed by the server (code {:?})", self.close_code);
            }
            if !self.fill().await? {
                bail!("connection ended");
            }
        }
    }
}
