//! What is measured (the inits) and what comes out (metrics, one row per init).

use std::path::PathBuf;

use crate::stats::{Summary, summarize};

/// One init under test.
#[derive(Clone, Debug)]
pub struct Init {
    /// Short name used in tables, e.g. `tini-static`.
    pub name: String,
    /// The binary that is run.
    pub exe: PathBuf,
    /// Where it came from (the installed path, or the build that produced it).
    pub origin: String,
    /// Arguments between the binary and the command, the way users run it (`--` for tini and catatonit).
    pub prefix: Vec<String>,
    /// The binary whose size is reported (the static build where there is one).
    pub size_file: PathBuf,
    /// grace-init builds: also measured on grace-init-only metrics (escalation).
    pub is_grace: bool,
    /// `--version` output, first line.
    pub version: String,
}

impl Init {
    /// The full argv to run `command` under this init.
    pub fn argv(&self, command: &[String]) -> Vec<String> {
        let mut v = vec![self.exe.to_string_lossy().into_owned()];
        v.extend(self.prefix.iter().cloned());
        v.extend(command.iter().cloned());
        v
    }
}

/// One init's result for one metric.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub init: String,
    pub samples: Vec<f64>,
    /// Free text shown next to the numbers (`file`'s verdict, counts, exit statuses).
    pub note: String,
    /// Set when the init could not be measured or failed the scenario.
    pub error: Option<String>,
    /// For the system-call metrics: the calls counted (the most frequent sequence), e.g. `["read", "kill(2, SIGUSR1)"]`.
    pub calls: Vec<String>,
}

impl Row {
    pub fn new(init: &str) -> Row {
        Row {
            init: init.to_string(),
            ..Row::default()
        }
    }

    pub fn summary(&self) -> Option<Summary> {
        summarize(&self.samples)
    }

    pub fn fail(&mut self, why: impl Into<String>) {
        let why = why.into();
        match &mut self.error {
            Some(e) if !e.contains(&why) => {
                e.push_str("; ");
                e.push_str(&why);
            }
            Some(_) => {}
            None => self.error = Some(why),
        }
    }
}

/// One line of the benchmark: a quantity measured for every init.
#[derive(Clone, Debug)]
pub struct Metric {
    /// Stable identifier used in the JSON file.
    pub id: &'static str,
    /// The numbering, e.g. "3" or "7b".
    pub number: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    /// How it was measured, in one or two sentences.
    pub method: String,
    /// Short label for the chart; `None` keeps it out of the chart.
    pub chart: Option<&'static str>,
    pub decimals: usize,
    pub rows: Vec<Row>,
}

impl Metric {
    pub fn new(
        id: &'static str,
        number: &'static str,
        title: &'static str,
        unit: &'static str,
    ) -> Metric {
        Metric {
            id,
            number,
            title,
            unit,
            method: String::new(),
            chart: None,
            decimals: 1,
            rows: Vec::new(),
        }
    }

    pub fn row(&self, init: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.init == init)
    }

    /// Median of `init` divided by the median of `reference`.
    pub fn ratio(&self, init: &str, reference: &str) -> Option<f64> {
        let a = self.row(init)?.summary()?.median;
        let b = self.row(reference)?.summary()?.median;
        if b == 0.0 {
            return if a == 0.0 { Some(1.0) } else { None };
        }
        Some(a / b)
    }
}
