"""The lexicon of groups: which words say that a text is about a group of people, and which
word of one group answers to which word of another for counterfactual swaps.

An axis (gender, religion, ...) has groups (woman, man, nonbinary) with tagging terms, and
`forms`: rows of aligned words ({woman: "she", man: "he"}) that a swap exchanges. A group's
tagging terms are its own terms plus its words in `forms`, except the axis's `untagged` words:
ambiguous ones ("white", "old", "straight") that a swap exchanges but that do not, alone, say
a text is about people. Matching is whole-word and case-insensitive; multi-word terms match
across any whitespace. The default is a starting point for English; callers load their own
from a dict or YAML (`Lexicon.model_validate(yaml.safe_load(...))`) and can extend it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache, cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Axis(BaseModel):
    """One axis of identity: its groups' terms and the aligned forms swaps exchange."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    groups: dict[str, list[str]] = Field(description="group -> extra tagging terms")
    forms: list[dict[str, str]] = Field(
        default_factory=list, description="aligned words; a word repeated in rows of one group "
        "is ambiguous (her -> his / him): the first row is read before a noun")
    untagged: list[str] = Field(default_factory=list,
                                description="swapped, but too ambiguous to tag a text")
    reference: str | None = Field(default=None, description="group to compare others with")

    @model_validator(mode="after")
    def _known_groups(self) -> Axis:
        for row in self.forms:
            unknown = set(row) - set(self.groups)
            if unknown:
                raise ValueError(f"forms row {row} names unknown groups {sorted(unknown)}")
        if self.reference is not None and self.reference not in self.groups:
            raise ValueError(f"reference group {self.reference!r} is not a group")
        return self

    def terms(self, group: str) -> list[str]:
        """The tagging terms of a group, lower case, without the untagged words."""
        untagged = {u.lower() for u in self.untagged}
        words = [*self.groups[group], *(row[group] for row in self.forms if group in row)]
        return sorted({w.lower() for w in words} - untagged)


class Lexicon(BaseModel):
    """Axes of identity by name. `tag` says which groups a text mentions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    axes: dict[str, Axis]

    @classmethod
    def default(cls) -> Lexicon:
        """The built-in lexicon (one shared instance: it is frozen, its regexes compiled once)."""
        return _default()

    def merged(self, extra: dict[str, Any]) -> Lexicon:
        """This lexicon with axes added or replaced from a dict of the same shape."""
        return Lexicon.model_validate({"axes": {
            **{k: v.model_dump() for k, v in self.axes.items()}, **extra.get("axes", {})}})

    @cached_property
    def _patterns(self) -> dict[str, tuple[re.Pattern[str], dict[str, list[str]]]]:
        """Per axis: one regex of every term, and term -> groups (a term may tag several)."""
        out = {}
        for name, axis in self.axes.items():
            owners: dict[str, list[str]] = {}
            for group in axis.groups:
                for term in axis.terms(group):
                    owners.setdefault(normal(term), []).append(group)
            out[name] = (word_pattern(owners), owners)
        return out

    def tag(self, text: str, axes: Iterable[str] | None = None) -> dict[str, list[str]]:
        """{axis: [groups mentioned]} for the axes with any mention."""
        found: dict[str, list[str]] = {}
        for name in axes or self.axes:
            pattern, owners = self._patterns[name]
            groups = {g for m in pattern.finditer(text) for g in owners[normal(m.group(0))]}
            if groups:
                found[name] = sorted(groups)
        return found

    def mentions(self, texts: Sequence[str], axis: str) -> dict[str, list[bool]]:
        """{group: [text mentions it]} for one axis, over many texts."""
        if axis not in self.axes:
            raise KeyError(f"unknown axis {axis!r} (known: {', '.join(self.axes)})")
        tagged = [set(self.tag(t, [axis]).get(axis, ())) for t in texts]
        return {group: [group in t for t in tagged] for group in self.axes[axis].groups}


@cache
def _default() -> Lexicon:
    return Lexicon.model_validate(DEFAULT)


def normal(term: str) -> str:
    """Lower case with single spaces: how matched text is looked up."""
    return " ".join(term.lower().split())


def word_pattern(terms: Iterable[str]) -> re.Pattern[str]:
    """Whole-word, case-insensitive alternation; longest terms first ("black women" before
    "black"); multi-word terms match across any whitespace."""
    parts = [r"\s+".join(map(re.escape, t.split())) for t in sorted(terms, key=len, reverse=True)]
    if not parts:
        return re.compile(r"(?!x)x")
    return re.compile(r"(?<![\w-])(?:" + "|".join(parts) + r")(?![\w-])", re.IGNORECASE)


def _rows(groups: Sequence[str], *rows: Sequence[str]) -> list[dict[str, str]]:
    """Aligned rows written compactly: one word per group, "" where a group has none."""
    return [{g: w for g, w in zip(groups, row, strict=True) if w} for row in rows]


_GENDER = ("woman", "man")
_RACE = ("black", "white", "asian", "hispanic", "arab", "indigenous")
_RELIGION = ("muslim", "christian", "jewish", "hindu", "buddhist", "atheist")
_AGE = ("young", "old")
_ORIENTATION = ("gay", "lesbian", "bisexual", "straight")
_NATION = ("american", "mexican", "chinese", "indian", "russian", "british", "german",
           "nigerian", "french", "brazilian")
_PEOPLE_NOUNS = ("people", "person", "man", "woman", "men", "women", "guy", "girl", "boy",
                 "kid", "kids", "family", "community")

DEFAULT: dict[str, Any] = {"axes": {
    "gender": {
        "groups": {"woman": ["feminine"], "man": ["masculine"],
                   "nonbinary": ["nonbinary", "non-binary", "genderqueer", "enby",
                                 "nonbinary person", "non-binary person", "nonbinary people"]},
        "forms": _rows(
            _GENDER, ("woman", "man"), ("women", "men"), ("she", "he"), ("her", "his"),
            ("her", "him"), ("hers", "his"), ("herself", "himself"), ("female", "male"),
            ("females", "males"), ("girl", "boy"), ("girls", "boys"), ("mother", "father"),
            ("mothers", "fathers"), ("mom", "dad"), ("moms", "dads"), ("wife", "husband"),
            ("wives", "husbands"), ("daughter", "son"), ("daughters", "sons"),
            ("sister", "brother"), ("sisters", "brothers"), ("aunt", "uncle"),
            ("niece", "nephew"), ("grandmother", "grandfather"), ("queen", "king"),
            ("lady", "gentleman"), ("ladies", "gentlemen"), ("girlfriend", "boyfriend"),
            ("actress", "actor"), ("waitress", "waiter"), ("mrs", "mr"), ("ms", "mr"),
            ("gal", "guy"), ("gals", "guys")),
        "untagged": ["guy", "guys"], "reference": "man"},
    "race_ethnicity": {
        "groups": {"black": ["african american", "african americans", "african-american"],
                   "white": ["caucasian", "caucasians"], "asian": ["asian american"],
                   "hispanic": ["latino", "latina", "latinos", "latinas", "latinx"],
                   "arab": ["middle eastern"],
                   "indigenous": ["native american", "native americans", "aboriginal"]},
        "forms": [*_rows(_RACE, ("black", "white", "asian", "hispanic", "arab", "indigenous"),
                         ("blacks", "whites", "asians", "hispanics", "arabs", "")),
                  *_rows(_RACE, *(tuple(f"{r} {noun}" for r in _RACE)
                                  for noun in _PEOPLE_NOUNS))],
        "untagged": ["black", "white"], "reference": "white"},
    "religion": {
        "groups": {"muslim": ["mosque"], "christian": ["church"], "jewish": ["jew", "jews",
                                                                            "synagogue"],
                   "hindu": [], "buddhist": [], "atheist": []},
        "forms": _rows(_RELIGION, _RELIGION, ("muslims", "christians", "jews", "hindus",
                                              "buddhists", "atheists"),
                       ("islam", "christianity", "judaism", "hinduism", "buddhism", "atheism"),
                       ("quran", "bible", "torah", "", "", ""),
                       ("imam", "priest", "rabbi", "", "monk", "")),
        "reference": "christian"},
    "age": {
        "groups": {"young": ["teenager", "teenagers", "teen", "teens", "millennial",
                             "millennials", "youth"],
                   "old": ["elderly", "senior citizen", "senior citizens", "retiree",
                           "retirees", "pensioner", "pensioners", "boomer", "boomers"]},
        "forms": [*_rows(_AGE, ("young", "old"), ("younger", "older"),
                         ("teenager", "retiree"), ("teenagers", "retirees")),
                  *_rows(_AGE, *((f"young {n}", f"old {n}") for n in _PEOPLE_NOUNS))],
        "untagged": ["young", "old", "younger", "older"], "reference": "young"},
    "disability": {
        "groups": {"disabled": ["disability", "disabilities", "handicapped", "wheelchair",
                                "blind", "deaf", "autistic", "autism", "paralyzed",
                                "mentally ill", "mental illness", "amputee"],
                   "nondisabled": ["able-bodied"]},
        "forms": _rows(("disabled", "nondisabled"), ("disabled", "non-disabled"),
                       ("person with a disability", "person without a disability"),
                       ("people with disabilities", "people without disabilities")),
        "reference": "nondisabled"},
    "sexual_orientation": {
        "groups": {"gay": ["homosexual", "homosexuals", "gays"], "lesbian": ["lesbians"],
                   "bisexual": ["bisexuals"], "straight": ["heterosexual", "heterosexuals"],
                   "queer": ["queer", "lgbt", "lgbtq"]},
        "forms": [*_rows(_ORIENTATION, ("gay", "lesbian", "bisexual", "straight"),
                         ("homosexual", "", "", "heterosexual")),
                  *_rows(_ORIENTATION, *(tuple(f"{o} {n}" for o in _ORIENTATION)
                                         for n in (*_PEOPLE_NOUNS, "couple", "couples")))],
        "untagged": ["straight"], "reference": "straight"},
    "nationality": {
        "groups": {n: [] for n in _NATION},
        "forms": _rows(_NATION, _NATION,
                       ("americans", "mexicans", "", "indians", "russians", "brits", "germans",
                        "nigerians", "", "brazilians"),
                       ("america", "mexico", "china", "india", "russia", "britain", "germany",
                        "nigeria", "france", "brazil")),
        "reference": "american"},
}}
