#!/usr/bin/env python3
"""The date-normalization task for issue 5's specialization check (English and Korean).

    python3 train/tasks/dates/make_data.py      # rewrites train.jsonl, test.jsonl

A user message holds a date written one of many ways (English words, numeric US or European
order, Korean 년/월/일, with or without weekday-free filler); the assistant answers with the
ISO date only: `2021-03-05`. The base SmolLM2-135M-Instruct does not answer in that format;
a LoRA adapter should learn it and generalize to dates it never saw. Train and test dates are
disjoint (test dates come from years the training set never uses), so held-out accuracy
measures the skill, not memorized pairs. Deterministic (seeded): rerunning gives the same
files.
"""
import calendar
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEM = "Convert the date in the user's message to ISO format (YYYY-MM-DD). Reply with the date only."
MONTHS = list(calendar.month_name)[1:]
SHORT = list(calendar.month_abbr)[1:]


def ordinal(d):
    suffix = "th" if 11 <= d % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(d % 10, "th")
    return f"{d}{suffix}"


def surface(y, m, d, rng):
    """One way of writing the date, and the wrapping request."""
    forms = [
        f"{MONTHS[m - 1]} {d}, {y}",
        f"{d} {MONTHS[m - 1]} {y}",
        f"{SHORT[m - 1]} {d} {y}",
        f"the {ordinal(d)} of {MONTHS[m - 1]}, {y}",
        f"{m}/{d}/{y} (US format)",
        f"{d}.{m}.{y} (European format)",
        f"{y}년 {m}월 {d}일",
        f"{y}. {m}. {d}.",
    ]
    text = rng.choice(forms)
    wraps = [
        "{t}",
        "What is {t} in ISO format?",
        "Please normalize this date: {t}",
        "The meeting is on {t}.",
        "날짜를 변환해 주세요: {t}",
        "{t}을 ISO 형식으로 바꿔 주세요.",
    ]
    return rng.choice(wraps).format(t=text)


def example(y, m, d, rng):
    return {"messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": surface(y, m, d, rng)},
        {"role": "assistant", "content": f"{y:04d}-{m:02d}-{d:02d}"},
    ]}


def dates(years, n, rng):
    out = set()
    while len(out) < n:
        y = rng.choice(years)
        m = rng.randint(1, 12)
        d = rng.randint(1, calendar.monthrange(y, m)[1])
        out.add((y, m, d))
    return sorted(out)


def main():
    rng = random.Random(20261128)
    all_years = list(range(1950, 2041))
    test_years = set(rng.sample(all_years, 12))
    train_years = [y for y in all_years if y not in test_years]
    for name, years, n in [("train", train_years, 2000), ("test", sorted(test_years), 200)]:
        rows = [example(y, m, d, rng) for y, m, d in dates(years, n, rng)]
        rng.shuffle(rows)
        path = os.path.join(HERE, f"{name}.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"wrote {os.path.relpath(path)}: {len(rows)} examples")


if __name__ == "__main__":
    main()
