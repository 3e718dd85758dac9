//! A self-contained HTML report (no network at view time): a summary, the groups in a table
//! that sorts and filters, stacks that fold open, source lines where known, and for a diff
//! or a watch each group's count over time.
//!
//! Everything is rendered here, in Rust, so the page reads without JavaScript; the small
//! script only adds sorting, filtering (also from the URL: `#filter=text`) and marks the
//! page ready (`data-ready` on `<body>`, which the browser test looks for).

use std::fmt::Write as _;

use crate::analyze::{Analysis, Group};
use crate::parse::Frame;

/// One table row: a group and, for a diff or a watch, its count at each sample.
pub struct Row<'a> {
    pub group: &'a Group,
    pub series: Option<Vec<usize>>,
    /// A verdict of the watch or diff shown before the group's own (`GROWING +3.0/min`).
    pub note: Option<String>,
}

/// What the page shows.
pub struct Page<'a> {
    pub title: String,
    /// `label: value` lines of the summary.
    pub summary: Vec<(String, String)>,
    /// The analysis whose crash and races are shown (the last one for a diff or watch).
    pub analysis: Option<&'a Analysis>,
    pub rows: Vec<Row<'a>>,
    /// The total goroutine count at each sample, with the sample's label (time or file).
    pub totals: Option<Vec<(String, usize)>>,
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// The start of a page: head, style, and the title as a heading.
pub fn page_start(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        escape(title),
        escape(title)
    )
}

/// One line of a chart: a name, a colour and its points.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// A line chart of one or more series over a numeric x axis, with a legend and the axis
/// ranges written at the corners. Points carry a tooltip with their values.
pub fn xy_chart(title: &str, x_unit: &str, y_unit: &str, series: &[Series]) -> String {
    let (w, h, left, bottom, top) = (720.0, 240.0, 60.0, 30.0, 24.0);
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return format!("<p>{}: no data</p>", escape(title));
    }
    let xspan = if x1 > x0 { x1 - x0 } else { 1.0 };
    let y1 = if y1 > 0.0 { y1 } else { 1.0 };
    let px = |x: f64| left + (x - x0) / xspan * (w - left - 10.0);
    let py = |y: f64| h - bottom - y / y1 * (h - bottom - top);
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg class=\"chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>\
         <text x=\"4\" y=\"{}\" font-size=\"11\">{} {}</text><text x=\"4\" y=\"{}\" font-size=\"11\">0</text>\
         <text x=\"{left}\" y=\"{}\" font-size=\"11\">{} {}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{} {}</text>",
        escape(title),
        escape(title),
        h - bottom,
        w - 10.0,
        h - bottom,
        top,
        fmt_num(y1),
        escape(y_unit),
        h - bottom,
        h - 8.0,
        fmt_num(x0),
        escape(x_unit),
        w - 10.0,
        h - 8.0,
        fmt_num(x1),
        escape(x_unit),
    );
    for (i, s) in series.iter().enumerate() {
        let poly: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"><title>{}</title></polyline>\
             <text x=\"{}\" y=\"14\" font-size=\"11\" fill=\"{}\">{}</text>",
            s.color,
            poly.join(" "),
            escape(s.name),
            left + 120.0 * i as f64,
            s.color,
            escape(s.name)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

pub fn render(page: &Page) -> String {
    let mut out = page_start(&page.title);
    out.push_str("<dl class=\"summary\">");
    for (k, v) in &page.summary {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(v));
    }
    out.push_str("</dl>\n");
    if let Some(totals) = &page.totals {
        out.push_str("<h2>Goroutines over time</h2>\n");
        out.push_str(&line_chart(totals));
    }
    if let Some(a) = page.analysis {
        crash_and_races(&mut out, a);
    }
    let series = page.rows.iter().any(|r| r.series.is_some());
    out.push_str(
        "<h2>Groups</h2>\n<p><input id=\"filter\" type=\"search\" placeholder=\"filter: function, file, state, rule\" size=\"50\"> \
         <label><input id=\"only-suspects\" type=\"checkbox\"> leak suspects only</label> \
         <span id=\"shown\"></span></p>\n<table id=\"groups\"><thead><tr>",
    );
    let mut headers = vec![("count", "num"), ("state", "text"), ("wait (min)", "num")];
    if series {
        headers.insert(1, ("change", "num"));
    }
    headers.extend([("where", "text"), ("verdict", "text")]);
    if series {
        headers.push(("trend", "none"));
    }
    for (h, kind) in &headers {
        let _ = write!(out, "<th data-sort=\"{kind}\">{h}</th>");
    }
    out.push_str("</tr></thead>\n");
    for (i, row) in page.rows.iter().enumerate() {
        group_row(&mut out, i, row, headers.len());
    }
    out.push_str("</table>\n");
    let _ = write!(out, "<script>{SCRIPT}</script>\n</body></html>\n");
    out
}

fn frame_text(f: &Frame) -> String {
    format!("{} ({}:{})", f.function, f.file, f.line)
}

fn crash_and_races(out: &mut String, a: &Analysis) {
    if let Some(c) = &a.crash {
        let _ = write!(
            out,
            "<section class=\"crash\"><h2>The program crashed</h2><p><code>{}</code></p>",
            escape(&c.message)
        );
        if let Some(f) = &c.at {
            let _ = write!(
                out,
                "<p>in goroutine {} at <code>{}</code></p>",
                c.goroutine.unwrap_or(0),
                escape(&frame_text(f))
            );
        }
        if !c.explanation.is_empty() {
            let _ = write!(out, "<p>{}", escape(c.explanation));
            if let Some(r) = c.rule {
                let _ = write!(out, " (likely {r}: <code>goguard explain {r}</code>)");
            }
            out.push_str("</p>");
        }
        out.push_str("</section>\n");
    }
    for r in &a.races {
        let _ = write!(
            out,
            "<section class=\"race\"><h2>Data race{}</h2><ul>",
            if r.count > 1 {
                format!(" (reported {} times)", r.count)
            } else {
                String::new()
            }
        );
        for access in &r.race.accesses {
            let by = access
                .goroutine
                .map_or("the main goroutine".to_string(), |g| {
                    format!("goroutine {g}")
                });
            let _ = write!(
                out,
                "<li>{} by {} <details><summary>{}</summary>{}</details></li>",
                escape(&access.kind),
                escape(&by),
                escape(
                    &crate::analyze::user_frame(&access.frames)
                        .map(frame_text)
                        .unwrap_or_default()
                ),
                stack(&access.frames)
            );
        }
        out.push_str("</ul></section>\n");
    }
}

fn stack(frames: &[Frame]) -> String {
    let mut s = String::from("<ol class=\"stack\">");
    for f in frames {
        let class = if crate::analyze::is_std_frame(f) {
            "std"
        } else {
            "user"
        };
        let _ = write!(
            s,
            "<li class=\"{class}\"><code>{}</code> <span class=\"loc\">{}:{}</span></li>",
            escape(&f.function),
            escape(&f.file),
            f.line
        );
    }
    s.push_str("</ol>");
    s
}

fn group_row(out: &mut String, i: usize, row: &Row, columns: usize) {
    let g = row.group;
    let at = g.top_frame.as_ref().map(frame_text).unwrap_or_default();
    let search = format!(
        "{} {} {} {}",
        g.state,
        g.frames
            .iter()
            .map(frame_text)
            .collect::<Vec<_>>()
            .join(" "),
        g.rule.unwrap_or(""),
        g.reason
    )
    .to_lowercase();
    let _ = write!(
        out,
        "<tbody class=\"group{}\" data-search=\"{}\"><tr>",
        if g.suspect || row.note.is_some() {
            " suspect"
        } else {
            ""
        },
        escape(&search)
    );
    let _ = write!(out, "<td class=\"num\">{}</td>", g.count);
    if let Some(series) = &row.series {
        let delta = *series.last().unwrap_or(&0) as i64 - *series.first().unwrap_or(&0) as i64;
        let _ = write!(out, "<td class=\"num\">{delta:+}</td>");
    }
    let wait = g
        .wait_minutes
        .map(|[lo, hi]| {
            if lo == hi {
                format!("{lo}")
            } else {
                format!("{lo}-{hi}")
            }
        })
        .unwrap_or_default();
    let _ = write!(
        out,
        "<td>{}</td><td class=\"num\" data-value=\"{}\">{}</td><td><code>{}</code></td><td>{}{}{}{}</td>",
        escape(&g.state),
        g.wait_minutes.map_or(0, |w| w[1]),
        wait,
        escape(&at),
        row.note
            .as_ref()
            .map(|n| format!("<b class=\"note\">{}</b> ", escape(n)))
            .unwrap_or_default(),
        if g.suspect { "<b>SUSPECT</b> " } else { "" },
        escape(&g.reason),
        g.rule
            .map(|r| format!(" <span class=\"rule\" title=\"goguard explain {r}\">likely {r}</span>"))
            .unwrap_or_default()
    );
    if let Some(series) = &row.series {
        let _ = write!(out, "<td>{}</td>", sparkline(series));
    }
    out.push_str("</tr>");
    // The fold-open details: stack, creator, labels, source.
    let _ = write!(
        out,
        "<tr class=\"details\"><td colspan=\"{columns}\"><details id=\"g{i}\"><summary>stack ({} frames)</summary>{}",
        g.frames.len(),
        stack(&g.frames)
    );
    if let Some(c) = &g.created_by {
        let _ = write!(
            out,
            "<p>created by <code>{}</code></p>",
            escape(&frame_text(c))
        );
    }
    for (k, values) in &g.labels {
        let list: Vec<String> = values.iter().map(|(v, n)| format!("{v}={n}")).collect();
        let _ = write!(
            out,
            "<p>label <code>{}</code>: {}</p>",
            escape(k),
            escape(&list.join(", "))
        );
    }
    if !g.source.is_empty() {
        out.push_str("<pre class=\"source\">");
        for l in &g.source {
            let _ = writeln!(
                out,
                "<span class=\"{}\">{:>5}  {}</span>",
                if l.target { "target" } else { "ctx" },
                l.line,
                escape(&l.text)
            );
        }
        out.push_str("</pre>");
    }
    for f in &g.findings {
        let _ = write!(
            out,
            "<p class=\"finding\"><span class=\"rule\">{}</span> {}:{}: {}</p>",
            escape(&f.rule),
            escape(&f.file),
            f.line,
            escape(&f.message)
        );
    }
    out.push_str("</details></td></tr></tbody>\n");
}

/// A small inline SVG line of a count series.
fn sparkline(series: &[usize]) -> String {
    let (w, h) = (120.0, 24.0);
    let max = series.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = series.len().max(2) as f64 - 1.0;
    let points: Vec<String> = series
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * w / n,
                h - 2.0 - v as f64 / max * (h - 4.0)
            )
        })
        .collect();
    format!(
        "<svg class=\"spark\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\"><polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" points=\"{}\"/></svg>",
        points.join(" ")
    )
}

/// A line chart of totals with labelled axes.
fn line_chart(points: &[(String, usize)]) -> String {
    let (w, h, left, bottom) = (720.0, 220.0, 50.0, 30.0);
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let n = points.len().max(2) as f64 - 1.0;
    let x = |i: usize| left + i as f64 * (w - left - 10.0) / n;
    let y = |v: usize| h - bottom - v as f64 / max * (h - bottom - 10.0);
    let mut svg = format!(
        "<svg class=\"chart\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"goroutines over time\">\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>\
         <text x=\"4\" y=\"14\" font-size=\"11\">{}</text><text x=\"4\" y=\"{}\" font-size=\"11\">0</text>",
        h - bottom,
        w - 10.0,
        h - bottom,
        max as usize,
        h - bottom
    );
    let poly: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.1)))
        .collect();
    let _ = write!(
        svg,
        "<polyline fill=\"none\" stroke=\"#c33\" stroke-width=\"2\" points=\"{}\"/>",
        poly.join(" ")
    );
    for (i, p) in points.iter().enumerate() {
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#c33\"><title>{}: {}</title></circle>",
            x(i),
            y(p.1),
            escape(&p.0),
            p.1
        );
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let _ = write!(
            svg,
            "<text x=\"{left}\" y=\"{}\" font-size=\"11\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            h - 10.0,
            escape(&first.0),
            w - 10.0,
            h - 10.0,
            escape(&last.0)
        );
    }
    svg.push_str("</svg>");
    svg
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}
dl.summary{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}
dt{font-weight:600}dd{margin:0}
table{border-collapse:collapse;width:100%}
th{text-align:left;border-bottom:2px solid #999;cursor:pointer;user-select:none;padding:.3em}
th[data-sort=none]{cursor:default}
td{padding:.3em;border-bottom:1px solid #eee;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tbody.suspect td:first-child{border-left:4px solid #c33}
tr.details td{border-bottom:1px solid #ddd;padding-top:0}
ol.stack{margin:.3em 0;font-size:.9em}
ol.stack li.std{color:#888}
span.loc{color:#666}
span.rule{background:#fde;border-radius:3px;padding:0 .3em;font-weight:600}
pre.source{background:#f6f6f6;padding:.5em;overflow:auto}
pre.source .target{background:#fdd;display:block}
section.crash,section.race{border-left:4px solid #c33;padding-left:1em}
svg.spark{color:#c33}
@media (prefers-color-scheme:dark){body{background:#111;color:#ddd}pre.source{background:#222}td{border-color:#333}}
";

const SCRIPT: &str = r#"
(function () {
  var table = document.getElementById('groups');
  var filter = document.getElementById('filter');
  var only = document.getElementById('only-suspects');
  var shown = document.getElementById('shown');
  var groups = Array.prototype.slice.call(table.querySelectorAll('tbody.group'));
  function apply() {
    var q = filter.value.trim().toLowerCase();
    var n = 0;
    groups.forEach(function (g) {
      var ok = (!q || g.dataset.search.indexOf(q) >= 0) && (!only.checked || g.classList.contains('suspect'));
      g.hidden = !ok;
      if (ok) n++;
    });
    shown.textContent = n + ' of ' + groups.length + ' groups shown';
    shown.dataset.count = n;
  }
  filter.addEventListener('input', apply);
  only.addEventListener('change', apply);
  table.querySelectorAll('th').forEach(function (th, col) {
    if (th.dataset.sort === 'none') return;
    var asc = false;
    th.addEventListener('click', function () {
      asc = !asc;
      var key = function (g) {
        var cell = g.rows[0].cells[col];
        var v = cell.dataset.value || cell.textContent;
        return th.dataset.sort === 'num' ? parseFloat(v) || 0 : v.toLowerCase();
      };
      groups.sort(function (a, b) {
        var x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      groups.forEach(function (g) { table.appendChild(g); });
    });
  });
  var m = /filter=([^&]*)/.exec(location.hash);
  if (m) filter.value = decodeURIComponent(m[1]);
  apply();
  document.body.dataset.ready = '1';
})();
"#;
