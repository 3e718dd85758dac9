//! A drill's report as the reference prints it (fault, where, what showed it, detection and
//! recovery times), as text, JSON, and a self-contained HTML page with a timeline.

use std::fmt::Write as _;

use super::{Report, StepResult};

fn secs(ms: Option<u64>) -> String {
    ms.map_or("-".into(), |ms| format!("{:.2} s", ms as f64 / 1000.0))
}

fn with_target(ms: Option<u64>, target: Option<u64>) -> String {
    match target {
        Some(t) => format!("{} (<= {})", secs(ms), trim_secs(t)),
        None => secs(ms),
    }
}

fn trim_secs(ms: u64) -> String {
    let s = format!("{:.2}", ms as f64 / 1000.0);
    format!("{} s", s.trim_end_matches('0').trim_end_matches('.'))
}

fn pct(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{:.0}%", r * 100.0))
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0} ms"))
}

fn columns(s: &StepResult) -> [String; 8] {
    [
        s.name.clone(),
        s.fault.clone(),
        s.detect_by.clone(),
        with_target(s.detect_ms, s.detect_within_ms),
        with_target(s.recover_ms, s.recover_within_ms),
        pct(s.error_rate),
        ms(s.p95_ms),
        s.verdict.clone(),
    ]
}

const HEADERS: [&str; 8] = [
    "step", "fault", "shown by", "detect", "recover", "errors", "p95", "verdict",
];

/// The table, one line per step, then what was cleaned up and the outcome.
pub fn render_text(r: &Report) -> String {
    let rows: Vec<[String; 8]> = r.steps.iter().map(columns).collect();
    let mut width = HEADERS.map(|h| h.chars().count());
    for row in &rows {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = format!("drill: {} (started {})\n\n", r.scenario, r.started);
    let line = |cells: &[String]| -> String {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(&HEADERS.map(String::from)));
    for row in &rows {
        out.push_str(&line(row));
    }
    out.push('\n');
    if let Some(why) = &r.interrupted {
        let _ = writeln!(out, "interrupted: {why}");
    }
    for c in &r.cleaned_up {
        let _ = writeln!(out, "removed at the end: {c}");
    }
    for c in &r.cleanup_failed {
        let _ = writeln!(out, "NOT removed (it expires by its ttl): {c}");
    }
    let met = r.steps.iter().filter(|s| s.passed).count();
    let _ = writeln!(
        out,
        "{met} of {} step(s) met their targets{}",
        r.steps.len(),
        if r.passed { "." } else { "; the drill FAILED." }
    );
    out
}

/// The report as pretty JSON.
pub fn render_json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default() + "\n"
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page with no external assets: the table and a timeline (inline SVG) per step: the
/// fault as a bar, detection and recovery as marks on it.
pub fn render_html(r: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>drill: {}</title>\n<style>\
body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}th{{background:#f4f4f4}}\
.ok{{color:#070}}.missed{{color:#b00;font-weight:bold}}svg text{{font:12px system-ui,sans-serif}}\
</style></head><body>\n<h1>Drill: {}</h1>\n<p>Started {}. {}</p>\n<table>\n<tr>",
        esc(&r.scenario),
        esc(&r.scenario),
        esc(&r.started),
        if r.passed {
            "<span class=\"ok\">Every step met its targets.</span>".to_string()
        } else {
            "<span class=\"missed\">A target was missed.</span>".to_string()
        }
    );
    for head in HEADERS {
        let _ = write!(h, "<th>{head}</th>");
    }
    h.push_str("</tr>\n");
    for s in &r.steps {
        h.push_str("<tr>");
        let cols = columns(s);
        for (i, c) in cols.iter().enumerate() {
            let class = if i == 7 {
                if s.passed {
                    " class=\"ok\""
                } else {
                    " class=\"missed\""
                }
            } else {
                ""
            };
            let _ = write!(h, "<td{class}>{}</td>", esc(c));
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n<h2>Timeline</h2>\n");
    h.push_str(&timeline(r));
    if let Some(why) = &r.interrupted {
        let _ = writeln!(h, "<p class=\"missed\">Interrupted: {}</p>", esc(why));
    }
    for c in &r.cleaned_up {
        let _ = writeln!(h, "<p>Removed at the end: {}</p>", esc(c));
    }
    for c in &r.cleanup_failed {
        let _ = writeln!(
            h,
            "<p class=\"missed\">Not removed (expires by its ttl): {}</p>",
            esc(c)
        );
    }
    h.push_str("</body></html>\n");
    h
}

fn timeline(r: &Report) -> String {
    let end_ms = r
        .steps
        .iter()
        .map(|s| s.fault_at_ms + s.fault_ms + s.recover_ms.unwrap_or(0))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let (left, width, row) = (220.0, 640.0, 34.0);
    let x = |ms: f64| left + ms / end_ms * width;
    let height = 30.0 + row * r.steps.len() as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" role=\"img\">\n",
        left + width + 20.0
    );
    for (i, s) in r.steps.iter().enumerate() {
        let y = 10.0 + row * i as f64;
        let (start, stop) = (s.fault_at_ms as f64, (s.fault_at_ms + s.fault_ms) as f64);
        let _ = writeln!(
            svg,
            "<text x=\"0\" y=\"{}\">{}</text>",
            y + 15.0,
            esc(&s.name.chars().take(30).collect::<String>())
        );
        let _ = writeln!(
            svg,
            "<rect x=\"{:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"20\" fill=\"#f5c6c6\"><title>fault: {}</title></rect>",
            x(start),
            (x(stop) - x(start)).max(1.0),
            esc(&s.fault)
        );
        if let Some(d) = s.detect_ms {
            let at = x(start + d as f64);
            let _ = writeln!(
                svg,
                "<line x1=\"{at:.1}\" x2=\"{at:.1}\" y1=\"{y}\" y2=\"{}\" stroke=\"#b00\" stroke-width=\"3\"><title>detected after {}</title></line>",
                y + 20.0,
                secs(Some(d))
            );
        }
        if let Some(rc) = s.recover_ms {
            let at = x(stop + rc as f64);
            let _ = writeln!(
                svg,
                "<rect x=\"{:.1}\" y=\"{}\" width=\"{:.1}\" height=\"10\" fill=\"#c6e5c6\"/><line x1=\"{at:.1}\" x2=\"{at:.1}\" y1=\"{y}\" y2=\"{}\" stroke=\"#070\" stroke-width=\"3\"><title>recovered {} after the fault</title></line>",
                x(stop),
                y + 5.0,
                (at - x(stop)).max(1.0),
                y + 20.0,
                secs(Some(rc))
            );
        }
    }
    let axis = 10.0 + row * r.steps.len() as f64;
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" x2=\"{}\" y1=\"{axis}\" y2=\"{axis}\" stroke=\"#888\"/><text x=\"{left}\" y=\"{}\">0 s</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        left + width,
        axis + 15.0,
        left + width,
        axis + 15.0,
        secs(Some(end_ms as u64))
    );
    svg.push_str(
        "</svg>\n<p>Red: the fault; dark red mark: detected; green: until recovered.</p>\n",
    );
    svg
}
