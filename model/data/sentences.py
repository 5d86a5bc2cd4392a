"""Generated English text for the corpus: statements, questions, numbers, lists and bilabial-rich lines.

Every word list and template here was written for FacePolicy and is released with it (see
model/data/TEXT_LICENCE.md), so the corpus text may be shipped. Generation is deterministic given a
numpy Generator.
"""

from __future__ import annotations

import numpy as np

NAMES = (
    "Bob", "Mary", "Peter", "Emma", "Ben", "Paula", "Mike", "Maggie", "Sam", "Julia", "David", "Anna", "Tom",
    "Lucy", "George", "Sophie", "Victor", "Nora", "Frank", "Olivia", "Walter", "Rosa", "Hugo", "Ivy",
    "Charles", "Zoe", "Leo", "Grace", "Owen", "Fiona", "Kevin", "Hannah", "Martin", "Ruth", "Simon", "Wendy",
)
PLACES = (
    "the market", "the station", "the museum", "the beach", "the library", "the office", "the bakery",
    "the harbour", "the park", "the mountains", "the village", "the theatre", "the hospital", "the airport",
    "the garden", "the river", "the kitchen", "the basement", "the bridge", "the old mill", "the city",
)
NOUNS = (
    "apple", "basket", "bottle", "bridge", "button", "camera", "candle", "carpet", "chair", "cheese", "clock",
    "coffee", "cookie", "desk", "door", "engine", "feather", "fence", "finger", "flower", "garden", "guitar",
    "hammer", "helmet", "island", "jacket", "kettle", "ladder", "lamp", "letter", "lemon", "machine", "map",
    "mirror", "monkey", "mountain", "needle", "noodle", "ocean", "orange", "paper", "pencil", "pepper",
    "piano", "picture", "pillow", "planet", "pocket", "puppy", "rabbit", "ribbon", "rocket", "shadow",
    "shoe", "silver", "spoon", "stone", "sugar", "table", "teacher", "thunder", "ticket", "tomato", "tower",
    "train", "umbrella", "valley", "violin", "wagon", "window", "winter", "wolf", "yellow box", "zipper",
    "book", "boat", "bag", "bed", "bell", "bike", "bird", "blanket", "bowl", "bread", "bucket", "butter",
    "map of the world", "pumpkin", "problem", "promise", "puzzle", "message", "moment", "number", "answer",
    "question", "story", "journey", "machine", "voice", "song", "dream", "whisper", "surprise", "mistake",
)
ADJECTIVES = (
    "big", "small", "bright", "quiet", "broken", "beautiful", "purple", "blue", "brown", "pale", "heavy",
    "light", "warm", "cold", "old", "new", "strange", "famous", "simple", "perfect", "bumpy", "smooth",
    "tiny", "enormous", "gentle", "noisy", "empty", "full", "shiny", "muddy", "fresh", "lovely", "odd",
    "thoughtful", "careful", "clever", "lazy", "busy", "happy", "sad", "angry", "surprised", "wise",
)
VERBS_PAST = (
    "bought", "brought", "found", "moved", "opened", "painted", "pushed", "pulled", "packed", "borrowed",
    "mailed", "fixed", "dropped", "cleaned", "watched", "picked up", "hid", "lost", "sold", "carried",
    "measured", "washed", "wrapped", "built", "described", "remembered", "forgot", "shared", "showed",
    "bumped", "dropped off", "thought about", "asked about", "looked at", "pointed at", "talked about",
)
VERBS_BASE = (
    "buy", "bring", "find", "move", "open", "paint", "push", "pull", "pack", "borrow", "mail", "fix", "drop",
    "clean", "watch", "pick up", "hide", "sell", "carry", "measure", "wash", "wrap", "build", "describe",
    "remember", "share", "show", "explain", "imagine", "improve", "visit", "follow", "choose", "keep",
)
ADVERBS = (
    "quickly", "slowly", "carefully", "happily", "quietly", "barely", "probably", "maybe", "suddenly",
    "finally", "almost", "really", "never", "always", "perhaps", "gently", "boldly", "simply",
)
TIMES = (
    "yesterday", "this morning", "last week", "on Monday", "at midnight", "before lunch", "after the storm",
    "in the evening", "every summer", "next Friday", "a moment ago", "in nineteen ninety nine",
)
INTERJECTIONS = ("Oh", "Well", "Hmm", "Look", "Wow", "Okay", "Please", "Listen", "Yes", "No", "Hey", "Oh my")
# Dense in p, b, m (and f, v, w): the closures and lip shapes a lip-sync model must never miss.
BILABIAL_LINES = (
    "Bob bought a big blue map from the man by the pump.",
    "Maybe my mom made plum pie for the bumpy bus trip.",
    "Please pass the pepper, the bread and the butter.",
    "Paul printed a bumper sticker with a purple bumblebee.",
    "My brother Ben buys maps, mops and paper plates.",
    "Pam, will you bring me a bowl of warm bean soup?",
    "The baby bumped the bubbles with a pink plastic paddle.",
    "Mimi made some maple muffins for the market in May.",
    "People prefer problems that pay back promptly.",
    "Bobby, bring both boxes up by the back porch, please.",
    "A big brown bear ambled past the bamboo boat.",
    "Five brave wolves moved over the vast frozen valley.",
    "We were wondering whether the weather would improve.",
    "Mum, my map might be somewhere in the basement.",
    "Bubbles popped while Bob played the banjo by the pool.",
    "Maybe Pippa and Pablo prepared the pumpkin pie.",
)


def _pick(rng: np.random.Generator, items: tuple[str, ...]) -> str:
    return items[int(rng.integers(len(items)))]


def _np(rng: np.random.Generator) -> str:
    """A noun phrase: article, optional adjective, noun."""
    noun = _pick(rng, NOUNS)
    if rng.random() < 0.6:
        adj = _pick(rng, ADJECTIVES)
        det = _pick(rng, ("the", "a", "my", "your", "her", "his", "our"))
        return _article(adj) + f" {noun}" if det == "a" else f"{det} {adj} {noun}"
    det = _pick(rng, ("the", "a", "my", "this", "that", "their"))
    return _article(noun) if det == "a" else f"{det} {noun}"


def _article(word: str) -> str:
    """``a word`` or ``an word``, by its first letter."""
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _statement(rng: np.random.Generator) -> str:
    forms = (
        lambda: f"{_pick(rng, NAMES)} {_pick(rng, VERBS_PAST)} {_np(rng)} {_pick(rng, TIMES)}.",
        lambda: f"{_cap(_np(rng))} was {_pick(rng, ADVERBS)} {_pick(rng, ADJECTIVES)} near {_pick(rng, PLACES)}.",
        lambda: f"We {_pick(rng, VERBS_PAST)} {_np(rng)} and then walked to {_pick(rng, PLACES)}.",
        lambda: f"I think {_pick(rng, NAMES)} will {_pick(rng, VERBS_BASE)} {_np(rng)} {_pick(rng, TIMES)}.",
        lambda: f"{_pick(rng, INTERJECTIONS)}, {_np(rng)} is {_pick(rng, ADJECTIVES)}, but {_np(rng)} is "
        f"{_pick(rng, ADVERBS)} {_pick(rng, ADJECTIVES)}.",
        lambda: f"If you {_pick(rng, VERBS_BASE)} {_np(rng)}, {_pick(rng, NAMES)} will {_pick(rng, VERBS_BASE)} "
        f"{_np(rng)}.",
        lambda: f"{_pick(rng, NAMES)} and {_pick(rng, NAMES)} {_pick(rng, ADVERBS)} {_pick(rng, VERBS_PAST)} "
        f"{_np(rng)} at {_pick(rng, PLACES)}, because it was {_pick(rng, ADJECTIVES)}.",
    )
    return _cap(forms[int(rng.integers(len(forms)))]())


def _question(rng: np.random.Generator) -> str:
    forms = (
        lambda: f"Did {_pick(rng, NAMES)} {_pick(rng, VERBS_BASE)} {_np(rng)} {_pick(rng, TIMES)}?",
        lambda: f"Where is {_np(rng)}?",
        lambda: f"Why would anyone {_pick(rng, VERBS_BASE)} {_np(rng)} at {_pick(rng, PLACES)}?",
        lambda: f"Can you {_pick(rng, VERBS_BASE)} {_np(rng)} for me, {_pick(rng, NAMES)}?",
        lambda: f"Is {_np(rng)} {_pick(rng, ADJECTIVES)} or {_pick(rng, ADJECTIVES)}?",
        lambda: f"How many {_pick(rng, NOUNS)}s did you {_pick(rng, VERBS_BASE)}?",
        lambda: f"What happened to {_np(rng)} {_pick(rng, TIMES)}?",
        lambda: f"{_pick(rng, INTERJECTIONS)}, who {_pick(rng, VERBS_PAST)} {_np(rng)}?",
    )
    return forms[int(rng.integers(len(forms)))]()


def _number(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 100))
    big = int(rng.integers(100, 100000))
    year = int(rng.integers(1900, 2031))
    price = f"{int(rng.integers(1, 500))}.{int(rng.integers(0, 100)):02d}"
    hour, minute = int(rng.integers(1, 13)), int(rng.integers(0, 60))
    forms = (
        f"The train leaves at {hour}:{minute:02d} from platform {int(rng.integers(1, 20))}.",
        f"{_pick(rng, NAMES)} counted {big:,} {_pick(rng, NOUNS)}s in {year}.",
        f"It costs ${price}, or {n} percent more than last year.",
        f"Call me back at {int(rng.integers(200, 999))} {int(rng.integers(1000, 9999))}.",
        f"One, two, three, four, five, {n}, {n + 1}, {n + 2}.",
        f"Room {int(rng.integers(1, 999))} is on floor {int(rng.integers(1, 40))}.",
        f"About {n} thousand people lived there in {year}.",
        f"The score was {int(rng.integers(0, 10))} to {int(rng.integers(0, 10))} after {n} minutes.",
    )
    return forms[int(rng.integers(len(forms)))]


def _list(rng: np.random.Generator) -> str:
    k = int(rng.integers(3, 7))
    items = [_pick(rng, NOUNS) for _ in range(k)]
    listed = ", ".join(_article(w) for w in items[:-1])
    last = items[-1]
    tail = f"and {_article(last)}"
    forms = (
        f"We need {listed}, {tail}.",
        f"{_pick(rng, NAMES)} packed {listed}, {tail}.",
        f"Do you want {listed}, or {_article(last)}?",
        f"First the {items[0]}, then the {items[1]}, and finally the {items[2]}.",
    )
    return forms[int(rng.integers(len(forms)))]


BILABIAL_WORDS = (
    "map", "mop", "pump", "plum", "bump", "bomb", "bubble", "pebble", "maple", "moped", "pamphlet", "puppet",
    "baby", "bamboo", "marble", "member", "bumblebee", "pimple", "pumpkin", "mumble", "ample", "symbol",
    "problem", "bottom", "blossom", "combo", "vampire", "movie", "wave", "fever", "whip", "web", "wimp",
)


def _bilabial(rng: np.random.Generator) -> str:
    if rng.random() < 0.4:
        return _pick(rng, BILABIAL_LINES)
    words = [_pick(rng, BILABIAL_WORDS) for _ in range(4)]
    forms = (
        f"{_pick(rng, NAMES)} put the {words[0]} by the {words[1]} and the {words[2]}.",
        f"My {words[0]} bumped a {words[1]}, maybe {_pick(rng, TIMES)}.",
        f"Please bring the {words[0]}, the {words[1]} and both {words[2]}s back up.",
        f"Mmm, maybe the {words[0]} belongs beside the {words[1]}.",
        f"Pam, Bob and Mimi bought a {words[0]}, a {words[1]} and a {words[2]}.",
    )
    return forms[int(rng.integers(len(forms)))]


def _exclamation(rng: np.random.Generator) -> str:
    forms = (
        f"{_pick(rng, INTERJECTIONS)}! That {_pick(rng, NOUNS)} is {_pick(rng, ADVERBS)} {_pick(rng, ADJECTIVES)}!",
        f"Stop! Don't {_pick(rng, VERBS_BASE)} {_np(rng)}!",
        f"{_pick(rng, INTERJECTIONS)}, {_pick(rng, NAMES)}!",
        f"What {_article(_pick(rng, ADJECTIVES))} {_pick(rng, NOUNS)}!",
    )
    return forms[int(rng.integers(len(forms)))]


KINDS: dict[str, object] = {
    "statement": _statement,
    "question": _question,
    "number": _number,
    "list": _list,
    "bilabial": _bilabial,
    "exclamation": _exclamation,
}
# How often each kind is drawn.
KIND_WEIGHTS: dict[str, float] = {
    "statement": 0.36, "question": 0.18, "number": 0.12, "list": 0.1, "bilabial": 0.14, "exclamation": 0.1,
}


def sentence(rng: np.random.Generator, kind: str | None = None) -> tuple[str, str]:
    """One sentence and its kind."""
    if kind is None:
        names = list(KIND_WEIGHTS)
        p = np.array([KIND_WEIGHTS[k] for k in names])
        kind = names[int(rng.choice(len(names), p=p / p.sum()))]
    return KINDS[kind](rng), kind
