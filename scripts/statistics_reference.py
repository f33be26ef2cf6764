#!/usr/bin/env python3
"""Writes tests/data/statistics_reference.json: answers computed by scipy and statsmodels
(code we did not write) that tests/statistics.rs compares banditflow's statistics with.

    python3 -m venv /tmp/v && /tmp/v/bin/pip install scipy statsmodels
    /tmp/v/bin/python scripts/statistics_reference.py > tests/data/statistics_reference.json

Cases include zero counts, all successes and counts in the millions. Expected loss is
E[max_j p_j] - mean_k with E[max] = integral of 1 - prod_j F_j over [0, 1], by adaptive
quadrature split at every posterior's mean +- a few standard deviations.
"""
import json
import math
import sys

import numpy as np
import scipy
import statsmodels
from scipy import integrate, special, stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest


def quantile_cases():
    params = [
        (1.0, 1.0), (1.0, 2.0), (0.5, 0.5), (3.0, 7.0), (101.0, 901.0), (1.0, 1_000_001.0),
        (1_000_001.0, 1.0), (5_001.0, 95_001.0), (2_000_000.0, 3_000_000.0), (51.0, 1.0),
        (1.0, 51.0), (2.5, 1_200_000.5), (40_001.0, 9_960_001.0),
    ]
    return [
        {"alpha": a, "beta": b, "low": stats.beta.ppf(0.025, a, b), "high": stats.beta.ppf(0.975, a, b),
         "mean": a / (a + b)}
        for a, b in params
    ]


def chi_square_cases():
    tables = [
        [(100, 10), (100, 20)],
        [(1000, 0), (1000, 5)],
        [(50, 50), (60, 58)],
        [(3_000_000, 30_000), (3_000_000, 30_600), (2_500_000, 25_100)],
        [(10, 1), (12, 4), (8, 0), (30, 9)],
        [(1, 1), (1, 0)],
        [(2_000_000, 1_999_000), (1_000_000, 999_600)],
    ]
    out = []
    for table in tables:
        observed = np.array([[s, t - s] for t, s in table], dtype=float)
        statistic, p_value, dof, _ = stats.chi2_contingency(observed, correction=False)
        out.append({"arms": [list(x) for x in table], "statistic": statistic, "dof": int(dof), "p_value": p_value})
    return out


def control_cases():
    pairs = [
        ((1000, 120), (1000, 100)),
        ((5000, 0), (5000, 3)),
        ((200, 200), (200, 190)),
        ((3_000_000, 31_000), (3_000_000, 30_000)),
        ((17, 4), (23, 2)),
        ((1, 0), (1, 1)),
        ((1_000_000, 500_700), (2_000_000, 1_000_100)),
    ]
    out = []
    for (n1, s1), (n0, s0) in pairs:
        low, high = confint_proportions_2indep(s1, n1, s0, n0, method="newcomb", compare="diff", alpha=0.05)
        _, p_value = proportions_ztest([s1, s0], [n1, n0], alternative="two-sided")
        out.append({"arm": [n1, s1], "control": [n0, s0], "diff": s1 / n1 - s0 / n0, "low": low, "high": high,
                    "p_value": p_value})
    return out


def fit_cases():
    cases = [
        ([480.0, 520.0], [500.0, 500.0]),
        ([100.0, 300.0, 600.0], [120.5, 280.25, 599.25]),
        ([5000.0, 5400.0], [5200.0, 5200.0]),
        ([1_000_000.0, 1_003_000.0, 997_000.0], [1_000_000.0, 1_000_000.0, 1_000_000.0]),
    ]
    out = []
    for observed, expected in cases:
        statistic, p_value = stats.chisquare(observed, expected)
        out.append({"observed": observed, "expected": expected, "statistic": statistic, "dof": len(observed) - 1,
                    "p_value": p_value})
    return out


def expected_max(arms):
    def integrand(x):
        product = 1.0
        for a, b in arms:
            product *= special.betainc(a, b, x)
        return 1.0 - product

    points = set()
    for a, b in arms:
        mean = a / (a + b)
        sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        for k in (-8, -4, -2, -1, 0, 1, 2, 4, 8):
            x = mean + k * sd
            if 0.0 < x < 1.0:
                points.add(x)
    edges = [0.0] + sorted(points) + [1.0]
    total = 0.0
    for lo, hi in zip(edges, edges[1:]):
        value, _ = integrate.quad(integrand, lo, hi, epsabs=1e-14, epsrel=1e-13, limit=500)
        total += value
    return total


def loss_cases():
    sets = [
        [(51.0, 951.0), (61.0, 941.0)],
        [(1.0, 1.0), (1.0, 2.0)],
        [(3.0, 5.0), (4.0, 4.0), (2.0, 9.0)],
        [(201.0, 9801.0), (230.0, 9772.0), (190.0, 9812.0)],
        [(11.0 + i, 90.0 - i) for i in range(10)],
        [(5_001.0 + 37 * i, 95_001.0 - 37 * i) for i in range(10)],
        [(30_001.0, 970_001.0), (30_100.0, 969_902.0)],
    ]
    out = []
    for arms in sets:
        e_max = expected_max(arms)
        out.append({"arms": [list(a) for a in arms], "expected_loss": [e_max - a / (a + b) for a, b in arms]})
    return out


def main():
    json.dump(
        {
            "generated_by": "scripts/statistics_reference.py",
            "scipy": scipy.__version__,
            "statsmodels": statsmodels.__version__,
            "quantiles": quantile_cases(),
            "chi_square": chi_square_cases(),
            "versus_control": control_cases(),
            "goodness_of_fit": fit_cases(),
            "expected_loss": loss_cases(),
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
