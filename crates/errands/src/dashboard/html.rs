//! Writing HTML: escaping every text that did not come from this module, the page around
//! each view, and the small pieces the views share.

use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// A text escaped for HTML text and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page: the navigation, `title` and `body` (already HTML). `base` is where the dashboard
/// is mounted, so that every link inside is relative to it.
pub(super) fn page(base: &str, title: &str, body: &str) -> String {
    let mut html = String::with_capacity(body.len() + 1024);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <base href=\"{base}/\"><title>{title} · errands</title>\
         <link rel=\"stylesheet\" href=\"assets/dashboard.css\"></head><body>\
         <header><a class=\"brand\" href=\"./\">errands</a><nav>\
         <a href=\"./\">Overview</a><a href=\"tasks\">Tasks</a><a href=\"errors\">Errors</a>\
         </nav><span id=\"live\" class=\"live\"></span>\
         <button id=\"pause\" type=\"button\" aria-pressed=\"false\">Pause</button></header>\
         <main><h1>{title}</h1>{body}</main>\
         <script src=\"assets/dashboard.js\"></script></body></html>",
        base = escape(base),
        title = escape(title),
    );
    html
}

/// A time as RFC 3339 in UTC, with milliseconds.
pub(super) fn time(at: SystemTime) -> String {
    crate::rfc3339::format(at).to_string()
}

/// An optional time, or a dash.
pub(super) fn maybe_time(at: Option<SystemTime>) -> String {
    at.map_or_else(|| "–".to_owned(), time)
}

/// A duration, short: `850 µs`, `12.3 ms`, `4.2 s`, `3 min 20 s`.
pub(super) fn duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        format!("{:.1} ms", micros as f64 / 1_000.0)
    } else if d.as_secs() < 60 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// How `later` relates to `earlier`: `3.1 ms after`, or `1.2 s before`.
pub(super) fn relative(later: SystemTime, earlier: SystemTime) -> String {
    match later.duration_since(earlier) {
        Ok(after) => format!("{} after", duration(after)),
        Err(before) => format!("{} before", duration(before.duration())),
    }
}

/// A state as a badge.
pub(super) fn badge(state: &str) -> String {
    format!("<span class=\"badge {0}\">{0}</span>", escape(state))
}

/// Fields as `key=value` pairs (their JSON), escaped.
pub(super) fn fields(fields: &serde_json::Value) -> String {
    let Some(object) = fields.as_object() else {
        return String::new();
    };
    let mut out = String::new();
    for (key, value) in object {
        let _ = write!(
            out,
            "<code class=\"field\">{}={}</code> ",
            escape(key),
            escape(&value.to_string())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(Duration::from_micros(850)), "850 µs");
        assert_eq!(duration(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(duration(Duration::from_secs(200)), "3 min 20 s");
    }
}
