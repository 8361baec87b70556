//! The progress bar mkfs and fsck draw on a terminal: one line, redrawn in place
//! (`\r`) only when its percentage changes.

use std::io::Write;

/// Width of the bar between its `|` marks.
const WIDTH: u64 = 50;

/// A bar labelled `label` on `out`, which must be a terminal.
pub struct Bar {
    label: String,
    /// The percentage and note drawn last; `None` when nothing is on the line.
    drawn: Option<(u64, String)>,
}

impl Bar {
    pub fn new(label: &str) -> Self {
        Self {
            label: label.to_string(),
            drawn: None,
        }
    }

    /// Draws `cur` of `max` units done, followed by `note` (e.g. " (pass 2)").
    pub fn update(&mut self, out: &mut dyn Write, cur: u64, max: u64, note: &str) {
        let pct = cur
            .saturating_mul(100)
            .checked_div(max)
            .unwrap_or(100)
            .min(100);
        if self
            .drawn
            .as_ref()
            .is_some_and(|(p, n)| *p == pct && n == note)
        {
            return;
        }
        let filled = (pct * WIDTH / 100) as usize;
        let _ = write!(
            out,
            "\r{}: |{}{}| {pct:3}%{note}",
            self.label,
            "=".repeat(filled),
            " ".repeat(WIDTH as usize - filled)
        );
        let _ = out.flush();
        self.drawn = Some((pct, note.to_string()));
    }

    /// Erases the bar, if one is drawn, before other output.
    pub fn clear(&mut self, out: &mut dyn Write) {
        if let Some((_, note)) = self.drawn.take() {
            let len = self.label.len() + WIDTH as usize + 10 + note.len();
            let _ = write!(out, "\r{}\r", " ".repeat(len));
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_once_per_percent_and_clears() {
        let mut out = Vec::new();
        let mut bar = Bar::new("dev");
        for cur in 0..=1000 {
            bar.update(&mut out, cur, 1000, "");
        }
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(text.matches('\r').count(), 101);
        assert!(text.ends_with(&format!("\rdev: |{}| 100%", "=".repeat(50))));
        out.clear();
        bar.clear(&mut out);
        let cleared = String::from_utf8(out.clone()).unwrap();
        assert!(cleared.starts_with('\r') && cleared.ends_with('\r'));
        assert!(cleared.trim_matches('\r').chars().all(|c| c == ' '));
        out.clear();
        bar.clear(&mut out);
        assert!(out.is_empty(), "nothing to clear twice");
    }

    #[test]
    fn nothing_to_do_is_done() {
        let mut out = Vec::new();
        Bar::new("x").update(&mut out, 0, 0, " (pass 1)");
        assert!(String::from_utf8(out).unwrap().ends_with("100% (pass 1)"));
    }
}
