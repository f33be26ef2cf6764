//! banditflow's statistics against answers from code we did not write: scipy and statsmodels,
//! computed by `scripts/statistics_reference.py` into `tests/data/statistics_reference.json`
//! (the script's docstring says how to regenerate it). Quantiles, chi-square tests, the
//! z-test and the Newcombe interval agree within 1e-6, expected loss within 1e-5.

use banditflow_core::posterior::{best_arm, Beta};
use banditflow_core::statistics::{credible_interval, goodness_of_fit, independence, mean, versus_control};
use serde_json::Value;

fn reference() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/statistics_reference.json")).expect("reference table");
    serde_json::from_str(&text).expect("reference JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn close(what: &str, got: f64, want: f64, tolerance: f64) {
    assert!((got - want).abs() <= tolerance, "{what}: got {got}, scipy says {want} (off by {:e})", (got - want).abs());
}

fn cases<'a>(table: &'a Value, key: &str) -> &'a Vec<Value> {
    let cases = table[key].as_array().unwrap_or_else(|| panic!("no {key} cases"));
    assert!(cases.len() >= 4, "{key}: too few cases");
    cases
}

#[test]
fn credible_intervals_and_means_agree_with_scipy_beta_ppf() {
    let table = reference();
    for case in cases(&table, "quantiles") {
        let posterior = Beta { alpha: f(&case["alpha"]), beta: f(&case["beta"]) };
        let [low, high] = credible_interval(posterior);
        close(&format!("{posterior:?} 2.5%"), low, f(&case["low"]), 1e-6);
        close(&format!("{posterior:?} 97.5%"), high, f(&case["high"]), 1e-6);
        close(&format!("{posterior:?} mean"), mean(posterior), f(&case["mean"]), 1e-12);
        // The same from the p_best integration, as the weight record gets it: the arm beside
        // an equal one (both are integrated) and beside a far better one (left out of it).
        for other in [posterior, Beta { alpha: 200_000.0, beta: 10.0 }] {
            let [low, high] = best_arm(&[posterior, other]).ci95[0];
            close(&format!("{posterior:?} next to {other:?}: 2.5%"), low, f(&case["low"]), 1e-6);
            close(&format!("{posterior:?} next to {other:?}: 97.5%"), high, f(&case["high"]), 1e-6);
        }
    }
}

#[test]
fn pearson_chi_square_agrees_with_scipy_chi2_contingency() {
    let table = reference();
    for case in cases(&table, "chi_square") {
        let arms: Vec<(u64, u64)> = case["arms"].as_array().expect("arms").iter().map(|a| (u(&a[0]), u(&a[1]))).collect();
        let test = independence(arms.iter().copied());
        assert_eq!(u64::from(test.dof), u(&case["dof"]), "{arms:?}");
        let statistic = f(&case["statistic"]);
        close(&format!("{arms:?} statistic"), test.statistic, statistic, 1e-6 * statistic.max(1.0));
        close(&format!("{arms:?} p-value"), test.p_value, f(&case["p_value"]), 1e-6);
    }
}

#[test]
fn z_test_and_newcombe_interval_agree_with_statsmodels() {
    let table = reference();
    for case in cases(&table, "versus_control") {
        let arm = (u(&case["arm"][0]), u(&case["arm"][1]));
        let control = (u(&case["control"][0]), u(&case["control"][1]));
        let v = versus_control(arm, control);
        let what = format!("{arm:?} vs {control:?}");
        close(&format!("{what} diff"), v.diff, f(&case["diff"]), 1e-12);
        close(&format!("{what} low"), v.ci95[0], f(&case["low"]), 1e-6);
        close(&format!("{what} high"), v.ci95[1], f(&case["high"]), 1e-6);
        // statsmodels gives NaN where the pooled rate is 0 or 1; we say 1 (no evidence).
        let want = case["p_value"].as_f64().unwrap_or(1.0);
        close(&format!("{what} p-value"), v.p_value, want, 1e-6);
    }
}

#[test]
fn goodness_of_fit_agrees_with_scipy_chisquare() {
    let table = reference();
    for case in cases(&table, "goodness_of_fit") {
        let numbers = |key: &str| -> Vec<f64> { case[key].as_array().expect("counts").iter().map(f).collect() };
        let test = goodness_of_fit(numbers("observed").into_iter().zip(numbers("expected")));
        assert_eq!(u64::from(test.dof), u(&case["dof"]));
        close("statistic", test.statistic, f(&case["statistic"]), 1e-6);
        close("p-value", test.p_value, f(&case["p_value"]), 1e-6);
    }
}

#[test]
fn expected_loss_agrees_with_adaptive_quadrature_at_2_3_and_10_arms() {
    let table = reference();
    let mut sizes = Vec::new();
    for case in cases(&table, "expected_loss") {
        let arms: Vec<Beta> = case["arms"].as_array().expect("arms").iter().map(|a| Beta { alpha: f(&a[0]), beta: f(&a[1]) }).collect();
        sizes.push(arms.len());
        let odds = best_arm(&arms);
        for (k, want) in case["expected_loss"].as_array().expect("losses").iter().enumerate() {
            close(&format!("{arms:?} arm {k}"), odds.expected_loss[k], f(want), 1e-5);
        }
    }
    for k in [2, 3, 10] {
        assert!(sizes.contains(&k), "no case with {k} arms: {sizes:?}");
    }
}
