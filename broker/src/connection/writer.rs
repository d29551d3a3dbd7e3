//! The connection's frame writer: the outbound buffer's waiting text sent as RFC 6455
//! text frames of up to [`PACK_BYTES`], split at line ends, straight from the buffer
//! to the socket (no copy, no allocation), and the broker's control frames (ping,
//! pong, close).

use std::io::IoSlice;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::outbound::{Batch, Outbound};
use crate::session::Session;

/// Largest frame the writer builds by packing waiting frames together.
pub(super) const PACK_BYTES: usize = 64 * 1024;

/// Writes the outbound buffer to the socket. It takes all that is waiting as one
/// batch and sends it as text frames of up to [`PACK_BYTES`], split at line ends,
/// straight from the batch: no copy, no allocation. Its progress is kept here, not
/// in the future, so a write cut short by `select!` resumes where it stopped and a
/// frame is never left half-sent.
#[derive(Default)]
pub(super) struct Writer {
    batch: Batch,
    /// Where the next frame starts in the batch.
    next: usize,
    /// The frame being sent, if one is.
    frame: Option<Frame>,
    /// Bytes written since they were last counted in the broker's traffic.
    sent: u64,
}

/// One text frame being sent: its header, its payload's span in the batch, and how
/// many bytes of the two have gone out.
struct Frame {
    header: [u8; 10],
    header_len: usize,
    start: usize,
    end: usize,
    sent: usize,
}

impl Writer {
    pub(super) async fn write<S>(&mut self, out: &mut S, session: &Session) -> std::io::Result<()>
    where
        S: AsyncWrite + Unpin,
    {
        if self.batch.is_empty() {
            session.outbound.take(&mut self.batch);
            if self.batch.is_empty() {
                return Ok(());
            }
            self.next = 0;
        }
        loop {
            if self.frame.is_none() {
                if self.next >= self.batch.text.len() {
                    break;
                }
                self.frame = Some(frame_at(&self.batch.text, self.next));
            }
            let (start, end) = self.send_frame(out, Some(&session.outbound)).await?;
            if end < self.batch.text.len() {
                let released = session
                    .outbound
                    .wrote_frame(&self.batch.text.as_bytes()[start..end]);
                self.batch.note_released(released);
            }
        }
        session.outbound.written(&self.batch);
        session.count_sent(std::mem::take(&mut self.sent));
        self.batch.clear();
        // A TLS stream may still hold the last records.
        out.flush().await
    }

    /// Sends the rest of the frame under way, if there is one.
    pub(super) async fn finish_frame<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
    ) -> std::io::Result<()> {
        self.send_frame(out, None).await.map(drop)
    }

    /// Sends the rest of the frame under way (if there is one), telling
    /// `outbound` of each write's progress; the span of its payload in the batch.
    async fn send_frame<W: AsyncWrite + Unpin>(
        &mut self,
        out: &mut W,
        outbound: Option<&Outbound>,
    ) -> std::io::Result<(usize, usize)> {
        let Some(f) = &mut self.frame else {
            return Ok((self.next, self.next));
        };
        let payload = &self.batch.text.as_bytes()[f.start..f.end];
        while f.sent < f.header_len + payload.len() {
            let n = if f.sent < f.header_len {
                let parts = [
                    IoSlice::new(&f.header[f.sent..f.header_len]),
                    IoSlice::new(payload),
                ];
                out.write_vectored(&parts).await?
            } else {
                out.write(&payload[f.sent - f.header_len..]).await?
            };
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            f.sent += n;
            self.sent += n as u64;
            if let Some(outbound) = outbound {
                outbound.moved(n);
            }
        }
        let span = (f.start, f.end);
        self.next = f.end + 1;
        self.frame = None;
        Ok(span)
    }
}

/// Writes one control frame (`opcode` 0x8 close, 0x9 ping, 0xa pong) with a
/// payload of at most 125 bytes, longer ones cut there.
pub(super) async fn control<W: AsyncWrite + Unpin>(
    out: &mut W,
    opcode: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let payload = &payload[..payload.len().min(125)];
    let mut frame = Vec::with_capacity(2 + payload.len());
    frame.push(0x80 | opcode);
    frame.push(payload.len() as u8);
    frame.extend_from_slice(payload);
    out.write_all(&frame).await?;
    out.flush().await
}

/// Writes `text` as one text frame (a last word before a Close).
pub(super) async fn text<W: AsyncWrite + Unpin>(out: &mut W, text: &str) -> std::io::Result<()> {
    let f = frame_at(text, 0);
    out.write_all(&f.header[..f.header_len]).await?;
    out.write_all(&text.as_bytes()[..f.end]).await?;
    out.flush().await
}

/// A Close frame's payload: the code, then as much of `reason` as fits in 123
/// bytes, cut at a character boundary.
pub(super) fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    payload
}

/// The text frame that starts at `start` in `text`: lines up to [`PACK_BYTES`] in
/// all (or one longer line on its own), with its RFC 6455 header (FIN, text, the
/// length; a server's frames are not masked).
fn frame_at(text: &str, start: usize) -> Frame {
    let rest = &text.as_bytes()[start..];
    let len = if rest.len() <= PACK_BYTES {
        rest.len()
    } else {
        memchr::memrchr(b'\n', &rest[..=PACK_BYTES])
            .or_else(|| memchr::memchr(b'\n', rest))
            .unwrap_or(rest.len())
    };
    let mut header = [0u8; 10];
    header[0] = 0x81;
    let header_len = if len < 126 {
        header[1] = len as u8;
        2
    } else if len <= usize::from(u16::MAX) {
        header[1] = 126;
        header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        header[1] = 127;
        header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    Frame {
        header,
        header_len,
        start,
        end: start + len,
        sent: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(sizes: &[usize]) -> String {
        let lines: Vec<String> = sizes.iter().map(|&n| "x".repeat(n)).collect();
        lines.join("\n")
    }

    /// Every frame a text is sent as: (payload length, header length).
    fn frames(text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let f = frame_at(text, at);
            out.push((f.end - f.start, f.header_len));
            at = f.end + 1;
        }
        out
    }

    #[test]
    fn frames_pack_whole_lines_up_to_the_limit() {
        // Fits: one frame.
        assert_eq!(frames(&lines(&[10, 20])), vec![(31, 2)]);
        // Split at the last line end that fits.
        let half = PACK_BYTES / 2;
        assert_eq!(
            frames(&lines(&[half, half, 5])),
            vec![(half, 4), (half + 1 + 5, 4)]
        );
        // A line longer than the limit goes alone.
        assert_eq!(
            frames(&lines(&[PACK_BYTES + 10, 3])),
            vec![(PACK_BYTES + 10, 10), (3, 2)]
        );
    }

    #[test]
    fn headers_follow_rfc_6455_lengths() {
        for (len, header) in [
            (0, vec![0x81, 0]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
            (65_535, vec![0x81, 126, 0xff, 0xff]),
            (65_536, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let text = "x".repeat(len);
            let f = frame_at(&text, 0);
            assert_eq!(&f.header[..f.header_len], &header[..], "{len}");
            assert_eq!(f.end, len);
        }
    }

    #[tokio::test]
    async fn a_written_batch_is_counted_in_the_traffic() {
        use std::sync::atomic::Ordering;
        let activity = std::sync::Arc::new(crate::activity::Activity::new(1 << 30));
        let session = Session::new(1, "127.0.0.1:1".parse().unwrap(), 1 << 20, activity.clone());
        session.send_text("x".repeat(200));
        session.send_text("z".repeat(100));
        let (mut near, mut far) = tokio::io::duplex(1 << 16);
        let mut writer = Writer::default();
        writer.write(&mut near, &session).await.unwrap();
        drop(near);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut far, &mut got)
            .await
            .unwrap();
        // One frame: a 4-byte header, 200 + newline + 100.
        assert_eq!(got.len(), 305);
        assert_eq!(activity.traffic.sent.load(Ordering::Relaxed), 305);
    }

    #[tokio::test]
    async fn a_write_cut_short_resumes_where_it_stopped() {
        let mut writer = Writer::default();
        writer.batch.text = lines(&[300, 400]);
        writer.frame = Some(frame_at(&writer.batch.text, 0));
        // A socket that takes 7 bytes per write: the frame goes out in pieces.
        let (mut near, mut far) = tokio::io::duplex(7);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut far, &mut got)
                .await
                .unwrap();
            got
        });
        // Poll the write once and drop it, again and again, until the frame is out.
        let mut cuts = 0;
        while writer.frame.is_some() {
            if futures_util::FutureExt::now_or_never(writer.finish_frame(&mut near)).is_none() {
                cuts += 1;
            }
            tokio::task::yield_now().await;
        }
        assert!(
            cuts >= 100,
            "the 7-byte pipe cut the write short {cuts} times"
        );
        drop(near);
        let got = reader.await.unwrap();
        // 300 + newline + 400 bytes: one frame of 701.
        let mut want = vec![0x81, 126, 2, 189];
        want.extend_from_slice(writer.batch.text.as_bytes());
        assert_eq!(got, want);
        assert_eq!(writer.next, 702);
    }
}
