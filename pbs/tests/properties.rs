//! Quickcheck laws of the WARS Monte Carlo.

use dynamo_pbs::{Dist, Empirical, Quorum, Wars};
use quickcheck::{Arbitrary, Gen};
use quickcheck_macros::quickcheck;

const TRIALS: usize = 300;

/// A small random delay distribution.
#[derive(Clone, Debug)]
struct AnyDist(Dist);

impl Arbitrary for AnyDist {
    fn arbitrary(g: &mut Gen) -> Self {
        let x = f64::from(u8::arbitrary(g) % 50) + 0.5;
        let y = f64::from(u8::arbitrary(g) % 50);
        AnyDist(match u8::arbitrary(g) % 5 {
            0 => Dist::Constant(y),
            1 => Dist::Uniform { lo: y, hi: y + x },
            2 => Dist::Exponential { mean: x },
            3 => Dist::Normal { mean: y, sd: x },
            _ => {
                let samples: Vec<f64> =
                    Vec::<u8>::arbitrary(g).into_iter().map(f64::from).collect();
                Empirical::from_samples(samples)
                    .map(Dist::Empirical)
                    .unwrap_or(Dist::Constant(x))
            }
        })
    }
}

/// A random model and quorum (N up to 5).
#[derive(Clone, Debug)]
struct Case {
    model: Wars,
    q: Quorum,
    seed: u64,
}

impl Arbitrary for Case {
    fn arbitrary(g: &mut Gen) -> Self {
        let d = || AnyDist::arbitrary(&mut Gen::new(20)).0;
        let mut model = Wars::new(d(), d(), d(), d());
        model.coordinator_is_replica = bool::arbitrary(g);
        if u8::arbitrary(g) % 3 == 0 {
            model.write_service = Some(d());
        }
        if u8::arbitrary(g) % 4 == 0 {
            model.remote = f64::from(u8::arbitrary(g) % 100);
        }
        let n = usize::from(u8::arbitrary(g) % 5) + 1;
        let r = usize::from(u8::arbitrary(g)) % n + 1;
        let w = usize::from(u8::arbitrary(g)) % n + 1;
        Case {
            model,
            q: Quorum { n, r, w },
            seed: u64::arbitrary(g),
        }
    }
}

const TIMES: [f64; 8] = [0.0, 0.5, 1.0, 5.0, 10.0, 50.0, 100.0, 1e9];

#[quickcheck]
fn strict_quorums_are_always_consistent(c: Case) -> bool {
    let n = c.q.n;
    let strict: Vec<(usize, usize)> = (1..=n)
        .flat_map(|r| (1..=n).map(move |w| (r, w)))
        .filter(|&(r, w)| r + w > n)
        .collect();
    let runs = c.model.run(n, &strict, TRIALS, c.seed).expect("valid");
    runs.iter()
        .all(|s| TIMES.iter().all(|&t| s.p_consistent(t) == 1.0) && s.time_to(1.0) == Some(0.0))
}

#[quickcheck]
fn p_is_non_decreasing_in_t(c: Case, mut ts: Vec<u16>) -> bool {
    ts.sort_unstable();
    let s = c.model.staleness(c.q, TRIALS, c.seed).expect("valid");
    ts.windows(2)
        .all(|p| s.p_consistent(f64::from(p[0]) / 4.0) <= s.p_consistent(f64::from(p[1]) / 4.0))
}

#[quickcheck]
fn more_r_or_w_never_lowers_p(c: Case) -> bool {
    let Quorum { n, r, w } = c.q;
    let mut choices = vec![(r, w)];
    if r < n {
        choices.push((r + 1, w));
    }
    if w < n {
        choices.push((r, w + 1));
    }
    let runs = c.model.run(n, &choices, TRIALS, c.seed).expect("valid");
    runs[1..].iter().all(|more| {
        TIMES
            .iter()
            .all(|&t| more.p_consistent(t) >= runs[0].p_consistent(t))
    })
}

#[quickcheck]
fn deterministic_and_independent_of_the_other_choices(c: Case) -> bool {
    let Quorum { n, r, w } = c.q;
    let alone = c.model.staleness(c.q, TRIALS, c.seed).expect("valid");
    let again = c.model.staleness(c.q, TRIALS, c.seed).expect("valid");
    let among = c
        .model
        .run(n, &[(1, 1), (r, w), (n, n)], TRIALS, c.seed)
        .expect("valid");
    alone == again && alone == among[1]
}

#[quickcheck]
fn time_to_reaches_its_target(c: Case, p: u16) -> bool {
    let p = f64::from(p % 1001) / 1000.0;
    let s = c.model.staleness(c.q, TRIALS, c.seed).expect("valid");
    match s.time_to(p) {
        Some(t) => s.p_consistent(t) >= p && s.p_consistent(t - 1e-9) < p.max(1e-12) || t == 0.0,
        None => false,
    }
}

#[quickcheck]
fn empirical_draws_only_its_samples(samples: Vec<u8>, seed: u64) -> bool {
    let Ok(e) = Empirical::from_samples(samples.iter().map(|&s| f64::from(s))) else {
        return samples.is_empty();
    };
    let d = Dist::Empirical(e);
    let mut rng = <rand_chacha::ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(seed);
    (0..50).all(|_| {
        let x = d.sample(&mut rng);
        samples.iter().any(|&s| f64::from(s) == x)
    })
}
