//! Runs the seed experiments: `experiments <name>|all|list [--tiny] [--out DIR]`.
//!
//! Writes `<out>/<name>.csv`, `<out>/<name>.svg` and rebuilds `<out>/REPORT.md`. The default
//! output is `bench/results`; with `--tiny` (CI sizes) it is `target/experiments-tiny`.

use std::path::PathBuf;
use std::process::ExitCode;

use dynamo_bench::experiments::{registry, run_one, write_report, Ctx};

fn usage() -> String {
    let names: Vec<&str> = registry().iter().map(|e| e.name).collect();
    format!(
        "usage: experiments <name>...|all|list [--tiny] [--out DIR]\nexperiments: {}",
        names.join(", ")
    )
}

fn main() -> ExitCode {
    let mut tiny = false;
    let mut out: Option<PathBuf> = None;
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tiny" => tiny = true,
            "--out" => match args.next() {
                Some(dir) if !dir.starts_with("--") => out = Some(PathBuf::from(dir)),
                _ => {
                    eprintln!("--out needs a directory\n{}", usage());
                    return ExitCode::FAILURE;
                }
            },
            "-h" | "--help" => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            _ => names.push(arg),
        }
    }
    if names.is_empty() {
        eprintln!("{}", usage());
        return ExitCode::FAILURE;
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = out.unwrap_or_else(|| {
        if tiny {
            manifest.join("../target/experiments-tiny")
        } else {
            manifest.join("results")
        }
    });
    let ctx = Ctx { out, tiny };
    let all = registry();
    if names.iter().any(|n| n == "list") {
        for e in &all {
            println!("{:<14} {}", e.name, e.title);
        }
        return ExitCode::SUCCESS;
    }
    let selected: Vec<_> = if names.iter().any(|n| n == "all") {
        all.clone()
    } else {
        let mut v = Vec::new();
        for name in &names {
            match all.iter().find(|e| e.name == name) {
                Some(e) => v.push(*e),
                None => {
                    eprintln!("unknown experiment {name}\n{}", usage());
                    return ExitCode::FAILURE;
                }
            }
        }
        v
    };
    let mut failed = false;
    for exp in &selected {
        let started = std::time::Instant::now();
        match run_one(&ctx, exp) {
            Ok(()) => eprintln!(
                "{:<14} done in {:.1} s",
                exp.name,
                started.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("{:<14} FAILED: {e}", exp.name);
                failed = true;
            }
        }
    }
    if let Err(e) = write_report(&ctx) {
        eprintln!("report: {e}");
        failed = true;
    }
    eprintln!("outputs in {}", ctx.out.display());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
