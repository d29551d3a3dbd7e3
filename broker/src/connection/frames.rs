//! The connection's frame reader: RFC 6455 client frames parsed straight from one
//! read buffer the broker owns, so that it knows what tungstenite could not tell
//! it: when an unfinished frame began (`frame_timeout`), how many bytes every
//! connection holds in frames not yet whole (`max_inbound`), and when a buffer can
//! be given back (an idle connection holds none).
//!
//! A text frame is unmasked in place and handed on as a `&str` into the buffer:
//! no copy, no allocation per message. Only a fragmented message is copied, into
//! a buffer of its own, as its fragments arrive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::activity::Traffic;

/// The first read buffer a connection gets, when it first has something to read.
const FIRST_READ: usize = 2 * 1024;
/// The most one read asks for: a client that keeps filling its buffer gets it
/// doubled up to this.
const MAX_READ: usize = 64 * 1024;
/// A buffer past this is given back as soon as it is empty, rather than at the
/// next idle check: one large frame does not pin its size for good.
const KEEP_BYTES: usize = MAX_READ;

/// Bytes held by every connection's read buffers, against `max_inbound`.
pub(crate) struct ReadBudget {
    used: AtomicUsize,
    max: usize,
}

impl ReadBudget {
    pub(crate) fn new(max: usize) -> ReadBudget {
        ReadBudget {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The budget.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Takes `n` bytes if they fit.
    fn try_take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(n).filter(|&total| total <= self.max)
            })
            .is_ok()
    }

    /// Takes `n` bytes, fitting or not (a read buffer's first, small allocation:
    /// refusing it would refuse the connection any read at all).
    fn take(&self, n: usize) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    fn give(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }
}

/// One whole thing a client sent.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Incoming<'a> {
    Text(&'a str),
    Binary,
    Ping(&'a [u8]),
    Pong,
    /// A Close, with its code and reason if it had one.
    Close(Option<(u16, &'a str)>),
}

/// Why reading stopped.
#[derive(Debug)]
pub(super) enum ReadError {
    /// RFC 6455 broken: close with 1002, saying which rule.
    Protocol(&'static str),
    /// A message over `max_payload`: close with 1009.
    TooLong {
        size: u64,
        max: usize,
    },
    /// A text message that is not UTF-8: close with 1007.
    Utf8,
    /// The bytes every connection holds in unfinished frames would pass
    /// `max_inbound`: close with 1013 (try again later).
    Busy {
        needed: usize,
        max: usize,
    },
    /// What was begun did not end within `frame_timeout`: close with 1008.
    Timeout,
    /// The client closed the TCP connection without a Close frame.
    Eof,
    Io(std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
}

/// One parsed frame: its opcode, FIN bit and where its (unmasked) payload is.
struct Frame {
    opcode: u8,
    fin: bool,
    start: usize,
    end: usize,
}

/// A whole thing found, by where it lies (so the loop that finds it holds no
/// borrow of the buffer).
enum Found {
    /// A control frame or an unfragmented message, in `buf`.
    Frame(Frame),
    /// A fragmented message, whole now in `message`.
    Message(Kind),
}

/// Reads one connection's frames. Every field is state kept between calls, so
/// [`FrameReader::next`] can be cancelled (by `select!`) at its one await, the
/// read, and resumed without losing a byte.
pub(super) struct FrameReader {
    buf: Vec<u8>,
    /// Where the unparsed bytes of `buf` start.
    at: usize,
    /// Bytes from `at` the frame being read needs in all, once its header is in.
    needed: usize,
    /// The fragments so far of a message sent in several frames.
    message: Vec<u8>,
    fragmented: Option<Kind>,
    /// `message` was handed out whole: emptied at the next call.
    message_out: bool,
    /// When the first byte of what is held (a partial frame or a fragmented
    /// message) arrived; `None` when nothing is.
    begun: Option<Instant>,
    /// When the last read returned: the arrival of every byte not yet parsed
    /// that came after a whole frame (one clock reading a read, not a message).
    last_read: Instant,
    /// How much the next read asks for.
    read_size: usize,
    max_payload: usize,
    /// How long what is begun may take to be whole.
    frame_timeout: Duration,
    /// The capacity of `buf` and `message` counted in `budget`.
    counted: usize,
    budget: Arc<ReadBudget>,
    /// Where every read's bytes are counted (`switchyard_bytes_received_total`).
    traffic: Arc<Traffic>,
}

impl FrameReader {
    /// A reader that starts with `leftover`: what followed the HTTP head in the
    /// upgrade's read (a client may send its first frame right behind it).
    pub(super) fn new(
        leftover: Vec<u8>,
        max_payload: usize,
        frame_timeout: Duration,
        budget: Arc<ReadBudget>,
        traffic: Arc<Traffic>,
    ) -> Self {
        let mut reader = FrameReader {
            begun: (!leftover.is_empty()).then(Instant::now),
            last_read: Instant::now(),
            buf: leftover,
            at: 0,
            needed: 0,
            message: Vec::new(),
            fragmented: None,
            message_out: false,
            read_size: FIRST_READ,
            max_payload,
            frame_timeout,
            counted: 0,
            budget,
            traffic,
        };
        reader.recount();
        reader
    }

    /// Moves the deadline of what is held by `time` during which the broker was
    /// not reading (writing to this client): a frame's sender is timed, not the
    /// broker.
    pub(super) fn excuse(&mut self, time: Duration) {
        if let Some(begun) = &mut self.begun {
            *begun += time;
        }
    }

    /// Bytes this reader holds in its buffers now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.counted
    }

    /// Gives back the buffers if nothing is held in them: what keeps an idle
    /// connection small. Called now and then (at each ping), not after every
    /// message, so a busy connection keeps its buffer.
    pub(super) fn release_if_idle(&mut self) {
        if self.begun.is_none() && self.at == self.buf.len() {
            self.buf = Vec::new();
            self.at = 0;
            self.message = Vec::new();
            self.message_out = false;
            self.read_size = FIRST_READ;
            self.recount();
        }
    }

    /// Whether a whole frame is in the buffer already, so that [`FrameReader::next`]
    /// has one without reading: the connection takes it before writing what the
    /// last one caused, and a read that brought many frames costs one write.
    /// The frame's header is only measured here; `next` checks it.
    pub(super) fn holds_frame(&self) -> bool {
        let held = &self.buf[self.at..];
        let [_, b1, ..] = *held else {
            return false;
        };
        let (len, len_bytes) = match b1 & 0x7f {
            126 => match held.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 2),
                None => return false,
            },
            127 => match held.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                Some(b) => (u64::from_be_bytes(b), 8),
                None => return false,
            },
            n => (u64::from(n), 0),
        };
        let header = 2 + len_bytes + 4;
        held.len() as u64 >= len.saturating_add(header)
    }

    /// The next message if it is a whole unfragmented text frame already in the
    /// buffer, taken without reading or waiting, so that a read's frames can be
    /// handled in one go; `None` for anything else (a fragment, a control frame, a
    /// frame not all here), which [`FrameReader::next`] then takes as usual.
    pub(super) fn next_buffered_text(&mut self) -> Option<Result<&str, ReadError>> {
        let first = *self.buf.get(self.at)?;
        // FIN set, no reserved bits, opcode text; and no message under way.
        if first != 0x81 || self.fragmented.is_some() || !self.holds_frame() {
            return None;
        }
        if std::mem::take(&mut self.message_out) {
            self.message.clear();
            if self.message.capacity() > KEEP_BYTES {
                self.message = Vec::new();
                self.recount();
            }
        }
        let frame = match self.parse() {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(e) => return Some(Err(e)),
        };
        match self.assemble(frame) {
            Ok(Some(Found::Frame(Frame { start, end, .. }))) => {
                Some(std::str::from_utf8(&self.buf[start..end]).map_err(|_| ReadError::Utf8))
            }
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// The next whole message or control frame, reading as needed.
    pub(super) async fn next<S: AsyncRead + Unpin>(
        &mut self,
        stream: &mut S,
    ) -> Result<Incoming<'_>, ReadError> {
        if std::mem::take(&mut self.message_out) {
            self.message.clear();
            if self.message.capacity() > KEEP_BYTES {
                self.message = Vec::new();
                self.recount();
            }
        }
        let found = loop {
            if let Some(frame) = self.parse()? {
                if let Some(found) = self.assemble(frame)? {
                    break found;
                }
                continue;
            }
            self.make_room()?;
            let read = stream.read_buf(&mut self.buf);
            let n = match self.begun {
                // What was begun must end in time; the read is polled first, so
                // bytes already here are taken, not timed out.
                Some(at) => tokio::time::timeout_at(at + self.frame_timeout, read)
                    .await
                    .map_err(|_| ReadError::Timeout)?,
                None => read.await,
            }
            .map_err(ReadError::Io)?;
            if n == 0 {
                return Err(ReadError::Eof);
            }
            self.traffic.received.fetch_add(n as u64, Ordering::Relaxed);
            self.last_read = Instant::now();
            self.begun.get_or_insert(self.last_read);
            if self.buf.len() == self.buf.capacity() && self.read_size < MAX_READ {
                self.read_size *= 2;
            }
        };
        match found {
            Found::Frame(Frame {
                opcode, start, end, ..
            }) => match opcode {
                0x1 => std::str::from_utf8(&self.buf[start..end])
                    .map(Incoming::Text)
                    .map_err(|_| ReadError::Utf8),
                0x2 => Ok(Incoming::Binary),
                _ => control(opcode, &self.buf[start..end]),
            },
            Found::Message(kind) => {
                self.message_out = true;
                match kind {
                    Kind::Text => std::str::from_utf8(&self.message)
                        .map(Incoming::Text)
                        .map_err(|_| ReadError::Utf8),
                    Kind::Binary => Ok(Incoming::Binary),
                }
            }
        }
    }

    /// The next frame in the buffer, if it is all there; the rules of RFC 6455 §5
    /// checked on its header before a byte of its payload is waited for.
    fn parse(&mut self) -> Result<Option<Frame>, ReadError> {
        let held = &self.buf[self.at..];
        let [b0, b1, ..] = *held else {
            return Ok(None);
        };
        if b0 & 0x70 != 0 {
            return Err(ReadError::Protocol("reserved bits are set"));
        }
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        if b1 & 0x80 == 0 {
            return Err(ReadError::Protocol("a client frame must be masked"));
        }
        let (len, len_bytes) = match b1 & 0x7f {
            126 => match held.get(2..4) {
                Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 2),
                None => return Ok(None),
            },
            127 => match held.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                Some(b) => (u64::from_be_bytes(b), 8),
                None => return Ok(None),
            },
            n => (u64::from(n), 0),
        };
        if len >> 63 != 0 {
            return Err(ReadError::Protocol("the length's top bit is set"));
        }
        self.check_opcode(opcode, fin, len)?;
        let header = 2 + len_bytes + 4;
        // Fits in usize: no more than max_payload (or 125), checked above.
        let total = header + len as usize;
        if held.len() < total {
            self.needed = total;
            return Ok(None);
        }
        self.needed = 0;
        let mask_at = self.at + 2 + len_bytes;
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&self.buf[mask_at..mask_at + 4]);
        let start = self.at + header;
        let end = self.at + total;
        unmask(&mut self.buf[start..end], mask);
        self.at = end;
        Ok(Some(Frame {
            opcode,
            fin,
            start,
            end,
        }))
    }

    fn check_opcode(&self, opcode: u8, fin: bool, len: u64) -> Result<(), ReadError> {
        match (opcode, self.fragmented) {
            (0x8..=0xa, _) if !fin => Err(ReadError::Protocol(
                "a control frame must not be fragmented",
            )),
            (0x8..=0xa, _) if len > 125 => {
                Err(ReadError::Protocol("a control frame is over 125 bytes"))
            }
            (0x8..=0xa, _) => Ok(()),
            (0x0, None) => Err(ReadError::Protocol(
                "a continuation frame with no message to continue",
            )),
            (0x1 | 0x2, Some(_)) => Err(ReadError::Protocol(
                "a new message before the fragmented one ended",
            )),
            (0x0..=0x2, _) => {
                let size = self.message.len() as u64 + len;
                if size > self.max_payload as u64 {
                    return Err(ReadError::TooLong {
                        size,
                        max: self.max_payload,
                    });
                }
                Ok(())
            }
            _ => Err(ReadError::Protocol("a reserved opcode")),
        }
    }

    /// What a parsed frame makes: a whole message or control frame, or (a
    /// fragment) nothing yet.
    fn assemble(&mut self, frame: Frame) -> Result<Option<Found>, ReadError> {
        if frame.opcode >= 0x8 {
            self.settle();
            return Ok(Some(Found::Frame(frame)));
        }
        if frame.opcode != 0x0 && frame.fin {
            self.settle();
            return Ok(Some(Found::Frame(frame)));
        }
        if frame.opcode != 0x0 {
            self.fragmented = Some(if frame.opcode == 0x1 {
                Kind::Text
            } else {
                Kind::Binary
            });
        }
        // A fragment's bytes are held until the message ends: they count in the
        // budget, and may be refused by it, as an unfinished frame's do.
        let needed = self.message.len() + (frame.end - frame.start);
        if needed > self.message.capacity() {
            let extra = needed - self.message.capacity();
            if !self.budget.try_take(extra) {
                return Err(ReadError::Busy {
                    needed: extra,
                    max: self.budget.max(),
                });
            }
            self.counted += extra;
            self.message.reserve_exact(needed - self.message.len());
        }
        self.message
            .extend_from_slice(&self.buf[frame.start..frame.end]);
        self.recount();
        if !frame.fin {
            return Ok(None);
        }
        let Some(kind) = self.fragmented.take() else {
            return Ok(None);
        };
        self.settle();
        Ok(Some(Found::Message(kind)))
    }

    /// After a whole thing: what is left, if anything, is timed from the read
    /// that brought it.
    /// A message sent in fragments keeps the time its first fragment came: a
    /// control frame between its fragments (a ping, a pong) does not buy it time.
    fn settle(&mut self) {
        if self.fragmented.is_some() {
            return;
        }
        self.begun = (self.at < self.buf.len()).then_some(self.last_read);
    }

    /// Makes room in `buf` for the next read: what was parsed is dropped, and the
    /// buffer grows towards the frame under way (its header says how long) as its
    /// bytes arrive, which `max_inbound` may refuse.
    fn make_room(&mut self) -> Result<(), ReadError> {
        if self.at == self.buf.len() {
            self.buf.clear();
            if self.buf.capacity() > KEEP_BYTES {
                self.buf = Vec::new();
                self.recount();
            }
        } else if self.at > 0 {
            self.buf.drain(..self.at);
        }
        self.at = 0;
        // Room for the next read, doubling towards what the frame under way needs:
        // the buffer grows with the bytes that arrive, not with what a header
        // promises, so stalled headers cannot take the budget.
        let next = self.buf.len() + self.read_size.max(self.buf.len());
        let wanted = if self.needed > 0 {
            self.needed.min(next).max(self.buf.len() + 1)
        } else {
            self.buf.len() + self.read_size
        };
        let capacity = self.buf.capacity();
        if wanted > capacity {
            let extra = wanted - capacity;
            // A first small buffer is always given: without it, no read at all.
            if wanted <= FIRST_READ {
                self.budget.take(extra);
            } else if !self.budget.try_take(extra) {
                return Err(ReadError::Busy {
                    needed: extra,
                    max: self.budget.max(),
                });
            }
            self.counted += extra;
            self.buf.reserve_exact(wanted - self.buf.len());
        }
        self.recount();
        Ok(())
    }

    /// Brings the budget's count of this reader's buffers up to date.
    fn recount(&mut self) {
        let now = self.buf.capacity() + self.message.capacity();
        if now > self.counted {
            self.budget.take(now - self.counted);
        } else {
            self.budget.give(self.counted - now);
        }
        self.counted = now;
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        self.budget.give(self.counted);
    }
}

/// A control frame's meaning; a Close's code and reason checked (RFC 6455 §7.4).
fn control(opcode: u8, payload: &[u8]) -> Result<Incoming<'_>, ReadError> {
    match opcode {
        0x9 => Ok(Incoming::Ping(payload)),
        0xa => Ok(Incoming::Pong),
        _ => match payload {
            [] => Ok(Incoming::Close(None)),
            [_] => Err(ReadError::Protocol("a close frame of one byte")),
            [hi, lo, reason @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                if !matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999) {
                    return Err(ReadError::Protocol("a close code that may not be sent"));
                }
                let reason = std::str::from_utf8(reason).map_err(|_| ReadError::Utf8)?;
                Ok(Incoming::Close(Some((code, reason))))
            }
        },
    }
}

/// XORs `payload` with the 4-byte `mask`, eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame, as a browser sends one.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![first];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&MASK);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        f
    }

    fn reader(max_payload: usize, budget: &Arc<ReadBudget>) -> FrameReader {
        FrameReader::new(
            Vec::new(),
            max_payload,
            Duration::from_secs(30),
            budget.clone(),
            Arc::default(),
        )
    }

    /// Every message in `bytes`, read back as the connection would.
    async fn read_all(bytes: Vec<u8>) -> Vec<Result<String, String>> {
        let budget = Arc::new(ReadBudget::new(usize::MAX));
        let mut r = reader(1 << 20, &budget);
        let mut input: &[u8] = &bytes;
        let mut out = Vec::new();
        loop {
            match r.next(&mut input).await {
                Ok(Incoming::Text(t)) => out.push(Ok(t.to_string())),
                Ok(other) => out.push(Ok(format!("{other:?}"))),
                Err(ReadError::Eof) => break,
                Err(e) => {
                    out.push(Err(format!("{e:?}")));
                    break;
                }
            }
        }
        out
    }

    fn ok(texts: &[&str]) -> Vec<Result<String, String>> {
        texts.iter().map(|t| Ok(t.to_string())).collect()
    }

    #[tokio::test]
    async fn every_byte_read_is_counted_in_the_traffic() {
        let budget = Arc::new(ReadBudget::new(usize::MAX));
        let traffic = Arc::new(Traffic::default());
        let mut r = FrameReader::new(
            Vec::new(),
            1 << 20,
            Duration::from_secs(30),
            budget,
            traffic.clone(),
        );
        let big = "y".repeat(10_000);
        let mut bytes = frame(0x81, b"{}");
        bytes.extend(frame(0x81, big.as_bytes()));
        let total = bytes.len() as u64;
        let mut input: &[u8] = &bytes;
        while !matches!(r.next(&mut input).await, Err(ReadError::Eof)) {}
        // 2 + 4 + 2 bytes, then 4 + 4 + 10,000: headers and masks count too.
        assert_eq!(total, 10_016);
        assert_eq!(traffic.received.load(Ordering::Relaxed), total);
    }

    /// `holds_frame` says a whole frame is buffered exactly when `next` would
    /// return one without reading, and not for a frame still arriving.
    #[tokio::test]
    async fn holds_frame_tells_a_whole_buffered_frame_from_one_still_arriving() {
        let budget = Arc::new(ReadBudget::new(usize::MAX));
        let mid = "x".repeat(300);
        let mut bytes = frame(0x81, b"{}");
        bytes.extend(frame(0x81, mid.as_bytes()));
        let arriving = frame(0x81, "z".repeat(1000).as_bytes());
        bytes.extend(&arriving[..20]);
        // Under the first read's size: one read takes it all.
        assert!(bytes.len() < FIRST_READ);
        let mut r = reader(1 << 20, &budget);
        assert!(!r.holds_frame(), "nothing read yet");
        let mut input: &[u8] = &bytes;
        let mut seen = Vec::new();
        loop {
            match r.next(&mut input).await {
                Ok(Incoming::Text(t)) => seen.push(t.len()),
                other => panic!("{other:?}"),
            }
            if !r.holds_frame() {
                break;
            }
        }
        assert_eq!(seen, [2, 300], "two whole frames, then one still arriving");
        assert!(input.is_empty(), "all of it was read");
    }

    #[tokio::test]
    async fn messages_of_every_length_encoding_read_back_unmasked() {
        let long = "y".repeat(70_000);
        let mid = "x".repeat(300);
        let mut bytes = frame(0x81, b"{}");
        bytes.extend(frame(0x81, mid.as_bytes()));
        bytes.extend(frame(0x81, long.as_bytes()));
        bytes.extend(frame(0x81, b""));
        assert_eq!(read_all(bytes).await, ok(&["{}", &mid, &long, ""]));
    }

    #[tokio::test]
    async fn a_fragmented_message_is_joined_and_control_frames_may_come_between() {
        let mut bytes = frame(0x01, b"{\"op\":");
        bytes.extend(frame(0x89, b"hi"));
        bytes.extend(frame(0x00, b"\"ping\""));
        bytes.extend(frame(0x80, b"}"));
        bytes.extend(frame(0x81, b"next"));
        assert_eq!(
            read_all(bytes).await,
            ok(&["Ping([104, 105])", "{\"op\":\"ping\"}", "next"])
        );
    }

    #[tokio::test]
    async fn close_frames_carry_their_code_and_reason() {
        let mut payload = 4000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        let mut bytes = frame(0x8a, b"");
        bytes.extend(frame(0x88, &payload));
        bytes.extend(frame(0x88, b""));
        assert_eq!(
            read_all(bytes).await,
            ok(&["Pong", "Close(Some((4000, \"bye\")))", "Close(None)"])
        );
    }

    #[tokio::test]
    async fn each_rfc_6455_rule_has_its_refusal() {
        let close = |code: u16| frame(0x88, &code.to_be_bytes());
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (frame(0xc1, b"{}"), "Protocol(\"reserved bits are set\")"),
            (frame(0x83, b"{}"), "Protocol(\"a reserved opcode\")"),
            (frame(0x8b, b""), "Protocol(\"a reserved opcode\")"),
            (
                vec![0x81, 0x02, b'{', b'}'],
                "Protocol(\"a client frame must be masked\")",
            ),
            (
                frame(0x09, b""),
                "Protocol(\"a control frame must not be fragmented\")",
            ),
            (
                frame(0x89, &[0; 126]),
                "Protocol(\"a control frame is over 125 bytes\")",
            ),
            (
                frame(0x80, b"x"),
                "Protocol(\"a continuation frame with no message to continue\")",
            ),
            (
                [frame(0x01, b"a"), frame(0x81, b"b")].concat(),
                "Protocol(\"a new message before the fragmented one ended\")",
            ),
            (
                close(1005),
                "Protocol(\"a close code that may not be sent\")",
            ),
            (
                close(999),
                "Protocol(\"a close code that may not be sent\")",
            ),
            (
                close(2000),
                "Protocol(\"a close code that may not be sent\")",
            ),
            (frame(0x88, &[3]), "Protocol(\"a close frame of one byte\")"),
            (frame(0x81, &[0xff, 0xfe]), "Utf8"),
            // Split inside a character: each fragment alone is not UTF-8, the
            // message is.
        ];
        for (bytes, want) in cases {
            assert_eq!(
                read_all(bytes.clone()).await,
                vec![Err(want.to_string())],
                "{bytes:?}"
            );
        }
        let snowman = "☃".as_bytes();
        let split = [frame(0x01, &snowman[..1]), frame(0x80, &snowman[1..])].concat();
        assert_eq!(read_all(split).await, ok(&["☃"]));
    }

    #[tokio::test]
    async fn a_message_over_max_payload_is_refused_from_its_header() {
        let budget = Arc::new(ReadBudget::new(usize::MAX));
        // Only the header (the payload is never waited for), and fragments that
        // count together.
        let header = frame(0x81, &[b'x'; 101])[..8].to_vec();
        let fragments = [frame(0x01, &[b'x'; 60]), frame(0x80, &[b'x'; 41])].concat();
        for bytes in [header, fragments] {
            let mut r = reader(100, &budget);
            let mut input: &[u8] = &bytes;
            let e = r.next(&mut input).await.unwrap_err();
            let too_long = matches!(
                e,
                ReadError::TooLong {
                    size: 101,
                    max: 100
                }
            );
            assert!(too_long, "{e:?}");
        }
    }

    #[tokio::test]
    async fn a_frame_arriving_in_pieces_is_read_whole_and_timed_from_its_first_byte() {
        let budget = Arc::new(ReadBudget::new(usize::MAX));
        let mut r = reader(1 << 20, &budget);
        let bytes = frame(0x81, "z".repeat(5000).as_bytes());
        let (mut near, mut far) = tokio::io::duplex(64);
        assert!(r.begun.is_none());
        let writer = tokio::spawn(async move {
            for piece in bytes.chunks(700) {
                tokio::io::AsyncWriteExt::write_all(&mut near, piece)
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
            }
            near
        });
        match r.next(&mut far).await {
            Ok(Incoming::Text(t)) => assert_eq!(t.len(), 5000),
            other => panic!("{other:?}"),
        }
        assert!(r.begun.is_none(), "nothing is held after a whole frame");
        drop(writer.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_not_whole_in_time_is_a_timeout() {
        let budget = Arc::new(ReadBudget::new(usize::MAX));
        let mut r = FrameReader::new(
            Vec::new(),
            1 << 20,
            Duration::from_secs(3),
            budget,
            Arc::default(),
        );
        let (mut near, mut far) = tokio::io::duplex(1024);
        tokio::io::AsyncWriteExt::write_all(&mut near, &frame(0x81, b"hello")[..5])
            .await
            .unwrap();
        let started = Instant::now();
        let e = r.next(&mut far).await.unwrap_err();
        assert!(matches!(e, ReadError::Timeout), "{e:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        drop(near);
    }

    #[tokio::test]
    async fn buffers_are_counted_in_the_budget_and_given_back() {
        let budget = Arc::new(ReadBudget::new(10_000));
        let mut r = reader(1 << 20, &budget);
        let mut input: &[u8] = &frame(0x81, b"{}");
        assert!(matches!(r.next(&mut input).await, Ok(Incoming::Text("{}"))));
        assert_eq!(budget.used(), r.held());
        assert_eq!(r.held(), FIRST_READ);
        r.release_if_idle();
        assert_eq!((budget.used(), r.held()), (0, 0));

        // A frame that needs more than the budget has left: refused, not read.
        let big = frame(0x81, &[b'x'; 20_000]);
        let mut input: &[u8] = &big;
        let e = r.next(&mut input).await.unwrap_err();
        assert!(matches!(e, ReadError::Busy { max: 10_000, .. }), "{e:?}");
        drop(r);
        assert_eq!(budget.used(), 0);
    }

    #[tokio::test]
    async fn fragments_held_count_in_the_budget() {
        let budget = Arc::new(ReadBudget::new(30_000));
        let mut r = reader(1 << 20, &budget);
        let mut bytes = frame(0x01, &[b'x'; 1000]);
        for _ in 0..40 {
            bytes.extend(frame(0x00, &[b'x'; 1000]));
        }
        let mut input: &[u8] = &bytes;
        let e = r.next(&mut input).await.unwrap_err();
        assert!(matches!(e, ReadError::Busy { max: 30_000, .. }), "{e:?}");
        assert!(budget.used() <= 30_000, "{}", budget.used());
        assert_eq!(budget.used(), r.held());
    }

    #[tokio::test]
    async fn a_stalled_header_holds_only_what_arrived() {
        let budget = Arc::new(ReadBudget::new(usize::MAX));
        let mut r = reader(1 << 20, &budget);
        // A header promising 1 MB, and 10 bytes of it.
        let header = &frame(0x81, &vec![b'x'; 1 << 20])[..24];
        let mut input: &[u8] = header;
        assert!(matches!(r.next(&mut input).await, Err(ReadError::Eof)));
        assert!(r.held() <= 2 * FIRST_READ, "{}", r.held());
    }

    #[tokio::test(start_paused = true)]
    async fn control_frames_between_fragments_do_not_restart_the_clock() {
        let budget = Arc::new(ReadBudget::new(usize::MAX));
        let mut r = FrameReader::new(
            Vec::new(),
            1 << 20,
            Duration::from_secs(3),
            budget,
            Arc::default(),
        );
        let (mut near, mut far) = tokio::io::duplex(1024);
        let started = Instant::now();
        let pongs = tokio::spawn(async move {
            tokio::io::AsyncWriteExt::write_all(&mut near, &frame(0x01, b"{\"op\":"))
                .await
                .unwrap();
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if tokio::io::AsyncWriteExt::write_all(&mut near, &frame(0x8a, b""))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            near
        });
        loop {
            match r.next(&mut far).await {
                Ok(Incoming::Pong) => continue,
                Err(ReadError::Timeout) => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        drop(pongs);
    }

    #[tokio::test]
    async fn a_large_buffer_is_given_back_once_drained() {
        let budget = Arc::new(ReadBudget::new(usize::MAX));
        let mut r = reader(1 << 20, &budget);
        let bytes = [frame(0x81, &[b'x'; 200_000]), frame(0x81, b"{}")].concat();
        let mut input: &[u8] = &bytes;
        assert!(matches!(r.next(&mut input).await, Ok(Incoming::Text(t)) if t.len() == 200_000));
        assert!(r.held() > 200_000);
        assert!(matches!(r.next(&mut input).await, Ok(Incoming::Text("{}"))));
        // The next read finds an empty buffer past KEEP_BYTES: back to a small one.
        assert!(matches!(r.next(&mut input).await, Err(ReadError::Eof)));
        assert!(r.held() <= MAX_READ, "{}", r.held());
        assert_eq!(budget.used(), r.held());
    }

    #[tokio::test]
    async fn bytes_after_the_http_head_are_read_first() {
        let budget = Arc::new(ReadBudget::new(usize::MAX));
        let bytes = [frame(0x81, b"first"), frame(0x81, b"second")].concat();
        let (head, rest) = bytes.split_at(9);
        let mut r = FrameReader::new(
            head.to_vec(),
            1 << 20,
            Duration::from_secs(30),
            budget,
            Arc::default(),
        );
        let mut input: &[u8] = rest;
        assert!(matches!(
            r.next(&mut input).await,
            Ok(Incoming::Text("first"))
        ));
        assert!(matches!(
            r.next(&mut input).await,
            Ok(Incoming::Text("second"))
        ));
    }

    #[test]
    fn unmasking_matches_the_byte_by_byte_rule() {
        for len in [0, 1, 3, 7, 8, 9, 15, 16, 17, 100] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let mut masked: Vec<u8> = plain
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ MASK[i % 4])
                .collect();
            unmask(&mut masked, MASK);
            assert_eq!(masked, plain, "{len}");
        }
    }
}
