"""Text normalisation and rules for the prompt-injection watcher (`prompt_injection.py`).

`views(text)` returns the forms of a text worth scoring: the text folded (NFKC, so fullwidth
letters become ASCII; look-alike Cyrillic and Greek letters mapped to Latin; zero-width and
soft-hyphen characters removed; letters spaced apart rejoined; runs of one repeated token
collapsed; accents stripped; lower case), plus what hides inside it: base64 segments that decode
to text, the rot13 reading when it reads as words, and leetspeak tokens read as letters.

`rule_score(text)` is the strongest known pattern in a folded view (0 when none): instruction
override, role hijack and jailbreak personas, system-prompt extraction, in English, German,
French, Spanish, Italian, Portuguese, Dutch, Polish and Turkish. A match inside quotes ("what
does 'ignore previous instructions' mean?") counts for less: it is talked about, not given.

Pure Python (re, unicodedata, base64, codecs): no model, no third-party library.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata

ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063"
                                    "\u2064\ufeff\u00ad\u180e"), None)
# Cyrillic and Greek letters that look like Latin ones (the common confusables, lower case
# after casefold), and the dotless i
CONFUSABLES = str.maketrans({
    "\u0430": "a", "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0443": "y",
    "\u0445": "x", "\u0456": "i", "\u0458": "j", "\u0455": "s", "\u0501": "d", "\u0261": "g",
    "\u04bb": "h", "\u04cf": "l", "\u051b": "q", "\u051d": "w", "\u03bd": "v", "\u03bf": "o",
    "\u03b1": "a", "\u03b5": "e", "\u03b9": "i", "\u03ba": "k", "\u03c1": "p", "\u03c4": "t",
    "\u03c5": "u", "\u03c7": "x", "\u0131": "i", "\u2113": "l", "\u00df": "ss",
})
LEET = str.maketrans({"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t", "@": "a",
                      "$": "s", "!": "i"})
_SPACED = re.compile(r"(?<![^\W\d_])(?:[^\W\d_][ .\-_*]){2,}[^\W\d_](?![^\W\d_])")
_REPEAT = re.compile(r"\b(\w+)(?:\W+\1\b){3,}")
_B64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
_LEET_TOKEN = re.compile(r"\b(?=\w*[a-z])(?=\w*[013457])[a-z013457@$]{2,}\b")
_WS = re.compile(r"\s+")
_WORDS = frozenset({
    "the", "and", "you", "your", "all", "to", "of", "is", "are", "a", "in", "for", "this",
    "that", "with", "ignore", "instructions", "now", "previous", "please", "what", "me", "my",
    "it", "be", "not", "from",
})


def fold(text: str) -> str:
    """The canonical form that rules and the model read."""
    text = unicodedata.normalize("NFKC", text).translate(ZERO_WIDTH).casefold()
    text = text.translate(CONFUSABLES)
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(ch))
    if _SPACED.search(text):  # "i g n o r e   a l l": gaps of 2+ spaces are word breaks
        text = re.sub(r" {2,}", "\x00", text)
        text = _SPACED.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group(0)), text)
        text = text.replace("\x00", " ")
    text = _REPEAT.sub(r"\1", text)
    return _WS.sub(" ", text).strip()


def _wordiness(text: str) -> float:
    words = re.findall(r"[a-z]+", text.lower())
    return sum(w in _WORDS for w in words) / len(words) if words else 0.0


def _decoded_base64(text: str) -> list[str]:
    out = []
    for match in _B64.finditer(text):
        chunk = match.group(0)
        try:
            raw = base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=True)
            decoded = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        printable = sum(ch.isprintable() or ch.isspace() for ch in decoded)
        if len(decoded) >= 8 and printable / len(decoded) > 0.95 and " " in decoded:
            out.append(decoded)
    return out


def views(text: str) -> list[str]:
    """The folded text, then any hidden readings of it (each folded)."""
    folded = fold(text)
    out = [folded]
    out += [fold(d) for d in _decoded_base64(text)]
    for part in re.split(r"[:\n]", folded):  # "apply rot13: <rot13 text>"
        if re.search(r"[a-z]{3,}", part):
            rot = codecs.decode(part, "rot13")
            if _wordiness(rot) > max(0.12, 2 * _wordiness(part)):
                out.append(rot)
    if len(_LEET_TOKEN.findall(folded)) >= 2:
        out.append(_LEET_TOKEN.sub(lambda m: m.group(0).translate(LEET), folded))
    return out


# --- rules ---------------------------------------------------------------------------------------
_INSTR = (r"(?:instructions?|directions?|directives?|rules?|guidelines?|prompts?|tasks?|"
          r"polic(?:y|ies)|programming|constraints?|restrictions?|commands?|orders?|"
          r"configuration|guardrails?|safety settings?)")
_PRIOR = r"(?:previous|prior|above|earlier|preceding|initial|original|old|system|developer'?s?)"
_VERB = r"(?:ignore|disregard|forget|skip|override|bypass|drop|discard|abandon|neglect)"
RULES: list[tuple[str, float, re.Pattern[str]]] = [(name, weight, re.compile(pattern)) for
                                                   name, weight, pattern in [
    # --- instruction override (en)
    ("override", 0.95, rf"\b{_VERB}\w*\b(?: (?:all|any|every|of|the|your|my|these|those|"
                       rf"everything|what|that|you were|were)){{0,4}}(?: \w+)?? {_PRIOR}"
                       rf"(?: \w+){{0,2}} {_INSTR}"),
    ("override", 0.9, rf"\b{_VERB}\w* (?:all |any )?(?:your |the )?{_INSTR}\b"),
    ("override", 0.9, r"\b(?:forget|ignore|disregard) (?:all |about )?(?:everything|all) "
                      r"(?:you (?:were|have been|'ve been) told|above|before|previously|"
                      r"prior)"),
    ("override", 0.9, rf"\b{_INSTR} (?:above|before|so far|until now) (?:no longer|don'?t|do "
                      r"not|are (?:cancel|void|obsolete|outdated))"),
    ("override", 0.85, r"\b(?:the )?(?:rules|instructions|guidelines) above no longer apply"),
    ("override", 0.85, r"\b(?:new|updated|real|actual) (?:instructions?|task|rules|orders)\s*:"),
    ("override", 0.8, r"\byour (?:new|real|only|actual) (?:task|job|goal|instruction|purpose)"
                      r" (?:is|:)"),
    ("override", 0.8, rf"\b(?:{_PRIOR}) {_INSTR} (?:were|are) (?:wrong|a test|fake|outdated|"
                      r"cancel)"),
    ("override", 0.85, r"(?:^|\W)(?:#+ ?|<\|?|\[)(?:system|admin|developer)(?:\|?>|\]|:)"),
    ("override", 0.8, r"\b(?:note|message|instructions?) (?:to|for) (?:any |the )?(?:ai|llm|"
                      r"language model|assistant|chatbot|model)\b"),
    ("override", 0.8, r"\b(?:if you are|attention|hey) (?:an? )?(?:ai|llm|language model|"
                      r"assistant)\b.{0,40}\b(?:must|should|ignore|disregard|stop|now)"),
    ("override", 0.75, r"\b(?:ai|llm|assistant|model)\s*[:,]\s*(?:ignore|disregard|forget|"
                       r"stop|do not)"),
    ("override", 0.85, r"\b(?:ai|assistant|model|llm|chatbot|bot)\b,? (?:when|if|once|as "
                       r"soon as) you (?:read|see|process|parse|find) this"),
    ("override", 0.85, r"\bnever ?mind (?:what|the) (?:the )?(?:system|previous|instructions|"
                       r"rules|developer)"),
    ("override", 0.85, r"\bgelten (?:die )?(?:obigen|bisherigen|vorherigen) (?:regeln|"
                       r"anweisungen) nicht"),
    ("extraction", 0.85, r"\b(?:text|texte|texto|testo|tekst)\b.{0,30}\b(?:uber|au-dessus|"
                         r"encima|sopra|acima|boven|powyzej) (?:dieser|de ce|de este|questo|"
                         r"desta|dit|tego)"),
    ("extraction", 0.85, r"\b(?:beginnend mit|en commencant par|empezando por|comenzando "
                         r"(?:con|por)|iniziando con|comecando com) ['\"]?(?:du bist|tu es|"
                         r"eres|sei|voce e)"),
    ("override", 0.75, r"\bstop\W+(?:the )?(?:rules|instructions|everything) (?:above|before)"),
    ("override", 0.8, r"\b(?:ignore|disregard|violate|bypass) (?:your |the |all |any )?"
                      r"(?:content|safety|ethical|openai|moral) (?:polic|guideline|rule|filter)"),
    # --- role hijack and jailbreak personas
    ("role_hijack", 0.95, r"\bdo anything now\b"),
    ("role_hijack", 0.9, r"\b(?:you are|you're|act as|become|call you|called|named|pretend to "
                         r"be|are now|bist|es|eres|sei|e|je|ben je|jestes|sind)"
                         r"(?: now| jetzt| maintenant| ahora| ora| agora| nu| teraz| du)? "
                         r"(?:dan|stan|aim|dude|evilbot|betterdan|freedomgpt|devmode)\b"),
    ("role_hijack", 0.9, r"\b(?:developer|god|jailbreak|jailbroken|dan|unrestricted|evil) "
                         r"mode\b.{0,80}\b(?:ignor|polic|restrict|unfilter|any content|"
                         r"no limit|generate|output|enabled? (?:it|now)|answer)"),
    ("role_hijack", 0.9, r"\b(?:enable|activate|enter|switch to|in) (?:developer|jailbreak|"
                         r"god|dan) mode\b.{0,60}\b(?:ignor|polic|restrict|any|content)"),
    ("role_hijack", 0.85, r"\bjailbr(?:eak|oken)\b.{0,60}\b(?:mode|assistant|ai|now|do not "
                          r"refuse|never refuse|no restrictions)\b"),
    ("role_hijack", 0.9, r"\b(?:no|without(?: any)?|free from(?: all)?|freed from(?: all)?|"
                         r"ignores? all|has no|have no|with no) (?:ethical |moral |safety |"
                         r"content )?(?:restrictions|filters?|limits|limitations|rules|"
                         r"guidelines|censorship|boundaries)\b.{0,80}\b(?:answer|respond|refus|"
                         r"comply|ai|assistant|chatbot|model|output|command|question|you)"),
    ("role_hijack", 0.9, r"\b(?:unrestricted|unfiltered|uncensored|amoral|unethical|evil|"
                         r"unlimited) (?:ai|assistant|model|chatbot|bot|version|llm)\b"),
    ("role_hijack", 0.85, r"\b(?:never|don'?t|do not|won'?t|will not|cannot) (?:ever )?refuse"
                          r"\b"),
    ("role_hijack", 0.8, r"\bstay in character\b.{0,60}\b(?:no matter|whatever|always)"),
    ("role_hijack", 0.85, r"\b(?:disabled|turned off|removed|deactivated|lifted) (?:all )?"
                          r"(?:your|the) (?:safety|content|ethical) (?:settings|filters?|"
                          r"guidelines|restrictions)"),
    ("role_hijack", 0.75, r"\bno (?:longer )?(?:an? )?(?:assistant|bound by|subject to)\b"),
    ("role_hijack", 0.7, r"\bdeceased grandmother\b|\bgrandma exploit\b"),
    ("role_hijack", 0.75, r"\b(?:version|upgraded)\b.{0,40}\bno (?:content )?restrictions"),
    # --- system-prompt extraction
    ("extraction", 0.9, r"\b(?:print|reveal|show|output|repeat|tell|display|dump|give|share|"
                        r"leak|write|quote|translate|spell|list|provide|what (?:is|are|were)|"
                        r"summari[sz]e)\b(?: me| us)?(?: all| out)?(?: of)? (?:your|the "
                        r"(?:system|hidden|secret|initial|original|confidential|developer)"
                        r"|my)(?: full| entire| exact| complete| initial| hidden| secret| "
                        r"original| confidential| first| internal| previous)* (?:system "
                        r"(?:prompt|message|instructions)|prompts?|pre-?prompt|instructions|"
                        r"prompt texts?|rules|guidelines|configuration|directives)\b"),
    ("extraction", 0.9, r"\b(?:repeat|print|output|copy|quote|show)\b.{0,30}\b(?:words|text|"
                        r"everything|all|message|lines?) (?:above|before (?:this|the|my)|"
                        r"preceding|that (?:precede|came before))"),
    ("extraction", 0.9, r"\b(?:system prompt|system message|initial prompt|hidden "
                        r"instructions|secret instructions)\b.{0,40}\b(?:verbatim|word for "
                        r"word|exactly|in full|code block)"),
    ("extraction", 0.85, r"\b(?:what|who) (?:were|was|are) you (?:told|given|instructed|"
                         r"programmed)\b"),
    ("extraction", 0.85, r"\b(?:confidential|secret|hidden) (?:text|instructions|rules|"
                         r"prompt)\b.{0,40}\b(?:precede|before|above|given|conversation)"),
    ("extraction", 0.85, r"\bstarting with (?:the phrase |the words )?['\"]?(?:you are|du "
                         r"bist|tu es|eres)"),
    # --- German
    ("override", 0.95, r"\bignorier\w* (?:\w+ ){0,3}(?:anweisungen|instruktionen|regeln|"
                       r"aufgaben|befehle|vorgaben|richtlinien)"),
    ("override", 0.9, r"\bvergiss (?:alles|alle|deine|die|jegliche)\b.{0,60}\b(?:anweisung|"
                      r"aufgabe|regel|gesagt|vorgabe|befehl)"),
    ("override", 0.85, r"\b(?:obigen|bisherigen|vorherigen) regeln gelten nicht"),
    ("override", 0.85, r"\b(?:deine )?neue aufgabe\s*(?:ist|:)"),
    ("extraction", 0.9, r"\b(?:zeig\w*|gib|nenne?|verrate|wiederhol\w*) (?:\w+ ){0,3}"
                        r"(?:systemprompt|system-prompt|prompt-texte|prompts|anweisungen|"
                        r"vorgaben)\b"),
    ("extraction", 0.85, r"\b(?:deine|die) (?:geheimen|versteckten|internen) (?:anweisungen|"
                         r"regeln)"),
    ("role_hijack", 0.85, r"\b(?:keine|ohne) (?:\w+ )?(?:einschrankungen|sicherheitsrichtlinien"
                          r"|filter|regeln)\b.{0,60}\b(?:beantworte|antworte|erklare|"
                          r"schreib|hast|bist)"),
    ("role_hijack", 0.85, r"\btu so,? als (?:hattest|warst|seist) du\b.{0,40}\b(?:keine|ohne)"),
    # --- French
    ("override", 0.95, r"\bignore[rz]? (?:\w+ ){0,3}(?:instructions|consignes|regles|"
                       r"directives)\b"),
    ("override", 0.9, r"\boublie[rz]? (?:tout|toutes|tes|vos|les)\b.{0,60}\b(?:dit|instruction|"
                      r"consigne|regle|avant|precedent)"),
    ("override", 0.9, r"\bne (?:tiens|tenez) pas compte (?:des|de tes|de vos) (?:consignes|"
                      r"instructions|regles)"),
    ("override", 0.85, r"\b(?:les )?regles ci-dessus ne s'appliquent plus"),
    ("extraction", 0.9, r"\b(?:affiche|montre|revele|repete|donne|dis)[- ]?(?:moi )?(?:ton|tes|"
                        r"vos|votre|le|les) (?:prompt|instructions|consignes|regles)"),
    ("role_hijack", 0.85, r"\b(?:aucune|sans) (?:\w+ )?(?:restriction|filtre|regle)s?\b.{0,60}"
                          r"\b(?:reponds|ia|explique|ecris)"),
    ("role_hijack", 0.85, r"\bfais comme si tu n'avais\b"),
    # --- Spanish
    ("override", 0.95, r"\bignora\w* (?:\w+ ){0,3}(?:instrucciones|indicaciones|reglas|"
                       r"directrices|ordenes)\b"),
    ("override", 0.9, r"\bolvida (?:todo|todas|tus|las)\b.{0,60}\b(?:dijeron|instruccion|"
                      r"regla|indicacion|antes|anterior)"),
    ("override", 0.9, r"\bno hagas caso (?:a|de) (?:las|tus) (?:indicaciones|instrucciones|"
                      r"reglas)"),
    ("override", 0.85, r"\blas reglas anteriores ya no se aplican"),
    ("extraction", 0.9, r"\b(?:muestra|revela|repite|dime|dame)(?:me)? (?:tu|tus|el|las) "
                        r"(?:prompt|instrucciones|indicaciones|reglas)"),
    ("role_hijack", 0.85, r"\b(?:sin|ninguna) (?:\w+ )?(?:restriccion|restricciones|filtros?|"
                          r"normas|reglas)\b.{0,60}\b(?:responde|ia|explica|escribe)"),
    ("role_hijack", 0.85, r"\bfinge que no tienes\b"),
    # --- Italian, Portuguese, Dutch, Polish, Turkish
    ("override", 0.95, r"\bignora (?:\w+ ){0,2}istruzioni\b|\bdimentica tutto\b"),
    ("extraction", 0.85, r"\bistruzioni (?:nascoste|segrete)\b|\bprompt di sistema\b"),
    ("role_hijack", 0.85, r"\bnessuna restrizione\b|\bfai finta di non avere\b"),
    ("override", 0.95, r"\bignore (?:\w+ ){0,2}instrucoes\b|\besqueca tudo\b"),
    ("extraction", 0.85, r"\binstrucoes secretas\b|\bprompt de sistema\b"),
    ("role_hijack", 0.85, r"\bnenhuma restricao\b|\bfinja que nao tem\b"),
    ("override", 0.95, r"\bnegeer (?:\w+ ){0,2}instructies\b|\bvergeet alles\b"),
    ("extraction", 0.85, r"\bgeheime instructies\b|\bsysteemprompt\b"),
    ("role_hijack", 0.85, r"\bzonder (?:enige )?beperkingen\b"),
    ("override", 0.95, r"\bzignoruj (?:\w+ ){0,2}instrukcje\b|\bzapomnij o wszystkim\b"),
    ("extraction", 0.85, r"\bprompt systemowy\b"),
    ("role_hijack", 0.85, r"\bbez zadnych ograniczen\b"),
    ("override", 0.95, r"\btalimatlari yok say\b|\bher seyi unut\b"),
    ("extraction", 0.85, r"\bsistem komutunu\b"),
]]
_QUOTES = "'\"\u2018\u2019\u201c\u201d\u00ab\u00bb`"


def rule_hits(text: str) -> list[tuple[str, float]]:
    """(family, weight) of every rule that matches the folded text, quoted matches halved."""
    hits = []
    for family, weight, pattern in RULES:
        match = pattern.search(text)
        if match is None:
            continue
        before = text[max(0, match.start() - 2):match.start()]
        quoted = any(q in before for q in _QUOTES)
        hits.append((family, weight * (0.45 if quoted else 1.0)))
    return hits


def rule_score(text: str) -> float:
    """The strongest rule's weight over the views of a raw text (0 when none matches)."""
    return max((w for view in views(text) for _, w in rule_hits(view)), default=0.0)


def repetition_flood(text: str) -> bool:
    """One token repeated 15+ times in a row: a flood meant to push instructions out of view."""
    return re.search(r"\b(\w+)(?:\W+\1\b){14,}", text.casefold()) is not None
