"""Redaction quality on the labelled PII and secrets corpus (bench/pii/): recall per category,
false redactions of hard negatives, whole-text false positives, throughput; dev and held-out
apart.

    python bench/redaction_quality.py [--splits dev,heldout] [--rows watchkeeper,presidio,libraries]
                                      [--reps 3] [--show 10] [--tag NAME] [--no-chart]
                                      [--markdown] [--redactor-file PATH] [--no-git]
    python bench/redaction_quality.py --setup presidio     # builds .cache/bench-envs/presidio

After a change to the redactor, `--rows watchkeeper --markdown` (a few seconds) prints the
tables of docs/redaction.md; `--redactor-file` measures the Redactor of another file (an
earlier redaction.py) as the watchkeeper row, for before and after.

Rows (each is given the text exactly as the sidecar receives it, `case["text"]`, and returns
the text with what it found replaced by "[REDACTED:<type>]"):

  watchkeeper  watchkeeper.agent.sidecar.redaction.Redactor(RedactionConfig()).redact, the
               sidecar's redactor with its default configuration, imported from the working tree
  presidio     Microsoft Presidio (presidio-analyzer + presidio-anonymizer, pinned below) in its
               own venv (.cache/bench-envs/presidio, never the project's), run in a subprocess
               (this file with --worker). Its NLP engine is a blank spaCy English pipeline
               (tokenizer only: no model to download), so its NER entities (PERSON, LOCATION...)
               are off; its pattern recognizers are all there, plus the national ones of the
               corpus' countries, and the phone recognizer is given the corpus' regions. Only the
               entities that map onto the corpus' categories are asked for (not DATE_TIME, URL,
               UUID, MAC_ADDRESS ...: those would redact the negatives by design). One
               analysis makes two rows: "presidio" keeps every result (Presidio's default
               threshold, 0), "presidio_0.5" those that score 0.5 or more.
  libraries    what maintained detectors do alone, with no rule of ours: phonenumbers'
               PhoneNumberMatcher over the corpus' regions, python-stdnum validators (IBAN, Luhn,
               the national numbers, US SSN and routing) over candidate tokens, the standard
               library's ipaddress over candidate addresses, and detect-secrets' default plugins
               and filters. A detect-secrets hit is widened to the token around it (its GitHub
               rule reports "ghp" alone) and a private-key hit to the key's END line.

Scoring (bench/_pii.py, item_survives / negative_touched): an item is removed when neither its
text, nor one of its alphanumeric runs of 4+ characters, nor 7 of its consecutive digits
(across separators) is left in the output more often than in the rest of the input; a negative
is falsely redacted when its text occurs fewer times in the output than in the input. Texts
that arrive as JSON (gen_ai.*.messages) are scored on their decoded text.
Results: bench/out/redaction_quality[-TAG].json and .png (recall per category, per row).
"""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _pii import SPLITS, item_survives, load, negative_touched, view  # noqa: E402

ENVS = ROOT / ".cache" / "bench-envs"
EXCHANGE = Path(tempfile.gettempdir()) / "watchkeeper-pii-bench"
PRESIDIO_PINS = ["presidio-analyzer==2.2.366", "presidio-anonymizer==2.2.366"]
ROWS = ("watchkeeper", "presidio", "libraries")
GOALS = {"recall_min": 0.99, "false_redaction_max": 0.01}
# The regions of the corpus' phone numbers (bench/pii/generators.py PHONE_REGIONS).
REGIONS = ["US", "CA", "GB", "FR", "DE", "ES", "IT", "PT", "BR", "MX", "IN", "JP", "CN", "KR",
           "AU", "NL", "CH", "SE", "PL", "ZA", "NG", "SG", "AE", "IE", "BE", "AT", "AR", "CO"]
TIME_BUDGET_S = 8.0  # a row is timed again (up to --reps) while a pass takes less than this

Redact = Callable[[str], str]


def replace_spans(text: str, spans: Iterable[tuple[int, int, str]]) -> str:
    """Replace the union of the spans (merged where they overlap) by markers."""
    merged: list[list[Any]] = []
    for start, end, kind in sorted(spans):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, kind])
    for start, end, kind in reversed(merged):
        text = text[:start] + f"[REDACTED:{kind}]" + text[end:]
    return text


# --- rows ---------------------------------------------------------------------------------------
def watchkeeper_row(source: str | None = None, native: str = "auto") -> Redact:
    """The sidecar's Redactor with the default RedactionConfig (`native`: its compiled
    detectors, auto or off); or the `Redactor` class of the module at `source` (an earlier
    version of the file, to compare before and after)."""
    from watchkeeper.agent.config import RedactionConfig

    if source:
        import importlib.util

        spec = importlib.util.spec_from_file_location("redaction_under_test", source)
        assert spec is not None and spec.loader is not None, source
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        redactor = module.Redactor(RedactionConfig())
    else:
        from watchkeeper.agent.sidecar.redaction import Redactor

        redactor = Redactor(RedactionConfig(native=native))
    return lambda text: redactor.redact(text)[0]


def libraries_row() -> Redact:
    import phonenumbers
    from detect_secrets.core.scan import scan_file
    from detect_secrets.settings import default_settings
    from stdnum import iban, luhn
    from stdnum.br import cpf
    from stdnum.ca import sin
    from stdnum.de import idnr
    from stdnum.es import dni, nie
    from stdnum.fr import nir
    from stdnum.gb import nhs
    from stdnum.in_ import aadhaar, pan
    from stdnum.it import codicefiscale
    from stdnum.jp import in_ as my_number
    from stdnum.nl import bsn
    from stdnum.pt import nif
    from stdnum.us import rtn, ssn

    def card(compact: str) -> bool:
        return compact.isdigit() and 13 <= len(compact) <= 19 and luhn.is_valid(compact)

    validators: list[tuple[str, Callable[[str], bool]]] = [
        ("iban", iban.is_valid), ("card", card), ("fr_nir", nir.is_valid),
        ("es_dni", dni.is_valid), ("es_nie", nie.is_valid), ("in_aadhaar", aadhaar.is_valid),
        ("in_pan", pan.is_valid), ("de_idnr", idnr.is_valid), ("br_cpf", cpf.is_valid),
        ("ca_sin", sin.is_valid), ("jp_my_number", my_number.is_valid),
        ("it_codice_fiscale", codicefiscale.is_valid), ("nl_bsn", bsn.is_valid),
        ("pt_nif", nif.is_valid), ("gb_nhs", nhs.is_valid), ("us_ssn", ssn.is_valid),
        ("us_routing", rtn.is_valid)]
    token = re.compile(r"[0-9A-Za-z]+(?:[ \-./\u00a0][0-9A-Za-z]+)*")
    group = re.compile(r"[0-9A-Za-z]+")
    ipv4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
    ipv6 = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*"
                      r"(?![0-9A-Fa-f:])")
    widen = re.compile(r"[^\s\"'<>;,()\[\]{}`]+")
    workdir = Path(tempfile.mkdtemp(prefix="pii-bench-"))
    atexit.register(shutil.rmtree, workdir, True)
    scratch = workdir / "prompt.txt"

    def numbers(text: str) -> list[tuple[int, int, str]]:
        found: list[tuple[int, int, str]] = []
        for cand in token.finditer(text):
            groups = [(g.start() + cand.start(), g.end() + cand.start())
                      for g in group.finditer(cand.group())]
            taken_until = -1
            for i in range(len(groups)):
                best = None
                for j in range(min(len(groups), i + 9) - 1, i - 1, -1):  # longest first
                    start, end = groups[i][0], groups[j][1]
                    if start < taken_until:
                        break
                    compact = "".join(text[a:b] for a, b in groups[i:j + 1])
                    if not 8 <= len(compact) <= 34:
                        continue
                    for name, valid in validators:
                        try:
                            ok = valid(compact)
                        except Exception:
                            ok = False
                        if ok:
                            best = (start, end, name)
                            break
                    if best:
                        break
                if best:
                    found.append(best)
                    taken_until = best[1]
        return found

    def addresses(text: str) -> list[tuple[int, int, str]]:
        found = []
        for m in ipv4.finditer(text):
            try:
                ipaddress.IPv4Address(m.group())
                found.append((m.start(), m.end(), "ipv4"))
            except ValueError:
                pass
        for m in ipv6.finditer(text):
            try:
                ipaddress.IPv6Address(m.group())
                found.append((m.start(), m.end(), "ipv6"))
            except ValueError:
                pass
        return found

    def phones(text: str) -> list[tuple[int, int, str]]:
        found = []
        for region in REGIONS:
            for match in phonenumbers.PhoneNumberMatcher(text, region,
                                                         leniency=phonenumbers.Leniency.VALID):
                found.append((match.start, match.end, "phone"))
        return found

    def secrets(text: str) -> list[tuple[int, int, str]]:
        scratch.write_text(text, encoding="utf-8")
        lines = text.split("\n")
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line) + 1)
        found = []
        with default_settings():
            hits = list(scan_file(str(scratch)))
        for secret in hits:
            n = secret.line_number - 1
            line, value = lines[n], secret.secret_value or ""
            at = line.find(value) if value else -1
            if at < 0:
                continue
            start, end = starts[n] + at, starts[n] + at + len(value)
            if secret.type == "Private Key":
                stop = text.find("-----END", end)
                stop = text.find("\n", stop) if stop >= 0 else -1
                end = stop if stop >= 0 else len(text)
            else:
                for w in widen.finditer(line):
                    if w.start() <= at < w.end():
                        start, end = starts[n] + w.start(), max(end, starts[n] + w.end())
                        break
            found.append((start, end, secret.type.replace(" ", "_").lower()))
        return found

    def redact(text: str) -> str:
        return replace_spans(text, numbers(text) + addresses(text) + phones(text)
                             + secrets(text))

    return redact


# --- Presidio, in its own venv ------------------------------------------------------------------
PRESIDIO_ENTITIES = {
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_BANK_NUMBER",
    "ABA_ROUTING_NUMBER", "US_SSN", "US_ITIN", "UK_NHS", "UK_NINO", "ES_NIF", "ES_NIE",
    "DE_TAX_ID", "IT_FISCAL_CODE", "IN_AADHAAR", "IN_PAN", "CA_SIN", "IP_ADDRESS"}


def presidio_worker(split: str, reps: int) -> dict[str, Any]:
    """Runs inside .cache/bench-envs/presidio: outputs and timings for one split."""
    import tldextract

    # The e-mail recognizer checks the domain with tldextract, which would fetch the public
    # suffix list from the network: use the snapshot the package ships.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())  # type: ignore[assignment]
    import spacy
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer import predefined_recognizers as pr
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.entities import OperatorConfig
    from spacy.language import Language

    @Language.component("lowercase_lemma")
    def lowercase_lemma(doc: Any) -> Any:
        """Context words (\"ssn\", \"phone\", \"iban\"...) are compared with lemmas: with no
        trained lemmatizer, the lower-cased token stands in for its lemma."""
        for token in doc:
            token.lemma_ = token.lower_
        return doc

    class BlankSpacy(SpacyNlpEngine):  # a tokenizer, no trained pipeline to download
        def load(self) -> None:
            blank = spacy.blank("en")
            blank.add_pipe("lowercase_lemma")
            self.nlp = {"en": blank}

    nlp = BlankSpacy(models=[{"lang_code": "en", "model_name": "blank"}])
    nlp.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
    registry.remove_recognizer("PhoneRecognizer")
    registry.add_recognizer(pr.PhoneRecognizer(supported_regions=REGIONS))
    for cls in ("AbaRoutingRecognizer", "UkNinoRecognizer", "EsNifRecognizer",
                "EsNieRecognizer", "DeTaxIdRecognizer", "ItFiscalCodeRecognizer",
                "InAadhaarRecognizer", "InPanRecognizer", "CaSinRecognizer"):
        registry.add_recognizer(getattr(pr, cls)(supported_language="en"))
    analyzer = AnalyzerEngine(nlp_engine=nlp, registry=registry, supported_languages=["en"])
    entities = sorted(PRESIDIO_ENTITIES & set(analyzer.get_supported_entities("en")))
    anonymizer = AnonymizerEngine()
    operators = {e: OperatorConfig("replace", {"new_value": f"[REDACTED:{e}]"})
                 for e in entities}
    texts = [c["text"] for c in load(split)]
    at_half: list[str] = []

    def run() -> list[str]:
        """Analysed once at Presidio's default threshold (0: every result); the results
        scoring 0.5 or more make the second row."""
        out = []
        at_half.clear()
        for text in texts:
            found = analyzer.analyze(text=text, language="en", entities=entities)
            for results, into in ((found, out), ([r for r in found if r.score >= 0.5], at_half)):
                into.append(anonymizer.anonymize(text=text, analyzer_results=results,  # type: ignore[arg-type]
                                                 operators=operators).text)
        return out

    outputs, seconds = timed(run, reps)
    import presidio_analyzer
    return {"outputs": outputs, "outputs_0.5": at_half, "seconds": seconds,
            "entities": entities,
            "recognizers": sorted({r.name for r in registry.recognizers}),
            "version": getattr(presidio_analyzer, "__version__", "")}


def presidio_outputs(split: str, reps: int
                     ) -> tuple[dict[str, list[str]], list[float], dict[str, Any]]:
    """{"presidio": outputs at the default threshold, "presidio_0.5": at 0.5}, the timings
    and what ran."""
    python = ENVS / "presidio" / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"no venv at {python.parent.parent} "
                           "(python bench/redaction_quality.py --setup presidio)")
    EXCHANGE.mkdir(parents=True, exist_ok=True)
    out = EXCHANGE / f"presidio-{split}.json"
    done = subprocess.run([str(python), __file__, "--worker", "presidio", "--splits", split,
                           "--reps", str(reps), "--out", str(out)],
                          capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1:])
    result = json.loads(out.read_text(encoding="utf-8"))
    versions = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"],
                              capture_output=True, text=True, check=False).stdout
    wanted = {"presidio-analyzer", "presidio_analyzer", "presidio-anonymizer",
              "presidio_anonymizer", "spacy", "phonenumbers", "tldextract"}
    info = {"entities": result["entities"], "recognizers": result["recognizers"],
            "versions": {p["name"]: p["version"] for p in json.loads(versions or "[]")
                         if p["name"] in wanted}}
    return ({"presidio": result["outputs"], "presidio_0.5": result["outputs_0.5"]},
            result["seconds"], info)


def setup_presidio() -> None:
    env = ENVS / "presidio"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    *PRESIDIO_PINS], check=True)
    print(f"installed {' '.join(PRESIDIO_PINS)} into {env}")


# --- measuring and scoring ----------------------------------------------------------------------
def timed(run: Callable[[], list[str]], reps: int) -> tuple[list[str], list[float]]:
    """Passes over the split: at least `reps` and a second in all (a fast row's pass takes
    milliseconds), or a single one when it takes more than TIME_BUDGET_S."""
    seconds: list[float] = []
    outputs: list[str] = []
    while len(seconds) < max(1, reps) or (sum(seconds) < 1.0 and len(seconds) < 200):
        started = time.perf_counter()
        outputs = run()
        seconds.append(time.perf_counter() - started)
        if seconds[-1] > TIME_BUDGET_S:
            break
    return outputs, seconds


def rate(n: int, d: int) -> float | None:
    return n / d if d else None


def score(cases: list[dict[str, Any]], outputs: list[str], keep_examples: bool
          ) -> dict[str, Any]:
    pos: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # items, removed, partial
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    neg: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # items, touched
    only = [0, 0]
    clean = [0, 0]
    misses: list[dict[str, Any]] = []
    false: list[dict[str, Any]] = []
    for case, out in zip(cases, outputs, strict=True):
        source, result = view(case), view(case, out)
        leaked = 0
        for item in case["items"]:
            why = item_survives(source, result, item)
            cat, kind = item["category"], f'{item["category"]}/{item["kind"]}'
            pos[cat][0] += 1
            kinds[kind][0] += 1
            if why is None:
                pos[cat][1] += 1
                kinds[kind][1] += 1
            else:
                leaked += 1
                pos[cat][2] += why != "exact"
                if keep_examples:
                    misses.append({"id": case["id"], "category": cat, "kind": item["kind"],
                                   "text": item["text"], "why": why})
        if case["items"]:
            clean[0] += 1
            clean[1] += leaked == 0
        for negative in case["negatives"]:
            cat = negative["category"]
            neg[cat][0] += 1
            if negative_touched(source, result, negative):
                neg[cat][1] += 1
                if keep_examples:
                    false.append({"id": case["id"], "category": cat, "kind": negative["kind"],
                                  "text": negative["text"]})
        if not case["items"]:
            only[0] += 1
            only[1] += result != source
    items, removed = sum(v[0] for v in pos.values()), sum(v[1] for v in pos.values())
    negs, touched = sum(v[0] for v in neg.values()), sum(v[1] for v in neg.values())
    result_: dict[str, Any] = {
        "recall": rate(removed, items), "items": items, "removed": removed,
        "false_redaction": rate(touched, negs), "negatives": negs, "touched": touched,
        "negative_only_texts": {"texts": only[0], "changed": only[1],
                                "rate": rate(only[1], only[0])},
        "positive_texts_fully_clean": {"texts": clean[0], "clean": clean[1],
                                       "rate": rate(clean[1], clean[0])},
        "categories": {c: {"items": v[0], "removed": v[1], "recall": rate(v[1], v[0]),
                           "partly_left": v[2]} for c, v in sorted(pos.items())},
        "kinds": {k: {"items": v[0], "removed": v[1], "recall": rate(v[1], v[0])}
                  for k, v in sorted(kinds.items())},
        "negative_categories": {c: {"items": v[0], "touched": v[1],
                                    "false_redaction": rate(v[1], v[0])}
                                for c, v in sorted(neg.items())},
    }
    if keep_examples:
        result_["misses"] = misses
        result_["false_redactions"] = false
    return result_


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def markdown(results: dict[str, Any], splits: list[str]) -> str:
    """The tables of docs/redaction.md: recall and false redactions per category, dev and
    held-out side by side for each row, then the summary."""
    rows = [r for r in results if all("recall" in results[r].get(s, {}) for s in splits)]
    head = "| category (items " + " / ".join(splits) + ") | " + " | ".join(
        f"{r} {s}" for r in rows for s in splits) + " |"
    rule = "|---" * (1 + len(rows) * len(splits)) + "|"
    out = []
    for key, value in (("categories", "recall"), ("negative_categories", "false_redaction")):
        first = results[rows[0]] if rows else {}
        names = sorted({c for r in rows for s in splits for c in results[r][s][key]})
        out += [f"**{value.replace('_', ' ')}**", "", head, rule]
        for c in names:
            counts = " / ".join(str(first.get(s, {}).get(key, {}).get(c, {}).get("items", "?"))
                                for s in splits)
            out.append(f"| {c} ({counts}) | " + " | ".join(
                pct(results[r][s][key].get(c, {}).get(value)) for r in rows for s in splits)
                + " |")
        out.append("")
    out += ["| row | split | recall | false redactions | negative-only texts changed | "
            "positive texts left clean | texts/s (median, range) |", "|---" * 7 + "|"]
    for r in rows:
        for s in splits:
            v, t = results[r][s], results[r][s]["throughput"]
            low, high = t["texts_per_s_range"]
            out.append(f"| {r} | {s} | {pct(v['recall'])} of {v['items']} | "
                       f"{pct(v['false_redaction'])} of {v['negatives']} | "
                       f"{pct(v['negative_only_texts']['rate'])} of "
                       f"{v['negative_only_texts']['texts']} | "
                       f"{pct(v['positive_texts_fully_clean']['rate'])} | "
                       f"{t['texts_per_s']:,.0f} ({low:,.0f} to {high:,.0f}) |")
    return "\n".join(out)


def chart(results: dict[str, Any], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no chart: matplotlib is not installed (pip install -e '.[bench]')"
    splits = [s for s in SPLITS if any(s in r for r in results.values())]
    rows = [r for r in results if any("recall" in v for v in results[r].values())]
    categories = sorted({c for r in rows for s in splits
                         for c in results[r].get(s, {}).get("categories", {})})
    fig, axes = plt.subplots(1, len(splits), figsize=(6 * len(splits), 7), sharey=True,
                             squeeze=False)
    height = 0.8 / max(1, len(rows))
    top = len(categories) - 1  # the first category at the top, each row's bars in row order
    for ax, split in zip(axes[0], splits, strict=True):
        for k, row in enumerate(rows):
            cats = results[row].get(split, {}).get("categories", {})
            values = [100 * (cats.get(c, {}).get("recall") or 0) for c in categories]
            ax.barh([top - i + 0.4 - height * (k + 0.5) for i in range(len(categories))], values,
                    height=height, label=row, color=f"C{k}")
        ax.axvline(99, color="grey", linestyle="--", linewidth=0.8)
        ax.set_yticks([top - i for i in range(len(categories))])
        ax.set_yticklabels(categories)
        ax.set_xlim(0, 100)
        ax.set_xlabel("recall, % of items removed")
        ax.set_title(f"{split} split")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(rows), frameon=False)
    fig.suptitle("Redaction recall per category (dashed: the 99% goal)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--reps", type=int, default=3, help="timed passes a row (at most)")
    parser.add_argument("--show", type=int, default=8,
                        help="print this many dev misses and false redactions of watchkeeper")
    parser.add_argument("--tag", help="write bench/out/redaction_quality-<tag>.json")
    parser.add_argument("--native", choices=["auto", "off"], default="auto",
                        help="the watchkeeper row's compiled detectors (redaction.native)")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the tables as Markdown (docs/redaction.md)")
    parser.add_argument("--redactor-file", metavar="PATH",
                        help="measure the Redactor class in this file (e.g. an earlier "
                             "agent/sidecar/redaction.py) as the watchkeeper row")
    parser.add_argument("--no-git", action="store_true",
                        help="record no commit (do not call git) in the JSON")
    parser.add_argument("--setup", choices=["presidio"], help="build a reference row's venv")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    splits = [s for s in args.splits.split(",") if s]
    if args.setup:
        setup_presidio()
        return
    if args.worker:
        Path(args.out).write_text(json.dumps(presidio_worker(splits[0], args.reps)),
                                  encoding="utf-8")
        return

    import _common
    from _common import OUT, console, table, versions, write_json

    if args.no_git:
        _common.git_state = lambda: {"commit": None, "modified": [], "note": "--no-git"}

    corpora = {s: load(s) for s in splits}
    results: dict[str, Any] = {}
    notes: dict[str, Any] = {}
    for row in args.rows.split(","):
        try:
            redact = (watchkeeper_row(args.redactor_file, args.native) if row == "watchkeeper"
                      else libraries_row() if row == "libraries" else None)
        except Exception as e:
            results[row] = {"error": f"{type(e).__name__}: {e}"}
            console.print(f"[red]{row}: {results[row]['error']}[/red]")
            continue
        for split, cases in corpora.items():
            texts = [c["text"] for c in cases]
            try:
                if redact is None:
                    outputs, seconds, notes["presidio"] = presidio_outputs(split, args.reps)
                else:
                    once, seconds = timed(lambda r=redact, t=texts: [r(x) for x in t],
                                          args.reps)
                    outputs = {row: once}
            except Exception as e:
                results.setdefault(row, {})[split] = {"error": f"{type(e).__name__}: {e}"}
                console.print(f"[red]{row} on {split}: {e}[/red]")
                continue
            mb = sum(len(t.encode()) for t in texts) / 1e6
            middle = statistics.median(seconds)
            for name, out in outputs.items():
                scored = score(cases, out, keep_examples=split == "dev")
                scored["throughput"] = {  # median pass, and the fastest and slowest
                    "texts": len(texts), "passes": len(seconds), "seconds": seconds,
                    "texts_per_s": len(texts) / middle, "mb_per_s": mb / middle,
                    "texts_per_s_range": [len(texts) / max(seconds), len(texts) / min(seconds)]}
                results.setdefault(name, {})[split] = scored
                console.print(f"{name} on {split}: recall {pct(scored['recall'])}, false "
                              f"redactions {pct(scored['false_redaction'])}, "
                              f"{scored['throughput']['texts_per_s']:,.0f} texts/s")

    ok_rows = [r for r in results if "error" not in results[r]]
    for s in splits:
        rows_s = [r for r in ok_rows if "error" not in results[r].get(s, {"error": 1})]
        categories = sorted({c for r in rows_s for c in results[r][s]["categories"]})
        counts = results[rows_s[0]][s]["categories"] if rows_s else {}
        table(f"Recall per category, {s} (share of items removed)", ["category (items)", *rows_s],
              [[f"{c} ({counts.get(c, {}).get('items', '?')})",
                *[pct(results[r][s]["categories"].get(c, {}).get("recall")) for r in rows_s]]
               for c in categories])
        negatives = sorted({c for r in rows_s for c in results[r][s]["negative_categories"]})
        counts = results[rows_s[0]][s]["negative_categories"] if rows_s else {}
        table(f"False redactions per hard-negative category, {s} (share of negatives touched)",
              ["category (items)", *rows_s],
              [[f"{c} ({counts.get(c, {}).get('items', '?')})",
                *[pct(results[r][s]["negative_categories"].get(c, {}).get("false_redaction"))
                  for r in rows_s]] for c in negatives])
    summary = []
    for r in ok_rows:
        for s in splits:
            v = results[r].get(s)
            if not v or "error" in v:
                continue
            summary.append([f"{r} {s}", f"{pct(v['recall'])} of {v['items']}",
                            f"{pct(v['false_redaction'])} of {v['negatives']}",
                            f"{pct(v['negative_only_texts']['rate'])} of "
                            f"{v['negative_only_texts']['texts']}",
                            pct(v["positive_texts_fully_clean"]["rate"]),
                            f"{v['throughput']['texts_per_s']:,.0f}",
                            f"{v['throughput']['mb_per_s']:.2f}"])
    table(f"Summary (goal: recall >= {GOALS['recall_min']:.0%}, false redactions <= "
          f"{GOALS['false_redaction_max']:.0%})",
          ["row", "recall", "false redactions", "negative-only texts changed",
           "positive texts left clean", "texts/s", "MB/s"], summary)
    dev = results.get("watchkeeper", {}).get("dev", {})
    if args.show and dev.get("misses") is not None:
        for label, entries in (("missed", dev["misses"]), ("falsely redacted",
                                                           dev["false_redactions"])):
            console.print(f"watchkeeper, dev, {label} ({len(entries)}), first {args.show}:")
            for e in entries[:args.show]:
                console.print(f"  {e['id']} {e['category']}/{e['kind']}: {e['text'][:80]!r}"
                              + (f" ({e['why']})" if "why" in e else ""), markup=False)

    if args.markdown:
        print(markdown(results, splits))

    payload = {"settings": {"splits": splits, "rows": list(results), "reps": args.reps,
                            "redactor_file": args.redactor_file},
               "goals": GOALS, "corpus": {s: {"texts": len(c)} for s, c in corpora.items()},
               "results": results, "reference_rows": notes,
               "versions": versions(("watchkeeper", "phonenumbers", "python-stdnum",
                                     "detect-secrets", "matplotlib"))}
    if not args.no_chart:
        png = OUT / (f"redaction_quality-{args.tag}.png" if args.tag else "redaction_quality.png")
        payload["chart"] = chart(results, png)
        console.print(payload["chart"])
    path = write_json("redaction_quality", payload, tag=args.tag)
    console.print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
