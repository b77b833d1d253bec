//! Experiment 4 (seed 001, figures 1-3): get and put latency and throughput against message
//! delay, sloppy against strict quorums.

use dynamo_node::QuorumMode;

use super::cluster::{measure_seeds, Point};
use super::latency::{delay, lat, node, summarize, Spec, COLUMNS};
use super::plot::{self, Axis, Panel, Series};
use super::{md_table, Csv, Ctx, Error, Report};

/// Experiment 4: N = 5 on 10 nodes, one-way delays 5-80 ms, "sloppy" (R = W = 2, sloppy
/// mode) against "strict" (R = W = 3, strict mode).
pub fn run_delay(ctx: &Ctx) -> Result<Report, Error> {
    let delays = [5.0, 10.0, 20.0, 40.0, 80.0];
    let modes = [
        ("sloppy R=2 W=2", QuorumMode::Sloppy, 2),
        ("strict R=3 W=3", QuorumMode::Strict, 3),
    ];
    let seeds = ctx.seeds();
    let ops = ctx.size(10_000, 200);
    let mut bar = ctx.progress("delay", (delays.len() * modes.len()) as u64);
    let mut csv = Csv::new(&COLUMNS);
    let x = || Axis::log("one-way message delay (ms, log scale)");
    let mut panels = vec![
        Panel::new("read latency", x(), Axis::log("ms (log scale)")),
        Panel::new("write latency", x(), Axis::log("ms (log scale)")),
        Panel::new("throughput", x(), Axis::log("operations/s (log scale)")),
    ];
    let mut rows = Vec::new();
    let mut failed_max = 0.0f64;
    for (i, (label, mode, q)) in modes.into_iter().enumerate() {
        let solid = plot::Style {
            color: Some(i),
            ..plot::Style::default()
        };
        let dashed = plot::Style {
            dashed: true,
            ..solid
        };
        let mut s = [
            Series::new(format!("{label} mean")).styled(solid),
            Series::new(format!("{label} p99")).styled(dashed),
            Series::new(format!("{label} mean")).styled(solid),
            Series::new(format!("{label} p99")).styled(dashed),
            Series::new(label).styled(solid),
        ];
        for &d in &delays {
            let point = Point::new(10, node(5, q, q, mode), delay(d), ops);
            let runs = measure_seeds(&point, &seeds)?;
            let spec = Spec {
                experiment: "delay",
                mode,
                latency: &format!("normal({d}, sd {})", d / 10.0),
                keys: "uniform 20",
                failed: 0,
            };
            let sm = summarize(&spec, &point, &runs, &seeds, &mut csv);
            failed_max = failed_max.max(sm.failed.p);
            s[0].points.push(lat(d, sm.get_mean));
            s[1].points.push(lat(d, sm.get_p99));
            s[2].points.push(lat(d, sm.put_mean));
            s[3].points.push(lat(d, sm.put_p99));
            s[4].points.push(lat(d, sm.throughput));
            rows.push(vec![
                label.to_owned(),
                format!("{d}"),
                sm.get_mean.show(1),
                sm.get_p99.show(1),
                sm.get_p999.show(1),
                sm.put_mean.show(1),
                sm.put_p99.show(1),
                sm.put_p999.show(1),
                sm.throughput.show(0),
                sm.failed.pct(2),
            ]);
            bar.inc(1);
        }
        let [a, b, c, e, t] = s;
        panels[0].series.extend([a, b]);
        panels[1].series.extend([c, e]);
        panels[2].series.push(t);
    }
    bar.finish_and_clear();
    let last = |p: &Panel, i: usize| {
        p.series
            .get(i)
            .and_then(|s| s.points.last())
            .map_or(f64::NAN, |p| p.y)
    };
    // Series 0 and 2 are the sloppy and strict means.
    let get80 = (last(&panels[0], 0), last(&panels[0], 2));
    let put80 = (last(&panels[1], 0), last(&panels[1], 2));
    plot::draw(
        &ctx.svg("delay"),
        "Latency and throughput against message delay (N=5, 10 nodes, 10 clients)",
        &panels,
        3,
    )?;
    let mut md = format!(
        "{ops} operations per point and seed, {} seeds, 10 nodes, N = 5, 10 closed-loop clients, \
         one-way delay normal(d, sd d/10). Seed 001 compared \"sloppy\" and \"strict\" quorums; \
         without failures our sloppy and strict modes contact the same N primaries, so the \
         difference it saw must come from the quorum sizes: we compare sloppy R = W = 2 with \
         strict R = W = 3. Latency grows linearly with the delay (at d = 80 ms the mean get \
         takes {:.1} delays and the mean put {:.1}: a put that reaches a node outside the \
         preference list is forwarded to a replica first), the larger quorum waits for a later \
         answer ({:.1} against {:.1} ms mean get at 80 ms), and closed-loop throughput falls as \
         1 / latency, as in the seed's figures 1-3. At most {:.2}% of the operations of a point \
         failed (no node fails here).\n\n",
        seeds.len(),
        get80.0 / 80.0,
        put80.0 / 80.0,
        get80.1,
        get80.0,
        failed_max * 100.0,
    );
    md.push_str(&md_table(
        &[
            "setting",
            "delay (ms)",
            "get mean",
            "get p99",
            "get p99.9",
            "put mean",
            "put p99",
            "put p99.9",
            "ops/s",
            "failed ops",
        ],
        &rows,
    ));
    Ok(Report { csv, markdown: md })
}
