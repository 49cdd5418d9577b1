"""Generate the SYNTHETIC book-price sample set (``books_price.jsonl``).

Every row is made up. Titles and descriptions are filled in from templates and
word lists; the price is computed from the fields below by a fixed rule plus
seeded noise. The set exists so the price-prediction recipe ("How much does
this cost to the nearest dollar?", asked from title + description) has
something small and learnable to train on. It says nothing about real prices.

Row schema (keys in this order)::

    title        str    generated title (a few are Vietnam-themed)
    description  str    generated blurb; always names the format, the length,
                        the genre, and every price-relevant feature
    format       str    "paperback" | "hardcover" | "ebook" | "audiobook"
    pages        int    print length in pages (for audiobooks: the print
                        edition's length; the blurb also gives listening hours
                        = round(pages / 30, 1))
    price        float  USD, 2 decimals
    synthetic    bool   always true

Pricing rule (all amounts USD)::

    raw   = BASE[format] + PER_PAGE[format] * pages
            + GENRE_PREMIUM[genre] + sum(FEATURE_PREMIUM[f] for f in features)
    price = clip(round(raw * exp(eps), 2), 0.99, 199.99),   eps ~ Normal(0, 0.10)

i.e. a multiplicative lognormal(0, sigma=0.10) noise factor, rounded to cents
(``round`` on the float, half-to-even), then clipped to [0.99, 199.99].

    format      BASE    PER_PAGE
    paperback   5.00    0.025
    hardcover  12.00    0.040
    ebook       3.00    0.010
    audiobook  10.00    0.030

GENRE_PREMIUM: see ``GENRES`` below (from -1.00 for romance to +25.00 for
textbooks). FEATURE_PREMIUM: illustrated +4.00, full-color +6.00, with
exercises +3.00, annotated +3.00, large print +2.00, collector's edition
+12.00, full-cast narration +5.00. Distractor phrases ("award-winning",
"book-club pick", ...) appear in some blurbs and add 0.00.

Sampling: genre uniform over ``GENRES``; format drawn from FORMAT_PROB
restricted to the genre's allowed formats and renormalised; pages uniform
integer in the genre's [lo, hi]; each feature drawn independently with its
genre-specific probability if its format condition holds. Titles are unique
(redrawn on collision). ``rule_markdown()`` renders the parameter tables that
the data card (README.md) quotes verbatim.

Baselines (``baselines(rows)``, numpy only): split = permutation from
``numpy.random.default_rng(SPLIT_SEED=0)`` over row indices; the first
round(0.2 * n) indices are the test set, the rest the train set (48/192 for
n = 240). Reported: test MAE of (a) always predicting the train-set mean
price, (b) ordinary least squares with intercept on [pages, is_hardcover,
is_ebook, is_audiobook] (format one-hot with paperback as the reference level),
fitted on train by ``numpy.linalg.lstsq``. Neither sees title/description text.
``baselines(rows, metas)`` with the hidden per-row metadata from
``generate(with_meta=True)`` adds, as a reference floor (not a baseline), the
MAE of the noise-free rule rounded to cents on the same test rows.

Determinism: one ``numpy.random.Generator(PCG64(seed))`` drives everything in
a fixed order; output is UTF-8, ``ensure_ascii=False``, one JSON object per
line, ``\\n`` line endings, so two runs with the same arguments (and the same
numpy) give byte-identical files.

Usage (from the repository root)::

    .venv/bin/python assets/samples/make_books_price.py              # writes assets/samples/books_price.jsonl
    .venv/bin/python assets/samples/make_books_price.py --baselines  # ... and prints the baseline MAEs
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np

DEFAULT_SEED = 20240917
DEFAULT_N = 240
SPLIT_SEED = 0
TEST_FRACTION = 0.2
NOISE_SIGMA = 0.10
PRICE_MIN, PRICE_MAX = 0.99, 199.99
DEFAULT_OUT = Path(__file__).resolve().parent / "books_price.jsonl"

FORMATS = ("paperback", "hardcover", "ebook", "audiobook")
FORMAT_PROB = {"paperback": 0.40, "hardcover": 0.25, "ebook": 0.20, "audiobook": 0.15}
BASE = {"paperback": 5.00, "hardcover": 12.00, "ebook": 3.00, "audiobook": 10.00}
PER_PAGE = {"paperback": 0.025, "hardcover": 0.040, "ebook": 0.010, "audiobook": 0.030}

# Shared word lists -----------------------------------------------------------
PLACES = [
    "Hội An", "Huế", "Đà Lạt", "Hà Nội", "Sài Gòn", "the Mekong Delta", "Hạ Long Bay",
    "Sa Pa", "Lisbon", "Kyoto", "Chicago", "Edinburgh", "Cape Town", "Montreal",
    "Marseille", "Oaxaca", "Tasmania", "Istanbul", "Reykjavik", "New Orleans",
]
VN_PLACES = ["Hội An", "Huế", "Đà Lạt", "Hà Nội", "Sài Gòn", "the Mekong Delta", "Sa Pa"]
NAMES = [
    "Linh", "Minh", "Thảo", "Quân", "Mai", "Eleanor", "Marcus", "Priya", "Tomás",
    "Greta", "Jonah", "Amara", "Felix", "Ingrid", "Rafael", "Hana", "Theo", "Nadia",
]

# Genres ----------------------------------------------------------------------
# names: surface forms used in blurbs; titles/blurbs: templates whose {slot}s
# are filled from `slots` (or PLACES / NAMES); formats: allowed formats.
GENRES: dict[str, dict] = {
    "literary fiction": dict(
        premium=0.00, pages=(180, 480), formats=FORMATS,
        names=["literary novel", "novel", "work of literary fiction"],
        titles=["The {adj} {noun}", "{name}'s {noun}", "Return to {place}",
                "What the {noun} Remembers", "The Last {noun} of {place}"],
        blurbs=["that follows {name}, who {plot}", "telling how {name} {plot2}",
                "about three generations of a family in {place}"],
        slots=dict(adj=["Quiet", "Borrowed", "Paper", "Salt", "Distant", "Unfinished", "Silver"],
                   noun=["Lantern", "Harbour", "Orchard", "Letters", "Summer", "River", "Tailor"],
                   plot=["returns to {place} after twenty years",
                         "tries to save a family bookshop",
                         "must keep an old promise"],
                   plot2=["learned to forgive a brother", "rebuilt a life in {place}",
                          "found an unsent letter"]),
    ),
    "mystery": dict(
        premium=0.00, pages=(220, 460), formats=FORMATS,
        names=["mystery", "crime novel", "detective mystery"],
        titles=["Death in {place}", "The {adj} Witness", "Murder at the {noun}",
                "The {noun} Affair", "A {adj} Alibi"],
        blurbs=["in which Inspector {name} investigates {crime} in {place}",
                "where a retired detective looks into {crime}"],
        slots=dict(adj=["Silent", "Missing", "Crooked", "Midnight", "Careless"],
                   noun=["Night Market", "Lighthouse", "Railway Hotel", "Tea House", "Gallery"],
                   crime=["a poisoning at a wedding", "a vanished ferry passenger",
                          "a forged painting", "a locked-room death"]),
    ),
    "romance": dict(
        premium=-1.00, pages=(200, 400), formats=FORMATS,
        names=["romance", "romance novel", "love story"],
        titles=["Love in {place}", "The {noun} Between Us", "{adj} Hearts",
                "A Summer in {place}", "Falling for {name}"],
        blurbs=["about {name} and a stranger who meet in {place}",
                "where two rival {job}s fall in love"],
        slots=dict(adj=["Reckless", "Second-Chance", "Stubborn", "Restless"],
                   noun=["Miles", "Silence", "Ocean", "Distance"],
                   job=["baker", "architect", "florist", "coffee roaster"]),
    ),
    "science fiction & fantasy": dict(
        premium=1.00, pages=(250, 650), formats=FORMATS,
        names=["science-fiction novel", "fantasy epic", "space opera"],
        titles=["The {adj} {noun}", "Beyond the {noun}", "{noun} of Ash",
                "The {noun} Protocol", "Children of the {adj} {noun}"],
        blurbs=["set on a {setting} where {name} must {quest}",
                "in which a young mage from {place} must {quest}"],
        slots=dict(adj=["Hollow", "Ninth", "Drowned", "Iron", "Starless", "Glass"],
                   noun=["Throne", "Orbit", "Gate", "Archive", "Moon", "Citadel"],
                   setting=["generation ship", "flooded planet", "floating city"],
                   quest=["stop a war between AIs", "find the lost heir",
                          "repair a dying sun"]),
    ),
    "children's picture book": dict(
        premium=2.00, pages=(24, 64), formats=("paperback", "hardcover", "ebook"),
        names=["picture book", "children's picture book", "bedtime picture book"],
        titles=["The Little {animal} Who {verb}", "{name} and the {adj} {animal}",
                "Goodnight, {adj} {animal}", "Where Is the {animal}?"],
        blurbs=["for ages {age} about a {adj|lower} {animal|lower} who {verb|lower}",
                "for ages {age} that follows {name} and a {adj|lower} {animal|lower}"],
        slots=dict(animal=["Water Buffalo", "Panda", "Sea Turtle", "Fox", "Elephant", "Owl"],
                   verb=["Could Not Sleep", "Loved Rain", "Lost a Shoe", "Wanted to Fly"],
                   adj=["Sleepy", "Brave", "Tiny", "Grumpy"],
                   age=["3-5", "4-7", "2-4", "5-8"]),
    ),
    "young adult": dict(
        premium=0.00, pages=(220, 420), formats=FORMATS,
        names=["young-adult novel", "YA novel", "coming-of-age novel"],
        titles=["The Year We {verb}", "{name} Against the World", "{adj} Like Us",
                "Everything After {place}"],
        blurbs=["about a teenager in {place} who {plot}",
                "following {name}, sixteen, who {plot}"],
        slots=dict(verb=["Ran", "Stayed", "Burned Bright", "Lied"],
                   adj=["Wild", "Loud", "Broken", "Golden"],
                   plot=["starts a band", "uncovers a school secret",
                         "enters a national robotics contest"]),
    ),
    "poetry": dict(
        premium=0.00, pages=(60, 160), formats=("paperback", "hardcover", "ebook", "audiobook"),
        names=["poetry collection", "collection of poems", "book of verse"],
        titles=["{noun} Songs", "Poems from {place}", "The {adj} Hour", "Small {noun}s"],
        blurbs=["on {theme}", "about {theme} and {place}"],
        slots=dict(noun=["River", "Rice-Field", "Winter", "Harbour", "Kitchen"],
                   adj=["Blue", "Late", "Quiet", "Borrowed"],
                   theme=["memory and migration", "motherhood", "the sea", "grief and joy"]),
    ),
    "history": dict(
        premium=4.00, pages=(280, 640), formats=FORMATS,
        names=["history", "work of narrative history", "history book"],
        titles=["The Rise and Fall of {empire}", "{place}: A History",
                "The {adj} Century", "Empires of {noun}", "A People's History of {place}"],
        blurbs=["covering {topic}", "that retells {topic} through letters and diaries"],
        slots=dict(empire=["the Khmer Empire", "Champa", "Venice", "the Ottomans", "the Lý Dynasty"],
                   adj=["Long", "Broken", "Bronze", "Hungry"],
                   noun=["Salt", "Silk", "Spice", "Tea", "Rice"],
                   topic=["the spice trade", "two thousand years of life in {place}",
                          "the age of sail", "the industrial revolution"]),
    ),
    "biography & memoir": dict(
        premium=2.00, pages=(220, 480), formats=FORMATS,
        names=["memoir", "biography", "life story"],
        titles=["{name}: A Life", "Growing Up in {place}", "My {noun}, My {noun2}",
                "The {adj} Years"],
        blurbs=["of a {job} from {place}", "recounting a childhood in {place}"],
        slots=dict(noun=["Mother", "Country", "Kitchen", "Village"],
                   noun2=["Language", "Music", "Garden", "Road"],
                   adj=["Lean", "Wandering", "Bright", "Lost"],
                   job=["jazz pianist", "war photographer", "chef", "marathon runner"]),
    ),
    "self-help": dict(
        premium=2.00, pages=(160, 320), formats=FORMATS,
        names=["self-help book", "personal-development guide", "practical self-help guide"],
        titles=["The {adj} Habit", "{number} Rules for {goal}", "Less {noun}, More Life",
                "The Art of {goal}"],
        blurbs=["on {goal|lower}", "that teaches {goal|lower} in small daily steps"],
        slots=dict(adj=["Tiny", "Morning", "Calm", "Focused"],
                   number=["Seven", "Twelve", "Ten", "Five"],
                   goal=["Focus", "Sleeping Well", "Saying No", "Slow Living"],
                   noun=["Noise", "Clutter", "Worry", "Screen Time"]),
    ),
    "business": dict(
        premium=5.00, pages=(200, 400), formats=FORMATS,
        names=["business book", "management book", "strategy book"],
        titles=["The {adj} Startup", "Leading {noun}", "{noun} at Scale",
                "The {adj} Manager", "Selling in {place}"],
        blurbs=["on {topic}", "with case studies on {topic}"],
        slots=dict(adj=["Frugal", "Lean", "Remote", "Patient"],
                   noun=["Teams", "Growth", "Trust", "Change"],
                   topic=["family businesses in Southeast Asia", "pricing strategy",
                          "remote teams", "negotiation"]),
    ),
    "cookbook": dict(
        premium=6.00, pages=(160, 360), formats=("paperback", "hardcover", "ebook"),
        names=["cookbook", "recipe book", "cookery book"],
        titles=[("Phở, Bánh Mì and Beyond", {"cuisine": ["Vietnamese"], "place": VN_PLACES}),
                ("Street Food of {place}", {"place": VN_PLACES, "cuisine": ["Vietnamese"]}), "The {adj} Kitchen",
                "{number} {dish} Recipes", "Cooking with {ingredient}"],
        blurbs=["with {number} {cuisine} recipes", "of {cuisine} home cooking"],
        slots=dict(adj=["Vegetable", "Weeknight", "Slow", "Coastal", "Noodle"],
                   number=["100", "75", "120", "60"],
                   dish=["Noodle", "Soup", "Dumpling", "One-Pot"],
                   ingredient=["Lemongrass", "Fish Sauce", "Tofu", "Coconut"],
                   cuisine=["Vietnamese", "Mediterranean", "Mexican", "Japanese"]),
    ),
    "travel guide": dict(
        premium=5.00, pages=(200, 420), formats=("paperback", "ebook"),
        names=["travel guide", "guidebook", "travel guidebook"],
        titles=[("Vietnam by Train", {"place": VN_PLACES}), "{place} in {number} Days", "The Rough Road to {place}",
                "Walking {place}", "Hidden {place}"],
        blurbs=["to {place} with {extra}", "covering {place} and nearby towns, with {extra}"],
        slots=dict(number=["Three", "Five", "Seven", "Ten"],
                   extra=["maps and itineraries", "walking routes", "food and lodging tips"]),
    ),
    "art & photography": dict(
        premium=10.00, pages=(120, 300), formats=("paperback", "hardcover", "ebook"),
        names=["art book", "photography book", "book of photographs"],
        titles=["{place} in Light", "The {adj} Eye", "Lacquer and {noun}",
                "Portraits of {place}"],
        blurbs=["collecting {subject}", "surveying {subject}"],
        slots=dict(adj=["Patient", "Wandering", "Still", "Open"],
                   noun=["Silk", "Ink", "Gold", "Shadow"],
                   subject=["fifty years of street photography", "Vietnamese lacquer painting",
                            "modernist architecture", "botanical drawings"]),
    ),
    "programming": dict(
        premium=15.00, pages=(250, 700), formats=("paperback", "ebook"),
        names=["programming book", "software-development guide", "hands-on coding book"],
        titles=["{lang} for {audience}", "Practical {topic}", "{topic}: A Hands-On Guide",
                "Learning {lang} the Hard Way", "Effective {lang}"],
        blurbs=["teaching {topic|lower} in {lang}", "on {topic|lower}, with examples in {lang}"],
        slots=dict(lang=["Python", "Rust", "Go", "JavaScript", "SQL", "C++"],
                   audience=["Data Analysis", "Beginners", "Scientists", "Web Developers"],
                   topic=["Machine Learning", "Web Development", "Data Engineering",
                          "Concurrency", "Algorithms", "Software Testing"]),
    ),
    "textbook": dict(
        premium=25.00, pages=(300, 900), formats=("paperback", "hardcover", "ebook"),
        names=["college textbook", "textbook", "course textbook"],
        titles=["Introduction to {subject}", "Principles of {subject}",
                "{subject}, {ordinal} Edition", "Foundations of {subject}"],
        blurbs=["for first-year courses in {subject|lower}",
                "covering {subject|lower} for undergraduates"],
        slots=dict(subject=["Statistics", "Microeconomics", "Organic Chemistry", "Linear Algebra",
                            "Computer Networks", "Cell Biology"],
                   ordinal=["Second", "Third", "Fourth", "Fifth"]),
    ),
    "language learning": dict(
        premium=4.00, pages=(150, 350), formats=FORMATS,
        names=["language course", "language-learning book", "phrasebook and course"],
        titles=[("{language} for Beginners", {"language": ["Vietnamese"]}), "Everyday {language}", "{language} in {number} Weeks",
                "Speak {language} Today", "{language} Grammar Made Simple"],
        blurbs=["for adult learners of {language}", "that teaches conversational {language}"],
        slots=dict(language=["Vietnamese", "Spanish", "Japanese", "French", "Korean"],
                   number=["Six", "Eight", "Ten", "Twelve"]),
    ),
}

# Features --------------------------------------------------------------------
# premium, allowed formats, probability by genre (default under "*"), phrasings.
_PRINT_OR_EBOOK = ("paperback", "hardcover", "ebook")
FEATURES: dict[str, dict] = {
    "illustrated": dict(
        premium=4.00, formats=_PRINT_OR_EBOOK,
        prob={"*": 0.10, "children's picture book": 0.90, "cookbook": 0.60,
              "travel guide": 0.50, "art & photography": 0.80, "history": 0.30},
        phrases=["Illustrated throughout.", "Richly illustrated.",
                 "Includes illustrations on almost every spread."],
    ),
    "full-color": dict(
        premium=6.00, formats=_PRINT_OR_EBOOK,
        prob={"*": 0.03, "cookbook": 0.60, "art & photography": 0.80,
              "children's picture book": 0.70, "travel guide": 0.50},
        phrases=["Printed in full color.", "Full-color pages.", "Full-color throughout."],
    ),
    "with exercises": dict(
        premium=3.00, formats=_PRINT_OR_EBOOK,
        prob={"*": 0.00, "textbook": 0.80, "programming": 0.70, "language learning": 0.80,
              "self-help": 0.30, "business": 0.20},
        phrases=["With exercises at the end of each chapter.", "Includes worked exercises.",
                 "Comes with practice exercises and answers."],
    ),
    "annotated": dict(
        premium=3.00, formats=_PRINT_OR_EBOOK,
        prob={"*": 0.00, "poetry": 0.40, "literary fiction": 0.20, "history": 0.20},
        phrases=["Annotated edition with notes by the editor.", "Fully annotated.",
                 "An annotated text with explanatory notes."],
    ),
    "large print": dict(
        premium=2.00, formats=("paperback", "hardcover"),
        prob={"*": 0.02, "children's picture book": 0.00, "literary fiction": 0.10,
              "mystery": 0.10, "romance": 0.10, "biography & memoir": 0.10},
        phrases=["Large print edition.", "Set in large print for easy reading."],
    ),
    "collector's edition": dict(
        premium=12.00, formats=("hardcover",),
        prob={"*": 0.03, "science fiction & fantasy": 0.25, "literary fiction": 0.10,
              "children's picture book": 0.10},
        phrases=["A numbered collector's edition with sprayed edges.",
                 "Collector's edition in a slipcase."],
    ),
    "full-cast narration": dict(
        premium=5.00, formats=("audiobook",),
        prob={"*": 0.10, "science fiction & fantasy": 0.35, "mystery": 0.30,
              "young adult": 0.30, "literary fiction": 0.20},
        phrases=["Performed by a full cast.", "Full-cast narration with music and sound effects."],
    ),
}
DISTRACTORS = ["Award-winning.", "A book-club pick.", "From a bestselling author.",
               "New cover design.", "Loved by readers worldwide."]  # premium 0.00

FORMAT_PHRASES = {
    "paperback": ["paperback", "trade paperback", "softcover paperback"],
    "hardcover": ["hardcover", "clothbound hardcover", "cased hardcover"],
    "ebook": ["ebook", "digital ebook", "Kindle/EPUB ebook"],
    "audiobook": ["unabridged audiobook", "audiobook"],
}

_SLOT = re.compile(r"\{(\w+)(\|lower)?\}")


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _fill(rng: np.random.Generator, template: str, slots: dict, bound: dict) -> str:
    """Replace {slot} / {slot|lower} left to right (recursively) from slots / PLACES / NAMES.

    A slot keeps its first value for the whole row (``bound``), so title and
    blurb agree (same place, same protagonist, same subject)."""
    pools = {"place": PLACES, "name": NAMES, **slots}

    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key not in bound:
            bound[key] = _fill(rng, _pick(rng, pools[key]), slots, bound)
        return bound[key].lower() if m.group(2) else bound[key]

    return _SLOT.sub(sub, template)


def _a(word: str) -> str:
    return ("an " if word[0].lower() in "aeiou" else "a ") + word


def rule_price(fmt: str, pages: int, genre: str, features: list[str]) -> float:
    """Noise-free price (USD, unrounded)."""
    return (BASE[fmt] + PER_PAGE[fmt] * pages + GENRES[genre]["premium"]
            + sum(FEATURES[f]["premium"] for f in features))


def _make_row(rng: np.random.Generator, genre: str) -> tuple[dict, dict]:
    g = GENRES[genre]
    allowed = list(g["formats"])
    p = np.array([FORMAT_PROB[f] for f in allowed])
    fmt = allowed[int(rng.choice(len(allowed), p=p / p.sum()))]
    lo, hi = g["pages"]
    pages = int(rng.integers(lo, hi + 1))
    features = []
    for name, f in FEATURES.items():  # fixed order; one draw per feature always
        u = rng.random()
        if fmt in f["formats"] and u < f["prob"].get(genre, f["prob"]["*"]):
            features.append(name)

    title_tpl = _pick(rng, g["titles"])
    bound: dict[str, str] = {}
    if isinstance(title_tpl, tuple):  # (template, {slot: restricted pool}) for themed titles
        title_tpl, presets = title_tpl
        for key, pool in presets.items():
            bound[key] = _pick(rng, pool)
    title = _fill(rng, title_tpl, g["slots"], bound)
    blurb = _fill(rng, _pick(rng, g["blurbs"]), g["slots"], bound)
    fmt_phrase = _pick(rng, FORMAT_PHRASES[fmt])
    gname = _pick(rng, g["names"])
    if fmt == "audiobook":
        hours = round(pages / 30, 1)
        opening = (f"{_a(fmt_phrase)[0].upper()}{_a(fmt_phrase)[1:]} of the {pages}-page "
                   f"{gname} {blurb}, about {hours} hours of listening.")
    else:
        style = int(rng.integers(3))
        if style == 0:
            article = "An" if str(pages).startswith("8") else "A"  # eighty / eight hundred
            opening = f"{article} {pages}-page {fmt_phrase} {gname} {blurb}."
        elif style == 1:
            opening = f"{gname[0].upper()}{gname[1:]} {blurb}. {fmt_phrase[0].upper()}{fmt_phrase[1:]}, {pages} pages."
        else:
            opening = f"This {fmt_phrase} is {_a(gname)} {blurb} ({pages} pages)."
    sentences = [_pick(rng, FEATURES[f]["phrases"]) for f in features]
    order = rng.permutation(len(sentences)) if sentences else []
    sentences = [sentences[i] for i in order]
    if rng.random() < 0.30:
        sentences.append(_pick(rng, DISTRACTORS))
    description = " ".join([opening, *sentences])

    eps = rng.normal(0.0, NOISE_SIGMA)
    price = round(rule_price(fmt, pages, genre, features) * math.exp(eps), 2)
    price = min(max(price, PRICE_MIN), PRICE_MAX)
    row = {"title": title, "description": description, "format": fmt,
           "pages": pages, "price": price, "synthetic": True}
    meta = {"genre": genre, "features": features,
            "rule_price": rule_price(fmt, pages, genre, features)}
    return row, meta


def generate(n: int = DEFAULT_N, seed: int = DEFAULT_SEED, with_meta: bool = False):
    """Return n synthetic rows; titles are unique (colliding draws are redrawn).

    with_meta=True returns (rows, metas): per row the hidden genre, features and
    noise-free rule price (not written to the file)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    genres = list(GENRES)
    rows, metas, seen = [], [], set()
    while len(rows) < n:
        genre = genres[int(rng.integers(len(genres)))]
        for _ in range(50):
            row, meta = _make_row(rng, genre)
            if row["title"] not in seen:
                break
        else:  # pragma: no cover - word lists are large enough in practice
            row["title"] = f"{row['title']} (Volume {len(rows) + 1})"
        seen.add(row["title"])
        rows.append(row)
        metas.append(meta)
    return (rows, metas) if with_meta else rows


def write_jsonl(rows: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


# Baselines -------------------------------------------------------------------
def split_indices(n: int, seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION):
    """(train_idx, test_idx): first round(test_fraction*n) of a seeded permutation are test."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_fraction * n))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _design(rows: list[dict]) -> np.ndarray:
    """[1, pages, is_hardcover, is_ebook, is_audiobook] (paperback = reference)."""
    return np.array([[1.0, float(r["pages"])] + [float(r["format"] == f) for f in FORMATS[1:]]
                     for r in rows])


def baselines(rows: list[dict], metas: list[dict] | None = None) -> dict:
    """Test-split MAEs (USD) of the two baselines; see module docstring.

    With ``metas`` (from ``generate(with_meta=True)``) also the MAE of the
    noise-free rule rounded to cents: a reference floor, not a baseline."""
    y = np.array([float(r["price"]) for r in rows])
    tr, te = split_indices(len(rows))
    mean_pred = y[tr].mean()
    X = _design(rows)
    coef, *_ = np.linalg.lstsq(X[tr], y[tr], rcond=None)
    out = {
        "n_train": int(len(tr)),
        "n_test": int(len(te)),
        "mae_train_mean": float(np.mean(np.abs(y[te] - mean_pred))),
        "mae_linear": float(np.mean(np.abs(y[te] - X[te] @ coef))),
    }
    if metas is not None:
        rule = np.array([round(m["rule_price"], 2) for m in metas])
        out["mae_rule_noise_free"] = float(np.mean(np.abs(y[te] - rule[te])))
    return out


def baselines_markdown(b: dict) -> str:
    """The baseline table exactly as the data card (README.md) quotes it."""
    return "\n".join([
        f"| Baseline (fit on {b['n_train']} train rows, scored on {b['n_test']} test rows) | MAE (USD) |",
        "|---|---|",
        f"| Always predict the train-set mean price | {b['mae_train_mean']:.2f} |",
        f"| Least squares with intercept on pages + format one-hot (paperback = reference) | {b['mae_linear']:.2f} |",
    ] + ([f"| Reference, not a baseline: the noise-free pricing rule (knows genre and features) | {b['mae_rule_noise_free']:.2f} |"]
         if "mae_rule_noise_free" in b else []))


def rule_markdown() -> str:
    """The pricing-rule parameter tables exactly as the data card quotes them."""
    lines = ["| Format | Base (USD) | Per page (USD) | Sampling share |", "|---|---|---|---|"]
    lines += [f"| {f} | {BASE[f]:.2f} | {PER_PAGE[f]:.3f} | {FORMAT_PROB[f]:.2f} |" for f in FORMATS]
    lines += ["", "| Genre | Premium (USD) | Pages | Formats |", "|---|---|---|---|"]
    for name, g in GENRES.items():
        fmts = "all" if tuple(g["formats"]) == FORMATS else ", ".join(g["formats"])
        lines.append(f"| {name} | {g['premium']:+.2f} | {g['pages'][0]}-{g['pages'][1]} | {fmts} |")
    lines += ["", "| Feature | Premium (USD) | Formats |", "|---|---|---|"]
    for name, f in FEATURES.items():
        fmts = "print + ebook" if tuple(f["formats"]) == _PRINT_OR_EBOOK else ", ".join(f["formats"])
        lines.append(f"| {name} | {f['premium']:+.2f} | {fmts} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--n", type=int, default=DEFAULT_N)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="default: books_price.jsonl next to this script (assets/samples/)")
    ap.add_argument("--baselines", action="store_true", help="print baseline MAEs")
    ap.add_argument("--print-rule", action="store_true",
                    help="print the rule tables quoted in README.md")
    args = ap.parse_args(argv)
    if args.n < 10:
        ap.error("--n must be at least 10")
    rows, metas = generate(args.n, args.seed, with_meta=True)
    write_jsonl(rows, args.out)
    print(f"wrote {len(rows)} rows to {args.out}", file=sys.stderr)
    if args.print_rule:
        print(rule_markdown())
    if args.baselines:
        b = baselines(rows, metas)
        print(f"MAE predict-train-mean: {b['mae_train_mean']:.2f}")
        print(f"MAE linear (pages + format one-hot): {b['mae_linear']:.2f}")
        print(baselines_markdown(b))
    return 0


if __name__ == "__main__":
    sys.exit(main())
