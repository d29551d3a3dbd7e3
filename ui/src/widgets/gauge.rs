//! A gauge that fits in a table cell: how full a client's outbound buffer is.
//!
//! ratatui's `Gauge` is a widget of its own area; table cells hold text, so the bar
//! is drawn with block characters, an eighth of a cell at a time.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::tables::clients::buffer_fill;

const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/// A bar `width` cells wide, filled to `fraction` (clamped to 0..=1).
pub fn bar(fraction: f64, width: usize) -> String {
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let eighths = (fraction * width as f64 * 8.0).round() as usize;
    let (full, part) = (eighths / 8, eighths % 8);
    let mut s = "█".repeat(full);
    if part > 0 && full < width {
        s.push(EIGHTHS[part]);
    }
    let used = full + usize::from(part > 0 && full < width);
    s.extend(std::iter::repeat_n('░', width.saturating_sub(used)));
    s
}

/// A buffer gauge for a cell `width` wide: bar, percentage and, for a slow client,
/// the word `slow`, coloured green, yellow or red by how close it is to a kick.
pub fn buffer(pending_bytes: u64, limit: u64, slow: bool, width: usize) -> Line<'static> {
    let fraction = buffer_fill(pending_bytes, limit);
    let percent = format!(" {:>3.0}%", fraction.clamp(0.0, 9.99) * 100.0);
    let tag = if slow { " slow" } else { "" };
    let bar_width = width.saturating_sub(percent.len() + tag.len()).min(12);
    let style = if slow || fraction >= 0.8 {
        Style::new().red()
    } else if fraction >= 0.5 {
        Style::new().yellow()
    } else {
        Style::new().green()
    };
    Line::from(vec![
        Span::styled(bar(fraction, bar_width), style),
        Span::raw(percent),
        Span::styled(tag, Style::new().red().bold()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_by_eighths() {
        assert_eq!(bar(0.0, 4), "░░░░");
        assert_eq!(bar(1.0, 4), "████");
        assert_eq!(bar(0.5, 4), "██░░");
        assert_eq!(bar(0.53, 4), "██▏░");
        assert_eq!(bar(7.0, 3), "███");
        assert_eq!(bar(f64::NAN, 2), "░░");
    }

    #[test]
    fn slow_buffers_say_so() {
        let line = buffer(734_003, 1 << 20, true, 22);
        assert_eq!(line.to_string(), "████████▍░░░  70% slow");
    }
}
