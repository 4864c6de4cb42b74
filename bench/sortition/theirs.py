#!/usr/bin/env python3
"""Run sortition-algorithms' maximin on one pool and print one JSON line:
{"n":..., "k":..., "min_probability":..., "panels":..., "seconds":..., "cpu_seconds":...}

Usage: theirs.py FEATURES.csv PEOPLE.csv K [--households]
Times find_distribution_maximin only (reading the CSVs is not timed), with its default
solver backend (highspy). seconds: wall clock; cpu_seconds: CPU time of the process.
"""
import json, sys, time
from pathlib import Path

from sortition_algorithms import CSVFileDataSource, SelectionData, Settings
from sortition_algorithms.committee_generation.maximin import find_distribution_maximin

features_csv, people_csv, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
households = "--households" in sys.argv
settings = Settings(
    id_column="id",
    columns_to_keep=["first_name", "last_name"],
    check_same_address=households,
    check_same_address_columns=["address", "postcode"] if households else [],
)
out = Path("/tmp")
data = SelectionData(CSVFileDataSource(features_file=Path(features_csv), people_file=Path(people_csv),
                                       already_selected_file=None, selected_file=out / "sel.csv",
                                       remaining_file=out / "rem.csv"))
features, _ = data.load_features(k)
people, _ = data.load_people(settings, features)
t, c = time.perf_counter(), time.process_time()
committees, probs, _ = find_distribution_maximin(features, people, k, settings.check_same_address_columns)
seconds, cpu = time.perf_counter() - t, time.process_time() - c
per_person = {pid: 0.0 for pid in people}
for c, p in zip(committees, probs):
    for pid in c:
        per_person[pid] += p
print(json.dumps({"n": people.count, "k": k, "min_probability": min(per_person.values()),
                  "panels": sum(1 for p in probs if p > 0), "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 2)}))
