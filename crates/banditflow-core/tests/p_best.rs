//! `p_best` against independent references: the exact two-arm closed form, and a brute-force
//! adaptive integrator of `P(X_k > X_j for all j)` written separately from the quadrature it
//! checks. Tolerances are those `docs/semantics.md` promises (1e-4 absolute), usually far
//! tighter in practice.

use banditflow_core::posterior::{p_best, Beta};
use statrs::function::beta::ln_beta;
use proptest::prelude::*;

fn beta(alpha: f64, beta: f64) -> Beta {
    Beta { alpha, beta }
}

/// Exact P(X_b > X_a) when `b.alpha` is an integer:
/// Σ_{i<α_b} B(α_a+i, β_a+β_b) / ((β_b+i) B(1+i, β_b) B(α_a, β_a)), summed in log space
/// with the term ratio (α_a+i)(β_b+i) / ((α_a+β_a+β_b+i)(1+i)).
fn exact_b_beats_a(a: Beta, b: Beta) -> f64 {
    assert!(b.alpha.fract() == 0.0 && b.alpha >= 1.0);
    // ln B(α_a, β_a+β_b) - ln B(α_a, β_a), without the rounding of ln Γ near 1e8.
    let mut ln_t = ln_gamma_rise_difference(a.beta, a.alpha + a.beta, b.beta);
    // Compensated (Kahan) running sum of the log ratios: with ~1e7 terms of magnitude up
    // to ~1e6 a plain sum would drift by ~1e-8. The terms are summed scaled by the
    // largest so far, so none underflows before it matters.
    let (mut carry, mut top, mut scaled) = (0.0, f64::NEG_INFINITY, 0.0);
    for i in 0..b.alpha as u64 {
        if ln_t > top {
            scaled = scaled * (top - ln_t).exp() + 1.0;
            top = ln_t;
        } else {
            scaled += (ln_t - top).exp();
        }
        let i = i as f64;
        let step = ((a.alpha + i) * (b.beta + i) / ((a.alpha + a.beta + b.beta + i) * (1.0 + i))).ln() - carry;
        let next = ln_t + step;
        carry = (next - ln_t) - step;
        ln_t = next;
    }
    (top + scaled.ln()).exp()
}

/// Exact two-arm answer; needs an integer among the four parameters. Uses the shortest
/// sum: over α_b or α_a directly, or over β_a or β_b for the rates 1 - X, which swap
/// the parameters and the order.
fn exact_two(a: Beta, b: Beta) -> [f64; 2] {
    let mirror = |x: Beta| beta(x.beta, x.alpha);
    let count = |v: f64| if v.fract() == 0.0 { v } else { f64::INFINITY };
    let options = [count(b.alpha), count(a.alpha), count(a.beta), count(b.beta)];
    let best = (0..4).min_by(|&i, &j| options[i].total_cmp(&options[j])).expect("four options");
    assert!(options[best].is_finite(), "no integer parameter in {a:?} {b:?}");
    let b_wins = match best {
        0 => exact_b_beats_a(a, b),
        1 => 1.0 - exact_b_beats_a(b, a),
        // X_b > X_a exactly when 1 - X_a > 1 - X_b.
        2 => exact_b_beats_a(mirror(b), mirror(a)),
        _ => 1.0 - exact_b_beats_a(mirror(a), mirror(b)),
    };
    [1.0 - b_wins, b_wins]
}

/// `[ln Γ(x+d) - ln Γ(x)] - [ln Γ(y+d) - ln Γ(y)]`, accurate to ~1e-9 absolute for
/// arguments up to 1e8: shift both up to 20, then Stirling's series with the large
/// terms combined through ln_1p before they are multiplied out.
fn ln_gamma_rise_difference(x: f64, y: f64, d: f64) -> f64 {
    let shift = (20.0 - x.min(y)).max(0.0).ceil() as u32;
    let mut shifted = 0.0;
    for i in 0..shift {
        let i = f64::from(i);
        shifted -= (d / (x + i)).ln_1p() - (d / (y + i)).ln_1p();
    }
    let (x, y) = (x + f64::from(shift), y + f64::from(shift));
    let c = |z: f64| {
        let z2 = z * z;
        (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - 1.0 / (1680.0 * z2)) / z2) / z2) / z
    };
    shifted + (x - 0.5) * (d / x).ln_1p() - (y - 0.5) * (d / y).ln_1p() + d * ((x - y) / (y + d)).ln_1p() + c(x + d)
        - c(x)
        - c(y + d)
        + c(y)
}

#[test]
fn stirling_difference_agrees_with_ln_gamma_at_small_arguments() {
    use statrs::function::gamma::ln_gamma;
    for (x, y, d) in [(0.5, 3.0, 2.5), (2.0, 30.0, 7.0), (25.0, 40.0, 100.0), (1.0, 1.5, 0.5)] {
        let direct = ln_gamma(x + d) - ln_gamma(x) - ln_gamma(y + d) + ln_gamma(y);
        let got = ln_gamma_rise_difference(x, y, d);
        assert!((got - direct).abs() < 1e-12, "{x} {y} {d}: {got} vs {direct}");
    }
}

/// A point with its distance to 1 kept separately, so ln(1-x) is accurate near 1.
#[derive(Clone, Copy)]
struct Point {
    x: f64,
    u: f64,
}

impl Point {
    fn mid(self, other: Point) -> Point {
        Point { x: 0.5 * (self.x + other.x), u: 0.5 * (self.u + other.u) }
    }
    fn ln_pdf(self, arm: Beta, ln_norm: f64) -> f64 {
        let (ln_x, ln_u) =
            if self.x < 0.5 { (self.x.ln(), (-self.x).ln_1p()) } else { ((-self.u).ln_1p(), self.u.ln()) };
        ln_norm + (arm.alpha - 1.0) * ln_x + (arm.beta - 1.0) * ln_u
    }
}

/// Independent slow reference: composite Simpson on a fine grid (1/48 sd of the
/// narrowest covering arm, geometric with ratio 1.05 towards an endpoint where a pdf is
/// singular, down to 1e-30 of the scale), wide cores, cumulative Simpson for each F_j
/// and a quadratic rule for F_j at the midpoints, each F_j normalised numerically.
fn reference_p_best(arms: &[Beta]) -> Vec<f64> {
    const PER_SD: f64 = 48.0;
    struct Core {
        lo: f64,
        hi: f64,
        sd: f64,
        sing_lo: bool,
        sing_hi: bool,
        ln_norm: f64,
    }
    let cores: Vec<Core> = arms
        .iter()
        .map(|&arm| {
            let (a, b) = (arm.alpha, arm.beta);
            let n = a + b;
            let mean = a / n;
            let sd = (a * b / (n * n * (n + 1.0))).sqrt();
            let skew = 2.0 * (b - a) * (n + 1.0).sqrt() / ((n + 2.0) * (a * b).sqrt());
            let lo = (mean - (14.0 + 14.0 * (-skew).max(0.0)) * sd).max(0.0);
            let hi = (mean + (14.0 + 14.0 * skew.max(0.0)) * sd).min(1.0);
            let lo = if a <= 2.0 { 0.0 } else { lo };
            let hi = if b <= 2.0 { 1.0 } else { hi };
            Core {
                lo,
                hi,
                sd,
                sing_lo: lo == 0.0 && a.fract() != 0.0,
                sing_hi: hi == 1.0 && b.fract() != 0.0,
                ln_norm: -ln_beta(a, b),
            }
        })
        .collect();
    // Build the grid.
    let start = cores.iter().map(|c| c.lo).fold(1.0, f64::min);
    let end = cores.iter().map(|c| c.hi).fold(0.0, f64::max);
    let any_sing_lo = cores.iter().any(|c| c.sing_lo);
    let any_sing_hi = cores.iter().any(|c| c.sing_hi);
    let scale_lo = cores.iter().filter(|c| c.lo == 0.0).map(|c| c.sd).fold(f64::INFINITY, f64::min);
    let scale_hi = cores.iter().filter(|c| c.hi == 1.0).map(|c| c.sd).fold(f64::INFINITY, f64::min);
    let first = if any_sing_lo { 1e-30 * scale_lo } else { start };
    let last_u = if any_sing_hi { 1e-30 * scale_hi } else { 1.0 - end };
    let mut grid = vec![Point { x: first, u: 1.0 - first }];
    loop {
        let p = *grid.last().expect("grid starts non-empty");
        let done = if any_sing_hi { p.u <= last_u * (1.0 + 1e-12) } else { p.x >= end };
        if done {
            break;
        }
        let covering: Vec<&Core> = cores.iter().filter(|c| c.lo <= p.x && p.x < c.hi).collect();
        let next_lo = cores.iter().map(|c| c.lo).filter(|&lo| lo > p.x).fold(end, f64::min);
        if covering.is_empty() {
            grid.push(Point { x: next_lo, u: 1.0 - next_lo });
            continue;
        }
        let mut h = covering.iter().map(|c| c.sd).fold(f64::INFINITY, f64::min) / PER_SD;
        if covering.iter().any(|c| c.sing_lo) {
            h = h.min(0.05 * p.x);
        }
        if covering.iter().any(|c| c.sing_hi) {
            h = h.min(0.05 * p.u);
        }
        let mut next = if p.x < 0.5 {
            Point { x: p.x + h, u: 1.0 - (p.x + h) }
        } else {
            Point { x: 1.0 - (p.u - h), u: p.u - h }
        };
        if next.x > next_lo {
            next = Point { x: next_lo, u: 1.0 - next_lo };
        }
        if next.u < last_u {
            next = Point { x: 1.0 - last_u, u: last_u };
        }
        grid.push(next);
    }
    let k = arms.len();
    let pdf = |p: Point, j: usize| p.ln_pdf(arms[j], cores[j].ln_norm).exp();
    // Cumulative distributions at grid points and midpoints.
    let n = grid.len();
    let mut cdf_at = vec![vec![0.0; n]; k];
    let mut cdf_mid = vec![vec![0.0; n - 1]; k];
    let mut pdf_at = vec![vec![0.0; n]; k];
    let mut pdf_mid = vec![vec![0.0; n - 1]; k];
    for j in 0..k {
        for i in 0..n {
            pdf_at[j][i] = pdf(grid[i], j);
        }
        for i in 0..n - 1 {
            pdf_mid[j][i] = pdf(grid[i].mid(grid[i + 1]), j);
            let h = if grid[i].x < 0.5 { grid[i + 1].x - grid[i].x } else { grid[i].u - grid[i + 1].u };
            let (f0, fm, f1) = (pdf_at[j][i], pdf_mid[j][i], pdf_at[j][i + 1]);
            cdf_mid[j][i] = cdf_at[j][i] + 0.5 * h * (5.0 * f0 + 8.0 * fm - f1) / 12.0;
            cdf_at[j][i + 1] = cdf_at[j][i] + h * (f0 + 4.0 * fm + f1) / 6.0;
        }
        let total = cdf_at[j][n - 1];
        for v in cdf_at[j]
            .iter_mut()
            .chain(cdf_mid[j].iter_mut())
            .chain(pdf_at[j].iter_mut())
            .chain(pdf_mid[j].iter_mut())
        {
            *v /= total;
        }
    }
    let integrand = |k_arm: usize, pdf: f64, cdf: &dyn Fn(usize) -> f64| -> f64 {
        let mut v = pdf;
        for j in 0..k {
            if j != k_arm {
                v *= cdf(j);
            }
        }
        v
    };
    let mut p = vec![0.0; k];
    for i in 0..n - 1 {
        let h = if grid[i].x < 0.5 { grid[i + 1].x - grid[i].x } else { grid[i].u - grid[i + 1].u };
        for (m, pm) in p.iter_mut().enumerate() {
            let g0 = integrand(m, pdf_at[m][i], &|j| cdf_at[j][i]);
            let gm = integrand(m, pdf_mid[m][i], &|j| cdf_mid[j][i]);
            let g1 = integrand(m, pdf_at[m][i + 1], &|j| cdf_at[j][i + 1]);
            *pm += h * (g0 + 4.0 * gm + g1) / 6.0;
        }
    }
    p
}

/// Largest absolute difference, asserting it is within `tol`.
fn max_error(got: &[f64], want: &[f64], tol: f64, what: &str) -> f64 {
    assert_eq!(got.len(), want.len());
    let err = got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
    assert!(err <= tol, "{what}: error {err:.3e}\n got  {got:?}\n want {want:?}");
    err
}

fn two_arm_cases() -> Vec<(Beta, Beta)> {
    vec![
        (beta(61.0, 1201.0), beta(75.0, 1180.0)),
        (beta(1.0, 1.0), beta(1.0, 1.0)),
        (beta(3.0, 7.0), beta(2.0, 9.0)),
        // very close arms
        (beta(5001.0, 95001.0), beta(5003.0, 94999.0)),
        (beta(50_000.0, 950_000.0), beta(50_100.0, 949_900.0)),
        // extreme posteriors
        (beta(2.0e6, 8.0e6), beta(2.0e6 + 1500.0, 8.0e6 - 1500.0)),
        (beta(4.0e6, 6.0e6), beta(4.0e6 + 1500.0, 6.0e6 - 1500.0)),
        (beta(1.0e7, 1.0e7 + 0.5), beta(1.0e7 + 0.5, 1.0e7)),
        (beta(3.0, 1.0e7), beta(5.0, 1.0e7)),
        (beta(1.0e7, 2.0), beta(1.0e7, 3.0)),
        // mixed widths
        (beta(1.0, 1.0), beta(2.0e6, 8.0e6)),
        (beta(2.0e6, 8.0e6), beta(3.0, 10.0)),
        (beta(1.0, 1.0), beta(1.0, 1.0e6)),
        // singular pdfs (Jeffreys prior, no successes or no failures)
        (beta(0.5, 1.0e6 + 0.5), beta(1.0, 1.0e6)),
        (beta(0.5, 0.5), beta(1.0, 1.0)),
        (beta(0.5, 200.5), beta(2.0, 300.5)),
        (beta(1.5, 100.5), beta(2.0, 120.5)),
        (beta(2.5, 100.5), beta(3.0, 80.5)),
        (beta(5000.5, 0.5), beta(7000.0, 1.5)),
        (beta(3.0, 0.5), beta(2.0, 0.5)),
        (beta(1.0e7, 0.5), beta(1.0e7, 1.0)),
    ]
}


#[test]
fn no_arms_give_nothing_and_one_arm_is_certainly_best() {
    assert!(p_best(&[]).is_empty());
    assert_eq!(p_best(&[beta(3.0, 9.0)]), vec![1.0]);
    assert_eq!(p_best(&[beta(0.5, 1e7)]), vec![1.0]);
}

#[test]
fn two_arms_match_the_exact_closed_form() {
    let mut worst: f64 = 0.0;
    for (a, b) in two_arm_cases() {
        let want = exact_two(a, b);
        let got = p_best(&[a, b]);
        worst = worst.max(max_error(&got, &want, 1e-7, &format!("{a:?} vs {b:?}")));
    }
    eprintln!("K=2 max error vs closed form: {worst:.2e}");
}

#[test]
fn reference_integrator_matches_the_exact_closed_form() {
    let mut worst: f64 = 0.0;
    for (a, b) in two_arm_cases() {
        let want = exact_two(a, b);
        let got = reference_p_best(&[a, b]);
        worst = worst.max(max_error(&got, &want, 1e-8, &format!("reference {a:?} vs {b:?}")));
    }
    eprintln!("reference max error vs closed form: {worst:.2e}");
}

fn compare_with_reference(cases: &[Vec<Beta>], label: &str) {
    let mut worst: f64 = 0.0;
    for arms in cases {
        let want = reference_p_best(arms);
        let got = p_best(arms);
        worst = worst.max(max_error(&got, &want, 1e-7, &format!("{label}: {arms:?}")));
    }
    eprintln!("{label} max error vs reference: {worst:.2e}");
}

#[test]
fn three_arms_match_the_reference() {
    compare_with_reference(
        &[
            vec![beta(61.0, 1201.0), beta(75.0, 1180.0), beta(70.0, 1190.0)],
            vec![beta(1.0, 1.0), beta(2.0e6, 8.0e6), beta(5.0, 20.0)],
            vec![beta(2.0e6, 8.0e6), beta(2.0e6 + 900.0, 8.0e6 - 900.0), beta(2.0e6 - 500.0, 8.0e6 + 500.0)],
            vec![beta(0.5, 1.0e6), beta(1.5, 1.0e6), beta(1.0, 2.0e6)],
            vec![beta(0.5, 0.5), beta(1.0, 1.0), beta(2.0, 2.0)],
            vec![beta(1.0e7, 0.5), beta(1.0e7, 1.5), beta(5.0e6, 0.5)],
            vec![beta(5001.0, 95001.0), beta(5001.0, 95001.0), beta(5002.0, 95000.0)],
        ],
        "K=3",
    );
}

/// `k` arms around a rate, `trials` each, with successes spread by `spread` sds.
fn cluster(k: usize, rate: f64, trials: f64, spread: f64) -> Vec<Beta> {
    let sd = (rate * (1.0 - rate) * trials).sqrt();
    (0..k)
        .map(|i| {
            let shift = spread * sd * (((i * 7919) % k) as f64 / k as f64 - 0.5);
            let s = (rate * trials + shift).round().max(0.0);
            beta(1.0 + s, 1.0 + trials - s)
        })
        .collect()
}

#[test]
fn ten_arms_match_the_reference() {
    let mut mixed = cluster(8, 0.05, 3000.0, 3.0);
    mixed.push(beta(1.0, 1.0));
    mixed.push(beta(0.5, 40.5));
    let mut extreme = cluster(9, 0.2, 1.0e7, 2.0);
    extreme.push(beta(3.0, 12.0));
    compare_with_reference(
        &[
            cluster(10, 0.05, 3000.0, 2.0),
            cluster(10, 0.01, 2.0e6, 1.0),
            mixed,
            extreme,
            cluster(10, 0.5, 40.0, 3.0),
        ],
        "K=10",
    );
}

#[test]
fn fifty_arms_match_the_reference() {
    let mut mixed = cluster(48, 0.05, 5000.0, 4.0);
    mixed.push(beta(1.0, 1.0));
    mixed.push(beta(2.0e6, 3.8e7));
    compare_with_reference(&[cluster(50, 0.05, 3000.0, 3.0), cluster(50, 0.3, 5.0e6, 2.0), mixed], "K=50");
}

#[test]
fn sixty_four_arms_match_the_reference() {
    let mut jeffreys: Vec<Beta> =
        cluster(64, 0.002, 4000.0, 3.0).iter().map(|b| beta(b.alpha - 0.5, b.beta - 0.5)).collect();
    jeffreys[0] = beta(0.5, 4000.5);
    compare_with_reference(&[cluster(64, 0.1, 1.0e5, 1.0), jeffreys], "K=64");
}

#[test]
fn identical_arms_share_equally() {
    let p = p_best(&[beta(61.0, 1201.0); 4]);
    for v in &p {
        assert!((v - 0.25).abs() < 1e-12, "{p:?}");
    }
}

#[test]
fn clearly_beaten_arms_get_zero() {
    let p = p_best(&[beta(10.0, 1000.0), beta(500.0, 500.0), beta(1.0, 1.0e6)]);
    assert_eq!(p[0], 0.0);
    assert_eq!(p[2], 0.0);
    assert!((p[1] - 1.0).abs() < 1e-12);
}

fn any_beta() -> impl Strategy<Value = Beta> {
    let shape = prop_oneof![
        Just(0.5),
        Just(1.0),
        (1u32..50).prop_map(f64::from),
        (-0.3f64..7.0).prop_map(|e| 10f64.powf(e)),
        (0u32..5000).prop_map(|i| f64::from(i) + 0.5),
    ];
    (shape.clone(), shape).prop_map(|(alpha, beta)| Beta { alpha, beta })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn p_best_is_a_distribution_symmetric_under_permutation(
        arms in prop::collection::vec(any_beta(), 1..=12),
        rotate in 0usize..12,
    ) {
        let p = p_best(&arms);
        prop_assert!(p.iter().all(|&v| v >= 0.0), "{:?}", p);
        prop_assert!((p.iter().sum::<f64>() - 1.0).abs() <= 1e-9, "{:?}", p);
        // Rotate and reverse: any permutation of the arms permutes the answer.
        let mut order: Vec<usize> = (0..arms.len()).collect();
        order.rotate_left(rotate % arms.len());
        order.reverse();
        let permuted: Vec<Beta> = order.iter().map(|&i| arms[i]).collect();
        let q = p_best(&permuted);
        for (slot, &i) in order.iter().enumerate() {
            prop_assert!((q[slot] - p[i]).abs() <= 1e-10, "{:?} vs {:?}", p, q);
        }
    }
}

/// Random comparison against the reference: a few cases in every test run, more with
/// `STRESS_CASES=1000`.
#[test]
fn random_posteriors_match_the_reference() {
    let mut state: u64 = 12345;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut worst = (0.0, Vec::new());
    let cases: usize = std::env::var("STRESS_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    for case in 0..cases {
        let k = 2 + (next() * next() * 63.0) as usize;
        let kind = case % 4;
        let mut arms = Vec::new();
        let mean = 10f64.powf(-4.0 * next());
        let mean = if next() < 0.2 { 1.0 - mean } else { mean };
        let n = 10f64.powf(1.0 + 6.0 * next());
        for _ in 0..k {
            let arm = match kind {
                0 => beta(10f64.powf(-0.3 + 7.3 * next()), 10f64.powf(-0.3 + 7.3 * next())),
                1 | 2 => {
                    let sd = (mean * (1.0 - mean) / n).sqrt();
                    let m = (mean + (next() - 0.5) * 4.0 * sd).clamp(1e-9, 1.0 - 1e-9);
                    let s = (m * n).round();
                    let prior = if kind == 1 { 1.0 } else { 0.5 };
                    beta(prior + s, prior + (n - s).max(0.0))
                }
                _ => {
                    let s = (next() * 30.0).floor();
                    beta(0.5 + s, 0.5 + (next() * 3000.0).floor())
                }
            };
            arms.push(arm);
        }
        let got = p_best(&arms);
        let want = reference_p_best(&arms);
        let err = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0, f64::max);
        if err > worst.0 {
            worst = (err, arms.clone());
        }
        if err > 1e-6 {
            eprintln!("case {case} K={k} err {err:e}: {arms:?}\n got {got:?}\n want {want:?}");
        }
    }
    eprintln!("stress worst {:e} for {:?}", worst.0, worst.1);
}
