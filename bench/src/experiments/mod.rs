//! The seed experiments (issue 10): each one is a function from a [`Ctx`] to a [`Report`]; the
//! runner writes `<out>/<name>.csv`, `<out>/<name>.svg` and `<out>/<name>.md`, then rebuilds
//! `<out>/REPORT.md` from every experiment's `.md` fragment present in `<out>`.
//!
//! `cargo run --release -p dynamo-bench --bin experiments -- <name>|all [--tiny] [--out DIR]`

pub mod churn;
pub mod cluster;
pub mod delay;
pub mod direct;
pub mod gossip;
pub mod kstaleness;
pub mod latency;
pub mod pbs;
pub mod pbs_sim;
pub mod pbs_sweeps;
pub mod plot;
pub mod ring;
pub mod staleness;
pub mod stats;

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress of an experiment: a bar on a terminal, otherwise one line per finished point on
/// stderr (so that a log of a long run shows where it is).
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    name: String,
    len: u64,
    pos: u64,
    started: Instant,
}

impl Progress {
    /// One more point finished.
    pub fn inc(&mut self, n: u64) {
        self.pos += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None => eprintln!(
                "{:>12} {}/{} points, {:.1} s",
                self.name,
                self.pos,
                self.len,
                self.started.elapsed().as_secs_f64()
            ),
        }
    }

    /// The experiment is done: removes the bar.
    pub fn finish_and_clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What an experiment is run with.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Directory for the CSV, SVG and Markdown outputs.
    pub out: PathBuf,
    /// Tiny sizes (CI): few operations, one seed.
    pub tiny: bool,
}

impl Ctx {
    /// The seeds every point is run over: five in full runs, one in tiny runs.
    pub fn seeds(&self) -> Vec<u64> {
        if self.tiny {
            vec![1]
        } else {
            vec![1, 2, 3, 4, 5]
        }
    }

    /// `full` in full runs, `tiny` in tiny runs.
    pub fn size(&self, full: usize, tiny: usize) -> usize {
        if self.tiny {
            tiny
        } else {
            full
        }
    }

    /// Progress over `len` points: a bar when stderr is a terminal, else a line per point.
    pub fn progress(&self, name: &str, len: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(len);
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix:>12} [{bar:40}] {pos}/{len} {elapsed} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(name.to_owned());
            bar
        });
        Progress {
            bar,
            name: name.to_owned(),
            len,
            pos: 0,
            started: Instant::now(),
        }
    }

    /// What the report says about the intervals of this run.
    pub fn interval_note(&self) -> &'static str {
        if self.tiny {
            "This is a tiny run (CI sizes, one seed): the numbers only show that the code runs. \
             Means come from a single run and carry no confidence interval; proportions carry \
             the Wilson score interval of their counts, which ignores the correlation between \
             operations of one run and so is too narrow."
        } else {
            "Every mean is over independent seeds with a 95% confidence interval (Student t \
             over the per-seed values, `±` is the half-width). Every proportion is pooled over \
             the seeds with a 95% interval in brackets: the Wilson score interval of the pooled \
             counts, widened to the seeds' Student t interval where the seeds disagree more, \
             so it never leaves [0, 100%] and is not empty at 0% or 100%."
        }
    }

    /// The SVG path of experiment `name`.
    pub fn svg(&self, name: &str) -> PathBuf {
        self.out.join(format!("{name}.svg"))
    }
}

/// A CSV table: one row per measured point (and per seed), carrying its configuration.
#[derive(Debug, Clone, Default)]
pub struct Csv {
    /// Column names.
    pub header: Vec<String>,
    /// Rows, as many cells as the header.
    pub rows: Vec<Vec<String>>,
}

impl Csv {
    /// An empty table with these columns.
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    fn render(&self) -> String {
        let mut s = self.header.join(",");
        s.push('\n');
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|c| {
                    if c.contains(',') || c.contains('"') {
                        format!("\"{}\"", c.replace('"', "\"\""))
                    } else {
                        c.clone()
                    }
                })
                .collect();
            s.push_str(&cells.join(","));
            s.push('\n');
        }
        s
    }
}

/// A Markdown table for the report.
pub fn md_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n", header.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(header.len()));
    for row in rows {
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    s
}

/// What an experiment hands back to the runner.
#[derive(Debug, Clone)]
pub struct Report {
    /// Per-point data.
    pub csv: Csv,
    /// Markdown body for REPORT.md: findings, comparison with the seed, tables.
    pub markdown: String,
}

/// Error of an experiment run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Writing an output file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Drawing a figure failed.
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
    /// An experiment could not set up or run its system.
    #[error("{experiment}: {message}")]
    Setup {
        /// Experiment name.
        experiment: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// One registered experiment.
#[derive(Debug, Clone, Copy)]
pub struct Experiment {
    /// Command-line name, also the output file stem.
    pub name: &'static str,
    /// Heading in the report.
    pub title: &'static str,
    /// Runs it.
    pub run: fn(&Ctx) -> Result<Report, Error>,
}

/// Every experiment, in report order.
pub fn registry() -> Vec<Experiment> {
    vec![
        Experiment {
            name: "repair",
            title: "1. Repair protocols against message drops (seed 000, result 1)",
            run: staleness::run_repair,
        },
        Experiment {
            name: "quorum",
            title: "2. Quorum settings (seed 000, result 2)",
            run: staleness::run_quorum,
        },
        Experiment {
            name: "sync",
            title: "3. Sync interval (seed 000, result 3)",
            run: staleness::run_sync,
        },
        Experiment {
            name: "delay",
            title: "4. Latency and throughput against message delay (seed 001, figures 1-3)",
            run: delay::run_delay,
        },
        Experiment {
            name: "failures",
            title: "5. Read latency with failed nodes (seed 001, figure 4)",
            run: latency::run_failures,
        },
        Experiment {
            name: "staleness",
            title: "6. Staleness against drop rate, sloppy against strict (seed 001, figure 5)",
            run: direct::run_staleness,
        },
        Experiment {
            name: "pbs",
            title: "7. Probabilistically bounded staleness (seed 004, figures 1-2)",
            run: pbs::run_pbs,
        },
        Experiment {
            name: "pbs-sim",
            title: "7a. PBS on the full simulator, next to WARS",
            run: pbs_sim::run,
        },
        Experiment {
            name: "pbs-exp",
            title: "7c. PBS sweep: exponential write latency (PBS paper)",
            run: pbs_sweeps::run_exponential,
        },
        Experiment {
            name: "pbs-n",
            title: "7d. PBS sweep: replication factor N at R = W = 1 (PBS paper)",
            run: pbs_sweeps::run_replication,
        },
        Experiment {
            name: "k-staleness",
            title: "7b. k-staleness: closed form against simulation",
            run: kstaleness::run_k_staleness,
        },
        Experiment {
            name: "tail",
            title: "8. Get and put latency, skew and failures on 8 nodes (seed 004, table 1, figures 3-5)",
            run: latency::run_table,
        },
        Experiment {
            name: "churn",
            title: "8a. Put latency as nodes fail and recover at a rate (seed 004, figure 4)",
            run: churn::run,
        },
        Experiment {
            name: "replicas",
            title: "9. Degree of consistency across replicas (seed 004, figure 6)",
            run: direct::run_replicas,
        },
        Experiment {
            name: "ring",
            title: "10a. Partitioning strategies (Dynamo section 6.2)",
            run: ring::run,
        },
        Experiment {
            name: "gossip",
            title: "10b. Gossip convergence against cluster size",
            run: gossip::run,
        },
    ]
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Runs `exp` and writes its CSV and Markdown fragment (the experiment draws its own SVG).
pub fn run_one(ctx: &Ctx, exp: &Experiment) -> Result<(), Error> {
    std::fs::create_dir_all(&ctx.out).map_err(|source| Error::Io {
        path: ctx.out.display().to_string(),
        source,
    })?;
    let started = std::time::Instant::now();
    let report = (exp.run)(ctx)?;
    let secs = started.elapsed().as_secs_f64();
    write(
        &ctx.out.join(format!("{}.csv", exp.name)),
        &report.csv.render(),
    )?;
    let mut md = format!("## {}\n\n", exp.title);
    md.push_str(report.markdown.trim_end());
    let _ = write!(
        md,
        "\n\n![{name}]({name}.svg)\n\nData: [`{name}.csv`]({name}.csv). Rerun: \
         `cargo run --release -p dynamo-bench --bin experiments -- {name}{tiny}` \
         ({secs:.0} s on this machine).\n",
        name = exp.name,
        tiny = if ctx.tiny { " --tiny" } else { "" },
    );
    write(&ctx.out.join(format!("{}.md", exp.name)), &md)
}

/// Rebuilds `<out>/REPORT.md` from the fragments present.
pub fn write_report(ctx: &Ctx) -> Result<(), Error> {
    let mut s = format!(
        "# Seed experiments, reproduced\n\n\
         Generated by `cargo run --release -p dynamo-bench --bin experiments -- all{}`; do not \
         edit by hand. {} The CSVs carry the seed and configuration of every point. The seed \
         documents ran about 100 operations on their own systems, so where our numbers differ \
         the text says why.\n\n",
        if ctx.tiny { " --tiny" } else { "" },
        ctx.interval_note(),
    );
    for exp in registry() {
        let path = ctx.out.join(format!("{}.md", exp.name));
        match std::fs::read_to_string(&path) {
            Ok(fragment) => {
                s.push_str(&fragment);
                s.push('\n');
            }
            Err(_) => {
                let _ = writeln!(s, "## {}\n\nNot run yet.\n", exp.title);
            }
        }
    }
    write(&ctx.out.join("REPORT.md"), &s)
}
