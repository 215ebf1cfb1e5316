//! Presenting the results: a text table for the terminal, Markdown tables, the JSON file, the target verdicts,
//! and the SVG chart (grouped bars, each metric as a ratio to the reference init), all written by hand.

use std::fmt::Write as _;

use crate::model::{Init, Metric};
use crate::stats::{Rng, Summary, median_diff_ci, summarize};

/// Facts about the run, written into every output.
pub struct Meta {
    pub command: String,
    pub date: String,
    pub nproc: usize,
    pub kernel: String,
    pub cpu: String,
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub duration_s: f64,
    pub quick: bool,
    pub reference: String,
    pub missing: Vec<String>,
    pub grace_build: String,
    /// The grace-init commit measured.
    pub revision: String,
}

fn fmt_num(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if decimals == 0 && x.abs() >= 10_000.0 {
        // Thousands separators for byte counts.
        let neg = s.starts_with('-');
        let digits: Vec<char> = s.trim_start_matches('-').chars().collect();
        let mut out = String::new();
        for (i, c) in digits.iter().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(*c);
        }
        return if neg { format!("-{out}") } else { out };
    }
    s
}

fn range(s: &Summary, d: usize) -> String {
    format!("{} – {}", fmt_num(s.min, d), fmt_num(s.max, d))
}

fn ratio_text(m: &Metric, init: &str, reference: &str) -> String {
    match m.ratio(init, reference) {
        Some(r) => format!("{r:.2}"),
        None => "–".to_string(),
    }
}

/// The terminal table of one metric.
pub fn text_metric(m: &Metric, reference: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n{:<3} {} ({})", m.number, m.title, m.unit);
    let _ = writeln!(
        out,
        "    {:<18} {:>12} {:>25} {:>5} {:>8}  note",
        "init",
        "median",
        "min – max",
        "n",
        format!("÷{}", short(reference))
    );
    for r in &m.rows {
        let (med, rng, n) = match r.summary() {
            Some(s) => (
                fmt_num(s.median, m.decimals),
                range(&s, m.decimals),
                s.n.to_string(),
            ),
            None => ("–".into(), "–".into(), "0".into()),
        };
        let mut note = r.note.clone();
        if let Some(e) = &r.error {
            note = format!(
                "FAILED: {e}{}{note}",
                if note.is_empty() { "" } else { " | " }
            );
        }
        let _ = writeln!(
            out,
            "    {:<18} {:>12} {:>25} {:>5} {:>8}  {}",
            if r.init.len() > 18 {
                format!("{}\n    {:18}", r.init, "")
            } else {
                r.init.clone()
            },
            med,
            rng,
            n,
            ratio_text(m, &r.init, reference),
            note
        );
    }
    out
}

fn short(name: &str) -> String {
    name.chars().take(7).collect()
}

/// One line per issue target: what was measured and whether grace-init meets it.
pub struct Verdict {
    pub target: String,
    pub measured: String,
    pub met: Option<bool>,
    /// For a comparison with another init: the median difference is within the noise of this run (its 95%
    /// bootstrap interval contains 0).
    pub within_noise: bool,
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match (self.met, self.within_noise) {
            (Some(true), _) => "met",
            (Some(false), true) => "missed, within noise",
            (Some(false), false) => "MISSED",
            (None, _) => "not measured",
        }
    }
}

fn samples<'a>(metrics: &'a [Metric], id: &str, init: &str) -> Option<&'a [f64]> {
    let r = metrics.iter().find(|m| m.id == id)?.row(init)?;
    (!r.samples.is_empty()).then_some(r.samples.as_slice())
}

/// Adds "diff, 95% CI" to a comparison of two inits' medians and flags a miss that is within the noise.
fn with_ci(
    mut v: Verdict,
    metrics: &[Metric],
    id: &str,
    mine: &str,
    other: &str,
    d: usize,
    rng: &mut Rng,
) -> Verdict {
    let (Some(a), Some(b)) = (samples(metrics, id, mine), samples(metrics, id, other)) else {
        return v;
    };
    if a.len() < 10 || b.len() < 10 {
        v.measured.push_str("; too few samples for an interval");
        return v;
    }
    if let Some((lo, hi)) = median_diff_ci(a, b, 2_000, rng) {
        let diff = summarize(a).map_or(0.0, |s| s.median) - summarize(b).map_or(0.0, |s| s.median);
        v.measured.push_str(&format!(
            "; difference {diff:+.d$}, 95% CI {lo:+.d$} … {hi:+.d$}"
        ));
        v.within_noise = lo <= 0.0 && 0.0 <= hi;
    }
    v
}

fn median(metrics: &[Metric], id: &str, init: &str) -> Option<f64> {
    metrics
        .iter()
        .find(|m| m.id == id)?
        .row(init)?
        .summary()
        .map(|s| s.median)
}

pub fn verdicts(metrics: &[Metric], inits: &[Init], grace: &str, reference: &str) -> Vec<Verdict> {
    let mut v = Vec::new();
    let peers: Vec<&Init> = inits.iter().filter(|i| !i.is_grace).collect();
    let g = |id: &str| median(metrics, id, grace);
    let r = |id: &str| median(metrics, id, reference);
    let cmp =
        |target: String, mine: Option<f64>, bound: Option<f64>, unit: &str, d: usize, le: bool| {
            Verdict {
                target,
                measured: match (mine, bound) {
                    (Some(a), Some(b)) => format!("{} vs {} {unit}", fmt_num(a, d), fmt_num(b, d)),
                    (Some(a), None) => format!("{} {unit}", fmt_num(a, d)),
                    _ => "not measured".to_string(),
                },
                met: match (mine, bound) {
                    (Some(a), Some(b)) => Some(if le { a <= b } else { a < b }),
                    _ => None,
                },
                within_noise: false,
            }
        };
    let mut rng = Rng::new(0x5eed);
    v.push(cmp(
        format!("static binary < 650,000 B ({grace})"),
        g("size"),
        Some(650_000.0),
        "B",
        0,
        false,
    ));
    v.push(cmp(
        "peak RSS ≤ 600 KiB".into(),
        g("peak_rss"),
        Some(600.0),
        "KiB",
        0,
        true,
    ));
    v.push(cmp(
        "idle wake-ups per 10 s = 0".into(),
        g("idle_wakeups"),
        Some(0.0),
        "",
        0,
        true,
    ));
    let best_startup = peers
        .iter()
        .filter_map(|p| median(metrics, "startup", &p.name).map(|m| (m, p.name.clone())))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let best_name = best_startup
        .as_ref()
        .map_or("none".to_string(), |b| b.1.clone());
    let startup = cmp(
        format!("startup overhead ≤ the best peer ({best_name})"),
        g("startup"),
        best_startup.map(|b| b.0),
        "µs",
        1,
        true,
    );
    v.push(with_ci(
        startup, metrics, "startup", grace, &best_name, 1, &mut rng,
    ));
    let shutdown = cmp(
        format!("shutdown ≤ {reference}"),
        g("shutdown"),
        r("shutdown"),
        "µs",
        1,
        true,
    );
    v.push(with_ci(
        shutdown, metrics, "shutdown", grace, reference, 1, &mut rng,
    ));
    let busy = cmp(
        format!("shutdown on a busy host ≤ {reference}"),
        g("shutdown_busy"),
        r("shutdown_busy"),
        "µs",
        1,
        true,
    );
    v.push(with_ci(
        busy,
        metrics,
        "shutdown_busy",
        grace,
        reference,
        1,
        &mut rng,
    ));
    let forward = cmp(
        format!("forwarding ≤ {reference}"),
        g("forward"),
        r("forward"),
        "µs",
        1,
        true,
    );
    v.push(with_ci(
        forward, metrics, "forward", grace, reference, 1, &mut rng,
    ));
    let left = metrics
        .iter()
        .find(|m| m.id == "reap_orphans")
        .and_then(|m| m.row(grace))
        .map(|r| r.note.clone())
        .unwrap_or_default();
    let reap = cmp(
        format!("10,000 orphans reaped ≤ {reference}, 0 left"),
        g("reap_orphans"),
        r("reap_orphans"),
        "ms",
        2,
        true,
    );
    let mut reap = with_ci(reap, metrics, "reap_orphans", grace, reference, 2, &mut rng);
    if reap.met.is_some() {
        let left = left.split(';').next().unwrap_or("");
        reap.measured.push_str(&format!("; {left}"));
        if !left.starts_with("0 ") {
            reap.met = Some(false);
            reap.within_noise = false;
        }
    }
    v.push(reap);
    v.push(cmp(
        "escalation: SIGKILL sent within 2 ms of the deadline (issue 10)".into(),
        g("escalation_sent"),
        Some(2.0),
        "ms",
        2,
        true,
    ));
    v.push(cmp(
        "escalation: child dead within 10 ms of the deadline".into(),
        g("escalation_kill"),
        Some(10.0),
        "ms",
        2,
        true,
    ));
    v.push(cmp(
        "escalation: init gone within 20 ms of the deadline".into(),
        g("escalation_exit"),
        Some(20.0),
        "ms",
        2,
        true,
    ));
    v.push(cmp(
        "system calls per forwarded signal ≤ 2 (issue 10)".into(),
        g("syscalls_forward"),
        Some(2.0),
        "",
        2,
        true,
    ));
    v.push(cmp(
        "system calls from SIGTERM to exit ≤ 10 (issue 10)".into(),
        g("syscalls_shutdown"),
        Some(10.0),
        "",
        0,
        true,
    ));
    v
}

/// A count without trailing zeros: 4, 4.5, 4.01.
fn count_text(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The system-call table of issue 10 (Markdown), when the run counted them: per init, the count per forwarded
/// signal and from SIGTERM to exit (median, and the range when rounds differed), with the calls themselves.
pub fn syscall_table(metrics: &[Metric], inits: &[Init]) -> Option<String> {
    let fwd = metrics.iter().find(|m| m.id == "syscalls_forward");
    let stop = metrics.iter().find(|m| m.id == "syscalls_shutdown");
    if fwd.is_none() && stop.is_none() {
        return None;
    }
    let cell = |m: Option<&Metric>, init: &str| -> (String, String) {
        let Some(r) = m.and_then(|m| m.row(init)) else {
            return ("n/a".to_string(), String::new());
        };
        if let Some(e) = &r.error {
            return ("**failed**".to_string(), e.replace('|', "\\|"));
        }
        let count = match r.summary() {
            Some(s) if s.min == s.max => count_text(s.median),
            Some(s) => format!(
                "{} ({}–{})",
                count_text(s.median),
                count_text(s.min),
                count_text(s.max)
            ),
            None => "–".to_string(),
        };
        (count, r.calls.join(", ").replace('|', "\\|"))
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| init | per forwarded signal | one cycle | SIGTERM → exit | calls |\n|---|---:|---|---:|---|"
    );
    for i in inits {
        let (a, a_calls) = cell(fwd, &i.name);
        let (b, b_calls) = cell(stop, &i.name);
        let _ = writeln!(out, "| {} | {a} | {a_calls} | {b} | {b_calls} |", i.name);
    }
    Some(out)
}

pub fn text_verdicts(v: &[Verdict]) -> String {
    let mut out = String::from("\nTargets (issues 5 and 10), medians of this run:\n");
    for x in v {
        let _ = writeln!(out, "  [{:^20}] {:<55} {}", x.label(), x.target, x.measured);
    }
    out
}

/// Markdown: an overview matrix, the target verdicts, and one detailed table per metric.
pub fn markdown(meta: &Meta, inits: &[Init], metrics: &[Metric], verdicts: &[Verdict]) -> String {
    let reference = &meta.reference;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!-- generated by bench (grace-init-bench) on {} -->",
        meta.date
    );
    let _ = writeln!(
        out,
        "Run of {} · grace-init {} ({}) · `{}` · {} cores, kernel {}, {} · load average {} → {} · {:.0} s\n",
        meta.date,
        meta.revision,
        meta.grace_build,
        meta.command,
        meta.nproc,
        meta.kernel,
        meta.cpu,
        meta.loadavg_start
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        meta.loadavg_end
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        meta.duration_s
    );
    let _ = writeln!(out, "### Overview: medians (ratio to {reference})\n");
    let _ = write!(out, "| # | metric | unit |");
    for i in inits {
        let _ = write!(out, " {} |", i.name);
    }
    let _ = write!(out, "\n|---|---|---|");
    for _ in inits {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    for m in metrics.iter().filter(|m| !m.id.starts_with("soak")) {
        let _ = write!(out, "| {} | {} | {} |", m.number, m.title, m.unit);
        for i in inits {
            let cell = match m.row(&i.name) {
                None => "n/a".to_string(),
                Some(r) => match (r.summary(), &r.error) {
                    (_, Some(_)) => "**failed**".to_string(),
                    (Some(s), None) => {
                        let ratio = m
                            .ratio(&i.name, reference)
                            .map_or(String::new(), |x| format!(" ({x:.2}×)"));
                        format!("{}{ratio}", fmt_num(s.median, m.decimals))
                    }
                    (None, None) => "–".to_string(),
                },
            };
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    if let Some(table) = syscall_table(metrics, inits) {
        let _ = writeln!(out, "\n### System calls (issue 10), counted with strace\n");
        out.push_str(&table);
        let _ = writeln!(
            out,
            "\nMedian over the rounds (range when they differed). \"one cycle\" lists the calls of one forwarded \
             signal, the wait first; \"calls\" those from SIGTERM to exit of the most frequent sequence (the details \
             below list every variant). `→ERRNO` marks a failed call, `wait4→0` a wait that reaped nothing."
        );
    }
    let _ = writeln!(out, "\n### Targets for grace-init\n");
    let _ = writeln!(
        out,
        "| target | measured (grace-init vs bound) | verdict |\n|---|---|---|"
    );
    for v in verdicts {
        let mark = match v.label() {
            "MISSED" => "**missed**".to_string(),
            other => other.to_string(),
        };
        let _ = writeln!(out, "| {} | {} | {mark} |", v.target, v.measured);
    }
    let _ = writeln!(
        out,
        "\n### Details: median, min – max, ratio to {reference}\n"
    );
    for m in metrics {
        let _ = writeln!(
            out,
            "**{} {} ({})** — {}\n",
            m.number, m.title, m.unit, m.method
        );
        let _ = writeln!(
            out,
            "| init | median | min – max | n | ÷ {reference} | note |\n|---|---:|---:|---:|---:|---|"
        );
        for r in &m.rows {
            let (med, rng, n) = match r.summary() {
                Some(s) => (
                    fmt_num(s.median, m.decimals),
                    range(&s, m.decimals),
                    s.n.to_string(),
                ),
                None => ("–".into(), "–".into(), "0".into()),
            };
            let mut note = r.note.replace('|', "\\|");
            if let Some(e) = &r.error {
                note = format!("**failed: {}** {note}", e.replace('|', "\\|"));
            }
            let _ = writeln!(
                out,
                "| {} | {med} | {rng} | {n} | {} | {note} |",
                r.init,
                ratio_text(m, &r.init, reference)
            );
        }
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------- JSON

fn js(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn jn(x: f64) -> String {
    if x.is_finite() {
        let s = format!("{x:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.is_empty() || s == "-" {
            "0".into()
        } else {
            s.to_string()
        }
    } else {
        "null".into()
    }
}

pub fn json(meta: &Meta, inits: &[Init], metrics: &[Metric], verdicts: &[Verdict]) -> String {
    let mut o = String::from("{\n");
    let _ = writeln!(o, "  \"tool\": \"grace-init-bench\",");
    let _ = writeln!(
        o,
        "  \"run\": {{\"command\": {}, \"date\": {}, \"quick\": {}, \"duration_s\": {}, \"reference\": {}, \
         \"grace_init_build\": {}, \"grace_init_revision\": {}, \"missing_inits\": [{}]}},",
        js(&meta.command),
        js(&meta.date),
        meta.quick,
        jn(meta.duration_s),
        js(&meta.reference),
        js(&meta.grace_build),
        js(&meta.revision),
        meta.missing
            .iter()
            .map(|m| js(m))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        o,
        "  \"machine\": {{\"nproc\": {}, \"kernel\": {}, \"cpu\": {}, \"loadavg_start\": {}, \"loadavg_end\": {}}},",
        meta.nproc,
        js(&meta.kernel),
        js(&meta.cpu),
        js(&meta.loadavg_start),
        js(&meta.loadavg_end)
    );
    o.push_str("  \"inits\": [\n");
    for (k, i) in inits.iter().enumerate() {
        let _ = write!(
            o,
            "    {{\"name\": {}, \"exe\": {}, \"origin\": {}, \"argv_prefix\": [{}], \"size_file\": {}, \"version\": {}}}",
            js(&i.name),
            js(&i.exe.to_string_lossy()),
            js(&i.origin),
            i.prefix
                .iter()
                .map(|p| js(p))
                .collect::<Vec<_>>()
                .join(", "),
            js(&i.size_file.to_string_lossy()),
            js(&i.version)
        );
        o.push_str(if k + 1 < inits.len() { ",\n" } else { "\n" });
    }
    o.push_str("  ],\n  \"metrics\": [\n");
    for (k, m) in metrics.iter().enumerate() {
        let _ = writeln!(
            o,
            "    {{\"id\": {}, \"number\": {}, \"title\": {}, \"unit\": {}, \"method\": {}, \"results\": [",
            js(m.id),
            js(m.number),
            js(m.title),
            js(m.unit),
            js(&m.method)
        );
        for (j, r) in m.rows.iter().enumerate() {
            let s = r.summary();
            let f = |g: fn(&Summary) -> f64| s.as_ref().map_or("null".to_string(), |s| jn(g(s)));
            let ratio = m
                .ratio(&r.init, &meta.reference)
                .map_or("null".to_string(), jn);
            let _ = write!(
                o,
                "      {{\"init\": {}, \"median\": {}, \"min\": {}, \"max\": {}, \"p25\": {}, \"p75\": {}, \"n\": {}, \
                 \"ratio_to_reference\": {ratio}, \"note\": {}, \"error\": {}, {}\"samples\": [{}]}}",
                js(&r.init),
                f(|s| s.median),
                f(|s| s.min),
                f(|s| s.max),
                f(|s| s.p25),
                f(|s| s.p75),
                s.map_or(0, |s| s.n),
                js(&r.note),
                r.error.as_deref().map_or("null".to_string(), js),
                if r.calls.is_empty() {
                    String::new()
                } else {
                    format!(
                        "\"calls\": [{}], ",
                        r.calls.iter().map(|c| js(c)).collect::<Vec<_>>().join(", ")
                    )
                },
                r.samples
                    .iter()
                    .map(|x| jn(*x))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            o.push_str(if j + 1 < m.rows.len() { ",\n" } else { "\n" });
        }
        o.push_str(if k + 1 < metrics.len() {
            "    ]},\n"
        } else {
            "    ]}\n"
        });
    }
    o.push_str("  ],\n  \"targets\": [\n");
    for (k, v) in verdicts.iter().enumerate() {
        let _ = write!(
            o,
            "    {{\"target\": {}, \"measured\": {}, \"met\": {}, \"within_noise\": {}}}",
            js(&v.target),
            js(&v.measured),
            v.met.map_or("null".to_string(), |b| b.to_string()),
            v.within_noise
        );
        o.push_str(if k + 1 < verdicts.len() { ",\n" } else { "\n" });
    }
    o.push_str("  ]\n}\n");
    o
}

// ---------------------------------------------------------------- SVG

const COLORS: [&str; 8] = [
    "#d9480f", "#1c7ed6", "#74c0fc", "#2f9e44", "#ae3ec9", "#f59f00", "#495057", "#e64980",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Grouped bars: for every charted metric, one bar per init, height = median ÷ the reference's median.
pub fn svg(meta: &Meta, inits: &[Init], metrics: &[Metric]) -> String {
    let charted: Vec<&Metric> = metrics.iter().filter(|m| m.chart.is_some()).collect();
    let reference = &meta.reference;
    let bar_w = 15.0;
    let gap = 26.0;
    let group_w = bar_w * inits.len() as f64 + gap;
    let left = 56.0;
    let top = 70.0;
    let plot_h = 300.0;
    let width = (left + group_w * charted.len() as f64 + 20.0).max(960.0);
    let height = top + plot_h + 70.0;
    let y_max = {
        let m = charted
            .iter()
            .flat_map(|m| inits.iter().filter_map(|i| m.ratio(&i.name, reference)))
            .fold(1.0f64, f64::max);
        (m.min(3.0) * 2.0).ceil() / 2.0
    };
    let y = |r: f64| top + plot_h - (r.min(y_max) / y_max) * plot_h;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="24" font-size="15" font-weight="bold">grace-init vs peers as PID 1: median of each metric ÷ {} (lower is better)</text>"#,
        esc(reference)
    );
    let _ = writeln!(
        s,
        r##"<text x="{left}" y="42" font-size="11" fill="#555">{} · grace-init {} · {} cores · kernel {} · {}{}</text>"##,
        esc(&meta.date),
        esc(&meta.revision),
        meta.nproc,
        esc(&meta.kernel),
        esc(&meta.cpu),
        if meta.quick { " · --quick run" } else { "" }
    );
    // Legend.
    let mut lx = left;
    for (k, i) in inits.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.0}" y="52" width="10" height="10" fill="{}"/><text x="{:.0}" y="61" font-size="11">{}</text>"#,
            COLORS[k % COLORS.len()],
            lx + 14.0,
            esc(&i.name)
        );
        lx += 24.0 + 7.0 * i.name.len() as f64;
    }
    // Grid.
    let mut g = 0.0;
    while g <= y_max + 1e-9 {
        let yy = y(g);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.0}" y2="{yy:.1}" stroke="{}" stroke-width="1"{}/><text x="{:.0}" y="{:.1}" font-size="10" text-anchor="end">{g:.1}×</text>"##,
            width - 20.0,
            if (g - 1.0).abs() < 1e-9 {
                "#333"
            } else {
                "#e5e5e5"
            },
            if (g - 1.0).abs() < 1e-9 {
                r#" stroke-dasharray="5,3""#
            } else {
                ""
            },
            left - 6.0,
            yy + 3.0
        );
        g += 0.5;
    }
    for (gi, m) in charted.iter().enumerate() {
        let gx = left + gap / 2.0 + gi as f64 * group_w;
        for (k, i) in inits.iter().enumerate() {
            let x = gx + k as f64 * bar_w;
            match m.ratio(&i.name, reference) {
                Some(r) => {
                    let yy = y(r);
                    let h = top + plot_h - yy;
                    let _ = writeln!(
                        s,
                        r#"<rect x="{x:.1}" y="{yy:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {} {:.2}× ({})</title></rect>"#,
                        bar_w - 2.0,
                        COLORS[k % COLORS.len()],
                        esc(&i.name),
                        esc(m.title),
                        r,
                        m.row(&i.name).and_then(|r| r.summary()).map_or(
                            String::new(),
                            |s| format!("median {} {}", fmt_num(s.median, m.decimals), m.unit)
                        )
                    );
                    let label = if r > y_max {
                        format!("{r:.1}▲")
                    } else {
                        format!("{r:.2}")
                    };
                    let _ = writeln!(
                        s,
                        r#"<text transform="translate({:.1},{:.1}) rotate(-90)" font-size="9">{label}</text>"#,
                        x + bar_w / 2.0 + 2.0,
                        yy - 3.0
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        r##"<text transform="translate({:.1},{:.1}) rotate(-90)" font-size="9" fill="#999">n/a</text>"##,
                        x + bar_w / 2.0 + 2.0,
                        top + plot_h - 3.0
                    );
                }
            }
        }
        let cx = gx + bar_w * inits.len() as f64 / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="{cx:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
            top + plot_h + 16.0,
            esc(m.chart.unwrap_or(m.title))
        );
        let ref_med = m.row(reference).and_then(|r| r.summary()).map(|s| s.median);
        let _ = writeln!(
            s,
            r##"<text x="{cx:.1}" y="{:.1}" font-size="9" fill="#666" text-anchor="middle">1× = {}</text>"##,
            top + plot_h + 30.0,
            ref_med.map_or("–".to_string(), |v| format!(
                "{} {}",
                fmt_num(v, m.decimals),
                m.unit
            ))
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{left}" y="{:.0}" font-size="10" fill="#555">Each init ran as PID 1 of a fresh PID namespace, interleaved round by round; 1× is {}'s median (shown under each group). Bars above {y_max:.1}× are clipped (▲).</text>"##,
        height - 12.0,
        esc(reference)
    );
    s.push_str("</svg>\n");
    s
}
