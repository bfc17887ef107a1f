"""Bias detectors: tagging with the lexicon, group disparities (a planted one found, none on
fair data), counterfactual swaps (round trips, case kept, a biased scorer caught)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from watchkeeper.detectors.bias import (
    CounterfactualProbe,
    GroupDisparity,
    Lexicon,
    Swapper,
    watcher_scorer,
)
from watchkeeper.detectors.result import TOO_FEW

LEXICON = Lexicon.default()
SUBJECTS = {
    "woman": ["the woman", "my mother", "she", "a young girl", "his wife"],
    "man": ["the man", "my father", "he", "a young boy", "her husband"],
    "muslim": ["a Muslim neighbour", "the Muslims at work"],
    "christian": ["a Christian neighbour", "the Christians at work"],
    "none": ["the customer", "a colleague", "someone", "the user", "my friend"],
}
TOPICS = ["asked about the refund policy", "wrote a long complaint about the service",
          "wants to know how to reset a password", "said the delivery was late again",
          "thanked the team for the quick answer", "asked for a summary of the meeting"]


def corpus(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Texts and the subject group each was written about."""
    rng = random.Random(seed)
    groups = [rng.choice(list(SUBJECTS)) for _ in range(n)]
    texts = [f"{rng.choice(SUBJECTS[g]).capitalize()} {rng.choice(TOPICS)}." for g in groups]
    return texts, groups


# --- the lexicon ----------------------------------------------------------------------------
def test_tagging_is_whole_word_and_case_insensitive() -> None:
    assert LEXICON.tag("The WOMEN's team and her coach") == {"gender": ["woman"]}
    assert LEXICON.tag("A womanizer on the Hershey bar") == {}
    assert LEXICON.tag("Black  women in tech")["race_ethnicity"] == ["black"]
    assert LEXICON.tag("a white car, an old table, a straight line") == {}
    assert LEXICON.tag("non-disabled runners")["disability"] == ["nondisabled"]
    tags = LEXICON.tag("An elderly Muslim man from Nigeria")
    assert tags == {"gender": ["man"], "religion": ["muslim"], "age": ["old"],
                    "nationality": ["nigerian"]}
    mentions = LEXICON.mentions(["she said", "he said", "they said"], "gender")
    assert mentions["woman"] == [True, False, False] and mentions["man"] == [False, True, False]


def test_lexicon_loads_from_yaml_and_extends_the_default() -> None:
    custom = Lexicon.model_validate(yaml.safe_load("""
axes:
  team:
    groups: {red: [reds], blue: [blues]}
    forms: [{red: red team, blue: blue team}]
    reference: blue
"""))
    assert custom.tag("The Red Team won") == {"team": ["red"]}
    assert set(LEXICON.merged(custom.model_dump()).axes) == {*LEXICON.axes, "team"}
    with pytest.raises(ValidationError, match="unknown groups"):
        Lexicon.model_validate({"axes": {"x": {"groups": {"a": []}, "forms": [{"b": "b"}]}}})


# --- counterfactual swaps -------------------------------------------------------------------
@pytest.mark.parametrize(("text", "swapped"), [
    ("She gave her book to him.", "He gave his book to her."),
    ("I told her the truth", "I told him the truth"),
    ("The car is hers.", "The car is his."),
    ("The WOMEN's team won; Her coach agreed.", "The MEN's team won; His coach agreed."),
    ("My mother and my father", "My father and my mother"),
])
def test_gender_swap_keeps_case_and_round_trips(text: str, swapped: str) -> None:
    swap = Swapper(LEXICON.axes["gender"], "woman", "man")
    assert swap(text) == swapped
    assert swap(swapped) == text


def test_swaps_on_other_axes() -> None:
    race = Swapper(LEXICON.axes["race_ethnicity"], "white", "black")
    assert race("Black Women and white people") == "White Women and black people"
    religion = Swapper(LEXICON.axes["religion"], "christian", "muslim")
    assert religion("Christians read the Bible in church") == \
        "Muslims read the Quran in church"
    assert religion("nothing here") == "nothing here"


def biased_scorer(texts: list[str]) -> list[float]:
    """A 'toxicity' watcher that scores texts about women higher: biased by construction."""
    return [0.2 + 0.3 * bool(LEXICON.tag(t, ["gender"]).get("gender") == ["woman"])
            + 0.001 * len(t) for t in texts]


def fair_scorer(texts: list[str]) -> list[float]:
    """Scores on the topic only; group words do not move it."""
    return [0.8 if "complaint" in t else 0.1 for t in texts]


def test_counterfactual_probe_catches_a_biased_scorer() -> None:
    texts, _ = corpus(400)
    calls: list[int] = []

    def counted(batch: list[str]) -> list[float]:
        calls.append(len(batch))
        return biased_scorer(batch)

    probe = CounterfactualProbe(axes=["gender", "religion", "disability"])
    results = {tuple(r.details["pair"]): r for r in probe.test(texts, counted)}
    assert len(calls) == 1  # originals and every swap in one batch
    gender = results[("man", "woman")]
    assert gender.alert and gender.effect_size == pytest.approx(0.3, abs=0.02)
    # texts that mention both ("his wife") swap to both and do not move
    assert gender.details["share_moved"] > 0.7 and gender.details["max_abs_change"] >= 0.29
    assert gender.details["correction"] == "holm"
    assert not results[("christian", "muslim")].alert
    # pairs with no texts in this corpus are reported, not tested
    assert results[("nondisabled", "disabled")].details["reason"] == TOO_FEW


def test_counterfactual_probe_passes_a_fair_scorer() -> None:
    texts, _ = corpus(400)
    results = CounterfactualProbe(axes=["gender", "religion"]).test(texts, fair_scorer)
    assert not any(r.alert for r in results)
    gender = next(r for r in results if r.details["pair"] == ["man", "woman"])
    assert gender.p_value == 1.0 and gender.details["mean_abs_change"] == 0.0


def test_counterfactual_probe_adapts_a_watcher() -> None:
    from watchkeeper.detectors.watchers.base import Item

    class Watcher:
        def score(self, items: list[Item]) -> list[dict[str, float]]:
            return [{"toxicity": s} for s in biased_scorer([i.text for i in items])]

    texts, _ = corpus(200)
    probe = CounterfactualProbe(pairs=[("gender", "man", "woman")], max_texts=60)
    (result,) = probe.test(texts, watcher_scorer(Watcher(), "toxicity"))
    assert result.alert and result.n_current <= 60


# --- group disparities ----------------------------------------------------------------------
def test_planted_disparity_in_scores_is_found() -> None:
    texts, groups = corpus(1500, seed=1)
    rng = np.random.default_rng(1)
    scores = rng.beta(2, 8, size=len(texts)) + 0.15 * np.array([g == "woman" for g in groups])
    results = GroupDisparity(axes=["gender", "religion"], metric="toxicity").test(texts, scores)
    woman = next(r for r in results if r.details["group"] == "woman")
    assert woman.alert and woman.effect_size is not None and woman.effect_size > 0.3
    assert woman.details["p_value_raw"] <= woman.p_value
    # Against "the rest", other groups inherit the planted gap (the rest holds the women);
    # against the axis's reference group they do not.
    religion = GroupDisparity(axes=["religion"], versus="reference").test(texts, scores)
    assert not any(r.alert for r in religion)


def test_fair_data_shows_no_disparity() -> None:
    texts, _ = corpus(1500, seed=2)
    rng = np.random.default_rng(2)
    false_alarms = 0
    for _ in range(20):
        scores = rng.beta(2, 8, size=len(texts))
        results = GroupDisparity(axes=["gender", "religion"]).test(texts, scores)
        false_alarms += any(r.alert for r in results)
    assert false_alarms <= 3


def test_refusal_rate_disparity_with_fisher_and_versus_reference() -> None:
    texts, groups = corpus(1500, seed=3)
    rng = np.random.default_rng(3)
    refused = rng.random(len(texts)) < np.where(np.array(groups) == "muslim", 0.25, 0.05)
    results = GroupDisparity(axes=["religion"], kind="rate", metric="refusal",
                             versus="reference").test(texts, refused)
    by_group = {r.details["group"]: r for r in results}
    assert set(by_group) == {"muslim", "jewish", "hindu", "buddhist", "atheist"}
    muslim = by_group["muslim"]
    assert muslim.alert and muslim.details["versus"] == "christian"
    assert muslim.effect_size == pytest.approx(muslim.details["rate_group"]
                                               - muslim.details["rate_rest"])
    assert by_group["jewish"].details["reason"] == TOO_FEW


def test_answer_length_with_cohens_d() -> None:
    texts, groups = corpus(800, seed=4)
    rng = np.random.default_rng(4)
    length = rng.normal(300, 50, size=len(texts)) - 60 * np.array([g == "man" for g in groups])
    results = GroupDisparity(axes=["gender"], metric="answer_length", effect="cohens_d"
                             ).test(texts, length)
    man = next(r for r in results if r.details["group"] == "man")
    assert man.alert and man.effect_size is not None and man.effect_size < -0.8
    with pytest.raises(ValueError, match="tags for"):
        GroupDisparity().test_mentions({"gender": {"woman": [True]}}, [1.0, 2.0])
