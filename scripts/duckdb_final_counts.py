#!/usr/bin/env python3
"""The DuckDB side of scripts/bench.sh: the same per-(entity, arm) trials and successes that
banditflow's replay computes, from the same JSON-lines files, by the rules of docs/semantics.md.

  counts  Loads both files and computes the counts as of the end of the last tick (the tick of
          the largest ts in either file); timed, JSON reading included. Prints one JSON line.
  check   Cross-checks banditflow weight files against DuckDB: each entity's last record, and
          the record in force at the last tick both sides completed, must carry exactly the
          trials and successes DuckDB computes for its as_of. Prints one JSON line; exits 1 on
          any mismatch.

The posterior of (entity, arm) as of T counts the assignments, deduplicated by assignment_id
(smallest (ts, entity_id, arm_id) wins), with T - window < ts <= T - attribution; one is a
success if some outcome has assignment.ts <= outcome.ts <= assignment.ts + attribution.
"""

import argparse
import hashlib
import json
import sys
import time

import duckdb


def sql_string(text):
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def load(con, assignments, outcomes):
    """Reads both JSON-lines files into tables `a` (deduplicated) and `o`; returns the line counts."""
    con.execute(
        f"""
        CREATE TEMP TABLE raw AS
        SELECT * FROM read_ndjson({sql_string(assignments)},
            columns = {{assignment_id: 'VARCHAR', entity_id: 'VARCHAR', arm_id: 'VARCHAR', ts: 'BIGINT'}})
        """
    )
    con.execute(
        f"""
        CREATE TEMP TABLE o AS
        SELECT * FROM read_ndjson({sql_string(outcomes)},
            columns = {{assignment_id: 'VARCHAR', ts: 'BIGINT'}})
        """
    )
    # Copies of an assignment count once; if they disagree, the smallest (ts, entity, arm) wins.
    # Per-field minima are right wherever the copies agree (nearly always); ids with several
    # copies are then resolved exactly (cheaper than a lexicographic minimum over every id).
    con.execute(
        """
        CREATE TEMP TABLE a AS
        SELECT assignment_id, min(ts) AS ts, min(entity_id) AS entity_id, min(arm_id) AS arm_id,
               count(*) AS copies
        FROM raw GROUP BY assignment_id
        """
    )
    con.execute(
        """
        UPDATE a SET ts = r.w.ts, entity_id = r.w.entity_id, arm_id = r.w.arm_id
        FROM (SELECT assignment_id, min({'ts': ts, 'entity_id': entity_id, 'arm_id': arm_id}) AS w
              FROM raw SEMI JOIN (SELECT assignment_id FROM a WHERE copies > 1) USING (assignment_id)
              GROUP BY assignment_id) AS r
        WHERE a.assignment_id = r.assignment_id
        """
    )
    lines = con.execute("SELECT (SELECT count(*) FROM raw), (SELECT count(*) FROM o)").fetchone()
    con.execute("DROP TABLE raw")
    return lines


def last_as_of(con, tick_ms):
    """The end of the tick holding the largest ts in either input, and that ts."""
    max_ts = con.execute("SELECT greatest((SELECT max(ts) FROM a), (SELECT max(ts) FROM o))").fetchone()[0]
    if max_ts is None:
        return None, None
    return (max_ts // tick_ms + 1) * tick_ms - 1, max_ts


def counts_at(con, pairs, window_ms, attribution_ms):
    """{(entity, as_of): {arm: (trials, successes)}} for the given (entity, as_of) pairs.
    Arms with no trials are absent."""
    con.execute("CREATE OR REPLACE TEMP TABLE p (entity_id VARCHAR, as_of BIGINT)")
    con.executemany("INSERT INTO p VALUES (?, ?)", sorted(pairs))
    rows = con.execute(
        f"""
        WITH counted AS (
            SELECT p.entity_id, p.as_of, a.arm_id, a.assignment_id, a.ts
            FROM p JOIN a ON a.entity_id = p.entity_id
            WHERE a.ts > p.as_of - {window_ms} AND a.ts <= p.as_of - {attribution_ms}
        ),
        succeeded AS (
            SELECT DISTINCT c.assignment_id
            FROM (SELECT DISTINCT assignment_id, ts FROM counted) c
            JOIN o ON o.assignment_id = c.assignment_id
            WHERE o.ts >= c.ts AND o.ts <= c.ts + {attribution_ms}
        )
        SELECT c.entity_id, c.as_of, c.arm_id, count(*), count(s.assignment_id)
        FROM counted c LEFT JOIN succeeded s USING (assignment_id)
        GROUP BY ALL
        """
    ).fetchall()
    result = {}
    for entity, as_of, arm, trials, successes in rows:
        result.setdefault((entity, as_of), {})[arm] = (trials, successes)
    return result


def final_counts(con, tick_ms, window_ms, attribution_ms):
    """(as_of, max_ts, rows) for the last tick: one row per (entity, arm) with trials."""
    as_of, max_ts = last_as_of(con, tick_ms)
    if as_of is None:
        return None, None, []
    rows = con.execute(
        f"""
        WITH counted AS (
            SELECT assignment_id, ts, entity_id, arm_id FROM a
            WHERE ts > {as_of - window_ms} AND ts <= {as_of - attribution_ms}
        ),
        succeeded AS (
            SELECT DISTINCT c.assignment_id
            FROM counted c JOIN o ON o.assignment_id = c.assignment_id
            WHERE o.ts >= c.ts AND o.ts <= c.ts + {attribution_ms}
        )
        SELECT entity_id, arm_id, count(*) AS trials, count(s.assignment_id) AS successes
        FROM counted c LEFT JOIN succeeded s USING (assignment_id)
        GROUP BY ALL ORDER BY entity_id, arm_id
        """
    ).fetchall()
    return as_of, max_ts, rows


def connect(threads):
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def cmd_counts(args):
    con = connect(args.threads)
    started = time.perf_counter()
    assignment_lines, outcome_lines = load(con, args.assignments, args.outcomes)
    as_of, max_ts, rows = final_counts(con, args.tick_ms, args.window_ms, args.attribution_ms)
    seconds = time.perf_counter() - started
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            for entity, arm, trials, successes in rows:
                record = {"entity_id": entity, "arm_id": arm, "as_of": as_of, "trials": trials, "successes": successes}
                out.write(json.dumps(record) + "\n")
    summary = {
        "seconds": round(seconds, 4),
        "assignment_lines": assignment_lines,
        "outcome_lines": outcome_lines,
        "max_ts": max_ts,
        "as_of": as_of,
        "rows": len(rows),
        "trials": sum(r[2] for r in rows),
        "successes": sum(r[3] for r in rows),
        "threads": int(con.execute("SELECT current_setting('threads')").fetchone()[0]),
        "duckdb": duckdb.__version__,
    }
    print(json.dumps(summary))
    return 0


class WeightFile:
    """What the check needs from one banditflow weight file, read in one pass."""

    def __init__(self, path, tick_ms, prior_alpha, prior_beta, in_force_at):
        self.path = path
        self.last = {}  # entity -> (version, as_of, arms)
        self.in_force = {}  # entity -> (as_of, arms) of its latest record with as_of <= in_force_at
        self.digest = {}  # entity -> hash of its record sequence, computed_at aside
        self.records = 0
        self.max_as_of = None
        self.violations = []
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                self.records += 1
                try:
                    record = json.loads(line)
                    self.take(record, tick_ms, prior_alpha, prior_beta, in_force_at)
                except (ValueError, KeyError, TypeError) as error:
                    self.violate(f"line {number}: unreadable record ({error!r})")

    def violate(self, what):
        self.violations.append(what)

    def take(self, record, tick_ms, prior_alpha, prior_beta, in_force_at):
        entity, version, as_of = record["entity_id"], record["version"], record["as_of"]
        if version != as_of or (as_of + 1) % tick_ms != 0:
            self.violate(f"{entity} version {version}: as_of {as_of} is not the end of a tick, or not the version")
        previous = self.last.get(entity)
        if previous is not None and version <= previous[0]:
            self.violate(f"{entity}: version {version} written after version {previous[0]}")
        arms = {}
        arm_ids = [arm["arm_id"] for arm in record["arms"]]
        if arm_ids != sorted(arm_ids):
            self.violate(f"{entity} version {version}: arms not sorted by arm_id")
        weight_sum = 0.0
        for arm in record["arms"]:
            trials, successes = arm["trials"], arm["successes"]
            if arm["alpha"] != prior_alpha + successes or arm["beta"] != prior_beta + trials - successes:
                self.violate(f"{entity} version {version} {arm['arm_id']}: alpha/beta disagree with trials/successes")
            weight_sum += arm["weight"]
            if trials:
                arms[arm["arm_id"]] = (trials, successes)
        if record["arms"] and abs(weight_sum - 1.0) > 1e-9:
            self.violate(f"{entity} version {version}: weights sum to {weight_sum}")
        self.last[entity] = (version, as_of, arms)
        if in_force_at is not None and as_of <= in_force_at:
            self.in_force[entity] = (as_of, arms)
        self.max_as_of = as_of if self.max_as_of is None else max(self.max_as_of, as_of)
        stripped = dict(record)
        stripped.pop("computed_at", None)
        canonical = json.dumps(stripped, sort_keys=True, separators=(",", ":"))
        digest = self.digest.get(entity, b"")
        self.digest[entity] = hashlib.sha256(digest + canonical.encode()).digest()


def describe(arms):
    return json.dumps({arm: list(counts) for arm, counts in sorted(arms.items())})


def cmd_check(args):
    con = connect(args.threads)
    load(con, args.assignments, args.outcomes)
    final_as_of, _ = last_as_of(con, args.tick_ms)
    files = [WeightFile(path, args.tick_ms, args.prior_alpha, args.prior_beta, final_as_of) for path in args.weights]
    entities = {row[0] for row in con.execute("SELECT DISTINCT entity_id FROM a").fetchall()}
    for f in files:
        entities |= set(f.last)

    # The last tick both sides completed: DuckDB's last tick, or earlier if the replay stopped there.
    check_as_of = {}
    pairs = set()
    for f in files:
        if final_as_of is None:
            check_as_of[f.path] = None
        else:
            check_as_of[f.path] = final_as_of if f.max_as_of is None else min(final_as_of, f.max_as_of)
            pairs |= {(entity, check_as_of[f.path]) for entity in entities}
        pairs |= {(entity, as_of) for entity, (_, as_of, _) in f.last.items()}
    expected = counts_at(con, pairs, args.window_ms, args.attribution_ms) if pairs else {}

    report = {"files": [], "mismatches": 0}
    for f in files:
        last_mismatches = []
        for entity, (version, as_of, arms) in sorted(f.last.items()):
            want = expected.get((entity, as_of), {})
            if arms != want:
                last_mismatches.append(f"{entity} as_of {as_of}: banditflow {describe(arms)}, duckdb {describe(want)}")
        in_force_mismatches = []
        at = check_as_of[f.path]
        if at is not None:
            for entity in sorted(entities):
                have = f.in_force.get(entity, (None, {}))[1]
                want = expected.get((entity, at), {})
                if have != want:
                    in_force_mismatches.append(
                        f"{entity} in force at {at}: banditflow {describe(have)}, duckdb {describe(want)}"
                    )
        for line in (last_mismatches + in_force_mismatches + f.violations)[: args.show]:
            print(f"{f.path}: {line}", file=sys.stderr)
        mismatches = len(last_mismatches) + len(in_force_mismatches) + len(f.violations)
        report["mismatches"] += mismatches
        report["files"].append(
            {
                "path": f.path,
                "records": f.records,
                "entities": len(f.last),
                "final_as_of": final_as_of,
                "checked_as_of": at,
                "last_record_mismatches": len(last_mismatches),
                "in_force_mismatches": len(in_force_mismatches),
                "record_violations": len(f.violations),
            }
        )

    # Determinism: every file must hold the same per-entity record sequences, computed_at aside.
    differing = set()
    for f in files[1:]:
        for entity in set(f.digest) | set(files[0].digest):
            if f.digest.get(entity) != files[0].digest.get(entity):
                differing.add(entity)
    if differing:
        print(f"record sequences differ between weight files for {len(differing)} entities, "
              f"e.g. {sorted(differing)[:5]}", file=sys.stderr)
    report["determinism_mismatches"] = len(differing)
    report["mismatches"] += len(differing)
    print(json.dumps(report))
    return 1 if report["mismatches"] else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("counts", "check"):
        p = sub.add_parser(name)
        p.add_argument("--assignments", required=True)
        p.add_argument("--outcomes", required=True)
        p.add_argument("--tick-ms", type=int, default=60_000)
        p.add_argument("--window-ms", type=int, default=86_400_000)
        p.add_argument("--attribution-ms", type=int, default=1_800_000)
        p.add_argument("--threads", type=int, default=0, help="DuckDB threads (default: all cores)")
    sub.choices["counts"].add_argument("--out", help="write the counts here as JSON lines")
    check = sub.choices["check"]
    check.add_argument("--weights", action="append", required=True, help="a banditflow weight file (repeatable)")
    check.add_argument("--prior-alpha", type=float, default=1.0)
    check.add_argument("--prior-beta", type=float, default=1.0)
    check.add_argument("--show", type=int, default=10, help="mismatches to print per file")
    args = parser.parse_args()
    return cmd_counts(args) if args.command == "counts" else cmd_check(args)


if __name__ == "__main__":
    sys.exit(main())
