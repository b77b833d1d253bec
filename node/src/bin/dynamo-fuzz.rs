//! `dynamo-fuzz`: fuzzes the node's decoders on the stable toolchain (see `dynamo_node::fuzz`).
//!
//! ```text
//! dynamo-fuzz run --target all --inputs 11200000 --seed 1 --threads 1 [--corpus DIR] [--crashes DIR]
//! dynamo-fuzz replay --target peer [--repeat N] FILE...
//! dynamo-fuzz seed-corpus [--out DIR]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::{Parser, Subcommand};
use dynamo_node::fuzz::{corpus, Campaign, Target};

/// The corpus checked in with the source.
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");

#[derive(Parser)]
#[command(
    name = "dynamo-fuzz",
    about = "Fuzz the node's decoders (stable toolchain)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mutate the corpus of each target and run the inputs; exits 1 if any input fails.
    Run {
        /// A target name, or `all`.
        #[arg(long, default_value = "all")]
        target: String,
        /// Mutated inputs per target.
        #[arg(long, default_value_t = 100_000)]
        inputs: u64,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Threads per target.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Largest mutated input in bytes.
        #[arg(long, default_value_t = 64 << 10)]
        max_len: usize,
        /// The corpus directory (one subdirectory per target).
        #[arg(long, default_value = CORPUS)]
        corpus: PathBuf,
        /// Where failing inputs are written.
        #[arg(long, default_value = "fuzz-crashes")]
        crashes: PathBuf,
    },
    /// Run saved inputs through a target and print the verdicts; exits 1 if any fails.
    Replay {
        /// The target name.
        #[arg(long)]
        target: String,
        /// Also time decoding (`Target::decode`) this many times and print the fastest run.
        #[arg(long, default_value_t = 0)]
        repeat: u32,
        /// The input files.
        files: Vec<PathBuf>,
    },
    /// Regenerate the corpus from the traffic of an in-process cluster and real handshakes.
    SeedCorpus {
        /// The corpus directory to (re)write.
        #[arg(long, default_value = CORPUS)]
        out: PathBuf,
    },
}

fn targets(name: &str) -> Result<Vec<Target>, String> {
    if name == "all" {
        return Ok(Target::ALL.to_vec());
    }
    name.split(',')
        .map(|n| Target::from_name(n).ok_or_else(|| format!("unknown target {n:?}")))
        .collect()
}

/// Prints the first few panics with their location, then stays quiet (they are all counted).
fn quiet_panics() {
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    std::panic::set_hook(Box::new(|info| {
        if SEEN.fetch_add(1, Ordering::Relaxed) < 10 {
            eprintln!("panic: {info}");
        }
    }));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("dynamo-fuzz: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<bool, String> {
    match command {
        Command::Run {
            target,
            inputs,
            seed,
            threads,
            max_len,
            corpus: dir,
            crashes,
        } => {
            quiet_panics();
            let campaign = Campaign {
                inputs,
                seed,
                threads,
                max_len,
                crashes: Some(crashes.clone()),
            };
            let mut total_inputs = 0u64;
            let mut total_failed = 0u64;
            let mut worst_per_mib: f64 = 0.0;
            let mut wall = 0.0;
            for t in targets(&target)? {
                let entries =
                    corpus::load(&dir, t).map_err(|e| format!("{}: {e}", dir.display()))?;
                if entries.is_empty() {
                    return Err(format!("no corpus for {t} in {}", dir.display()));
                }
                let report = campaign.run(t, &entries);
                println!("{t:>10}: {} corpus entries; {report}", entries.len());
                for f in &report.failures {
                    println!(
                        "{t:>10}:   FAILED ({} B, saved {:?}): {:?}",
                        f.len, f.saved, f.verdict
                    );
                }
                if !report.slowest_input.is_empty() {
                    let path = crashes.join(format!("slowest-{t}"));
                    let saved = std::fs::create_dir_all(&crashes)
                        .and_then(|()| std::fs::write(&path, &report.slowest_input));
                    if saved.is_ok() {
                        println!(
                            "{t:>10}:   slowest input per MiB saved as {}",
                            path.display()
                        );
                    }
                }
                total_inputs += report.inputs;
                total_failed += report.failed();
                wall += report.wall.as_secs_f64();
                if let Some((r, _)) = report.slowest_per_mib {
                    worst_per_mib = worst_per_mib.max(r);
                }
            }
            println!(
                "total: {total_inputs} inputs in {wall:.1} s ({:.0} inputs/s), {total_failed} \
                 failed, slowest {worst_per_mib:.3} ms/MiB (inputs >= {} B); failures in {}",
                total_inputs as f64 / wall.max(1e-9),
                dynamo_node::fuzz::SLOW_MIN_LEN,
                crashes.display()
            );
            Ok(total_failed == 0)
        }
        Command::Replay {
            target,
            repeat,
            files,
        } => {
            let t =
                Target::from_name(&target).ok_or_else(|| format!("unknown target {target:?}"))?;
            let mut ok = true;
            for f in files {
                let input = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
                let len = input.len();
                if repeat > 0 {
                    let fastest = (0..repeat)
                        .map(|_| {
                            let start = std::time::Instant::now();
                            t.decode(&input);
                            start.elapsed()
                        })
                        .min()
                        .unwrap_or_default();
                    let ms = fastest.as_secs_f64() * 1e3;
                    println!(
                        "{}: decoding {len} B: fastest of {repeat} runs {ms:.4} ms ({:.3} ms/MiB)",
                        f.display(),
                        ms / (len as f64 / (1 << 20) as f64)
                    );
                }
                let start = std::time::Instant::now();
                // On a thread with the stack of a tokio worker (2 MiB), where the node decodes.
                let verdict = std::thread::Builder::new()
                    .stack_size(2 << 20)
                    .spawn(move || t.run(&input))
                    .map_err(|e| e.to_string())?
                    .join()
                    .map_err(|_| "the replay thread failed".to_string())?;
                ok &= !verdict.is_failure();
                println!(
                    "{}: {len} B, {:.3} ms: {verdict:?}",
                    f.display(),
                    start.elapsed().as_secs_f64() * 1e3
                );
            }
            Ok(ok)
        }
        Command::SeedCorpus { out } => {
            let all = corpus::generate().ok_or("the traffic could not be generated")?;
            for t in Target::ALL {
                let entries = all.get(&t).cloned().unwrap_or_default();
                corpus::save(&out, t, &entries).map_err(|e| format!("{}: {e}", out.display()))?;
                let bytes: usize = entries.iter().map(Vec::len).sum();
                println!("{t:>10}: {} entries, {bytes} bytes", entries.len());
            }
            Ok(true)
        }
    }
}
