"""The built-in demo corpus: synthetic personal messages, generated on the fly, with canaries.

Why synthetic: a workshop must run offline and give every laptop the same data, and the data must
look like what DP protects (search history, health and money notes, contact details) without
belonging to anyone. Every person, phone number, email (``example.*`` / ``.test`` domains) and
address here is invented from word lists; each user gets a persona whose details recur in their
messages, so a model that memorises a user is visibly repeating that user's phone or doctor.

Case is natural: searches and notes are lower-case as people type them, posts are sentence
case, and names of people, places and streets are always capitalised.

How many people: :data:`DEFAULT_USERS` (4,000) unless a run chooses (``TrainConfig.builtin_users``,
from :data:`MIN_USERS` to :data:`MAX_USERS`). DP-SGD's noise is shared by the whole batch, so the
same ε costs less accuracy with more people; a workshop can see it by changing only the crowd. The
crowds are nested: with the same seed, the first n people of a larger crowd are exactly the n
people of a smaller one (same ids, same records), so a larger crowd only adds people. Generating
10,000 people takes about 1.5 s.

Canaries follow one fixed format, ``"<Full Name>'s PIN is d d d d"``: two canaries for each
insertion count k in (1, 3, 10, 30), each insertion a separate record inside a user chosen by a
keyed hash of the user's id (see :func:`dpcore.data.corpus.add_canary`). Canary names come from
their own list, so their prefixes occur nowhere else in the corpus. Their names, secrets and
counts come from their own random stream, so they are the same at every crowd size; a larger
crowd changes a canary's holders only where a new person ranks among them.

:func:`generate_people` without canaries, under another seed and id prefix, is the "public posts of
the same kind" a public model is pre-trained on (:mod:`dpcore.data.public`).

The vocabulary of this corpus comes from the generator, not from the records it sampled
(:func:`builtin_vocabulary`): every character (or word) of the word lists, templates and canary
format below, plus the digits and punctuation the code adds. It is the same for every seed and
size, so it says nothing about which records were drawn.
"""

from __future__ import annotations

import random
import string
from collections import Counter

from dpcore.config import TrainConfig, form_range
from dpcore.data.corpus import Corpus, Record, add_canary, normalize_text
from dpcore.data.tokenizer import TOKENIZERS, WordTokenizer
from dpcore.errors import CorpusError

CANARY_INSERTIONS = (1, 3, 10, 30)
#: The text before a canary's secret (its digits are separated by spaces).
CANARY_CONTEXT = "{name}'s PIN is "
CANARIES_PER_COUNT = 2
#: People in the built-in corpus unless a run chooses, and the range a run may choose from (20: enough
#: users for the canaries and a split by user; 10,000: generation stays under about 2 s). The config
#: field ``builtin_users`` is the one definition.
DEFAULT_USERS: int = TrainConfig.builtin_users
MIN_USERS, MAX_USERS = (int(x) for x in form_range("builtin_users"))
MIN_MESSAGES, MAX_MESSAGES = 5, 12
MIN_CHARS, MAX_CHARS = 20, 120

FIRST_NAMES = (
    "Maya", "Liam", "Priya", "Tomas", "Aisha", "Jonas", "Elena", "Mateo", "Grace", "Omar", "Sofia",
    "Kenji", "Lucy", "Rafael", "Nadia", "Ethan", "Zara", "Felix", "Amara", "Diego", "Hannah", "Ivan",
    "Leila", "Marcus", "Chloe", "Samuel", "Ines", "Noah", "Yara", "Oscar", "Mei", "Daniel", "Fatima",
    "Lukas", "Rosa", "Andre", "Julia", "Kofi", "Anna", "Victor", "Sara", "Hugo", "Lina", "Caleb",
    "Nora", "Arjun", "Eva", "Pablo", "Iris", "Tariq", "Clara", "Ben", "Freya", "Mohammed", "Alice",
    "Jamal", "Ruth", "Leo", "Selin", "Owen",
)
LAST_NAMES = (
    "Okafor", "Silva", "Novak", "Patel", "Kowalski", "Moreau", "Jensen", "Tanaka", "Haddad", "Rossi",
    "Schmidt", "Oyelaran", "Fischer", "Lindqvist", "Alvarez", "Brennan", "Costa", "Dubois", "Ivanova",
    "Kim", "Larsen", "Mendes", "Nakamura", "Petrov", "Quinn", "Reyes", "Sato", "Torres", "Usman",
    "Varga", "Walsh", "Yilmaz", "Zhang", "Abbott", "Becker", "Chen", "Duarte", "Eriksen", "Farouk",
    "Gallo", "Horvat", "Ibrahim", "Jovanovic", "Keller", "Lopez", "Mbeki", "Nilsen", "Ortiz", "Park",
    "Ramos", "Shah", "Tran", "Vogel", "Weber", "Young", "Andersen", "Byrne", "Castillo", "Delgado",
)
#: Names used only by canaries (disjoint from the lists above, checked in the tests).
CANARY_NAMES = (
    "Dana Whitfield",
    "Corwin Ashby",
    "Imogen Thackeray",
    "Bastian Quill",
    "Odalys Penhallow",
    "Thaddeus Marlowe",
    "Wren Castellano",
    "Ezra Blackwood",
    "Sunniva Holt",
    "Lysander Crane",
    "Marisol Fairweather",
    "Cosmo Ravensworth",
)

CITIES = (
    "Lisbon", "Porto", "Berlin", "Toronto", "Austin", "Denver", "Lagos", "Nairobi", "Oslo", "Krakow",
    "Seattle", "Melbourne", "Dublin", "Leeds", "Lyon", "Madrid", "Boston", "Chicago", "Montreal",
    "Accra", "Manila", "Osaka", "Prague", "Vienna", "Athens", "Cork", "Bristol", "Glasgow", "Phoenix",
    "Portland",
)
STREETS = (
    "Maple Street", "Oak Avenue", "Elm Road", "Harbor Lane", "Cedar Court", "Mill Road", "Station Road",
    "King Street", "Park Lane", "Rua Augusta", "Linden Way", "Birch Drive", "Willow Close", "Canal Street",
    "Hill Road", "Bridge Street", "Church Lane", "Orchard Road", "Lake View Drive", "Pine Terrace",
)
DOMAINS = ("example.com", "example.org", "example.net", "mail.test", "inbox.test")
EMPLOYERS = (
    "Northwind", "Bluefin Logistics", "Acme Health", "Greenleaf Bank", "Brightside Schools", "Tidal Energy",
    "Corvid Labs", "Harbor Hospital", "Sunrise Bakery", "Atlas Insurance", "Riverside Council", "Pixel Forge",
)
BANKS = ("Greenleaf Bank", "First Harbor", "Union Mutual", "Crescent Credit", "Northway Savings")
PHARMACIES = ("City Pharmacy", "Wellcare Chemist", "Corner Drugs", "Medplus", "Green Cross Pharmacy")
MEDS = (
    ("metformin", (500, 850, 1000)), ("lisinopril", (5, 10, 20)), ("sertraline", (50, 100)),
    ("atorvastatin", (10, 20, 40)), ("levothyroxine", (25, 50, 75)), ("ibuprofen", (200, 400)),
    ("amoxicillin", (250, 500)), ("omeprazole", (20, 40)), ("escitalopram", (10, 20)),
)
CONDITIONS = (
    "diabetes", "shingles", "anemia", "migraine", "sleep apnea", "high blood pressure", "celiac disease",
    "long covid", "an ear infection", "burnout", "asthma", "a thyroid problem",
)
AILMENTS = ("sprained ankle", "sore throat", "burn", "bee sting", "back spasm", "cold sore", "stiff neck")
ALLERGENS = ("penicillin", "peanuts", "latex", "shellfish", "bee stings", "sulfa drugs")
BODYPARTS = ("knee", "shoulder", "lower back", "wrist", "hip", "neck")
CLINICS = ("Riverside Clinic", "Harbor Physio", "Eastside Health Centre", "Maple Medical")
FOODS = ("ramen", "pho", "tacos", "pizza", "dumplings", "falafel", "sushi", "pastel de nata", "curry")
RESTAURANTS = ("Luigi's", "The Blue Door", "Casa Verde", "Golden Wok", "Bistro 21", "Taqueria Sol")
DISHES = ("lentil soup", "banana bread", "chicken curry", "veggie lasagna", "shakshuka", "fried rice")
TEAMS = ("the Falcons", "United", "the Rovers", "the Tigers", "City", "the Hawks")
PETS = ("Biscuit", "Luna", "Pepper", "Milo", "Olive", "Captain", "Mochi", "Rex")
ITEMS = ("sofa", "bike", "desk", "baby stroller", "bookshelf", "microwave", "box of plates")
SERVICES = ("dentist", "plumber", "daycare", "GP", "vet", "hairdresser", "mechanic")
SCHOOLS = ("Oakwood Primary", "St. Mary's", "Hillside School", "Little Acorns Nursery")
UTILITIES = ("electric", "water", "gas", "internet", "phone")
GOALS = ("a new laptop", "the wedding", "a car", "the deposit", "a holiday", "my sister's tuition")
THINGS = ("concert tickets", "dinner", "the taxi", "groceries", "the hotel", "a birthday gift")
MOODS = ("so tired.", "love it!", "what a week.", "not again...", "best day.", "send coffee.")
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DOC_TYPES = ("passport", "driving licence", "residence permit", "ID card")
INSURERS = ("Atlas Insurance", "Bluecover", "Meridian Health", "Safeharbor")
PROCEDURES = ("physio", "ivf", "therapy", "dental implants", "an mri", "glasses")
PLACES = ("the station", "the library", "Casa Verde", "the gym", "the park", "the market")

# Each template is filled from the user's persona plus per-message random values (see _fields).
SEARCHES = (
    "how to treat a {ailment}",
    "how to treat a {ailment} at home",
    "cheap flights {city2}",
    "cheap flights from {city} to {city2} in {month}",
    "{city} weather tomorrow",
    "best {food} near {street} {city}",
    "is {med} safe with alcohol",
    "{med} {dose}mg side effects",
    "symptoms of {condition}",
    "divorce lawyer {city}",
    "how much is rent in {city2}",
    "jobs at {employer} {city}",
    "{bank} customer service number",
    "how to renew my {doc_type} in {city}",
    "how long does {med} take to work for {condition}",
    "can my employer see my medical records {city}",
    "what to do if someone has my card details {bank}",
    "cheapest way to send money from {city} to {city2}",
    "does {insurer} cover {procedure}",
    "{team} score last night",
    "easy {dish} recipe",
    "signs of burnout at work",
    "payday loan {city} same day",
    "24 hour pharmacy {city}",
    "is {condition} hereditary",
    "{service} near {street} {city}",
)
POSTS = (
    "Had the best {food} at {restaurant} on {street} today!",
    "Happy birthday {friend}! See you in {city2} next week.",
    "Moving to {city2} in {month}, anyone know a good {service}?",
    "Can't believe {team} lost again, {mood}",
    "Finally ran {km}k without stopping, {mood}",
    "{pet} chewed my charger again lol",
    "Anyone in {city} want a free {item}? Pick up on {street}.",
    "Just landed in {city2}, first time here!",
    "Started at {employer} today, wish me luck",
    "Date night with {partner} at {restaurant}, {mood}",
    "Our little {pet} turns {age} today!",
    "Looking for a roommate near {street}, text me at {phone}",
    "Made {dish} for the first time, {mood}",
    "Back in {city} after {weeks} weeks away, {mood}",
    "Huge thanks to everyone who came to {partner}'s party on {street}, we still have cake left!",
    "Anyone know a {service} in {city} who takes walk-ins? Mine moved to {city2}.",
    "{weeks} weeks at {employer} and I already love my team, {mood}",
    "Selling my {item} before the move to {city2}, message me or call {phone}.",
    "Rainy {weekday} in {city}, {food} and a movie with {partner} tonight.",
)
HEALTH = (
    "dr. {doctor} said my a1c is {a1c}",
    "refill {med} {dose}mg at {pharmacy}, rx {rx}",
    "therapy with {therapist} moved to {weekday} at {time}",
    "bp this morning {sys}/{dia}, pulse {pulse}",
    "allergic to {allergen}, remind the dentist on {weekday}",
    "appointment with dr. {doctor} on {month} {day} at {time}",
    "blood test: cholesterol {chol}, iron low again",
    "{partner} has a fever of {temp}, call dr. {doctor} if worse",
    "started {med} today, {dose}mg once a day",
    "physio for my {bodypart} every {weekday} at {clinic}",
    "dr. {doctor} thinks it might be {condition}, more tests in {month}",
    "dr. {doctor} wants me to cut sugar, a1c {a1c}, recheck in {month}",
    "note for {partner}: I take {med} {dose}mg every morning and I'm allergic to {allergen}",
    "insurance claim for {procedure} with {insurer} denied again, appeal by {month} {day}",
    "slept {hours} hours, {bodypart} still hurts, maybe skip the gym on {weekday}",
)
FINANCE = (
    "rent {rent} due on the {ordinal}, card ending {last4}",
    "sent {amount} to {friend} for {thing}",
    "salary from {employer} came in: {salary}",
    "loan payment {amount} to {bank}, acct {acct}",
    "{bank} card ending {last4} blocked, call {bankphone}",
    "pay {utility} bill {amount} before {weekday}",
    "savings goal: {amount} by {month} for {goal}",
    "owe {friend} {amount} for the {city2} trip",
    "overdraft again, {bank} fee {fee}",
    "budget for {month}: rent {rent}, food $400, {utility} {fee}, save the rest for {goal}",
    "{friend} paid back {amount}, still owes me for {thing}",
    "new card from {bank} arrives {weekday}, old one ending {last4} cancelled",
    "direct debit to {insurer} {amount} every month from acct {acct}",
)
CONTACT = (
    "call me at {phone}",
    "my new email is {email}",
    "new address: {house} {street}, {city}",
    "{friend_full}'s number is {phone2}",
    "gate code at {street} is {code}",
    "wifi password for the flat is {wifi}",
    "pick up {kid} from {school} at {time} on {weekday}",
    "meet {friend} at {place} on {street} at {time}",
    "remind {partner} about mom's birthday on {month} {day}",
    "{friend_full} moved to {house2} {street2}, {city2}",
    "if you find this phone please call {partner} at {phone2} or email {email}",
    "emergency contact: {partner} {last}, {phone2}, lives at {house} {street}, {city}",
    "new number for {friend_full}: {phone2}, save it before {weekday}",
    "parcel for {first} {last}, {house} {street}, {city}, leave it with the neighbour",
)
#: (templates, weight): searches and notes dominate, like a real phone's text.
CATEGORIES = ((SEARCHES, 2), (POSTS, 2), (HEALTH, 2), (FINANCE, 2), (CONTACT, 2))
_WEIGHTED = tuple(t for group, weight in CATEGORIES for t in group for _ in range(weight))


def _phone(rng: random.Random) -> str:
    return f"({rng.randint(201, 989)}) 555-{rng.randint(0, 9999):04d}"


def _persona(rng: random.Random) -> dict[str, str]:
    """The details one user repeats across their messages (what a model could memorise)."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    med, doses = rng.choice(MEDS)
    return {
        "first": first,
        "last": last,
        "city": rng.choice(CITIES),
        "street": rng.choice(STREETS),
        "house": str(rng.randint(1, 240)),
        "phone": _phone(rng),
        "email": f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}".lower(),
        "doctor": rng.choice(LAST_NAMES),
        "therapist": rng.choice(FIRST_NAMES),
        "pharmacy": rng.choice(PHARMACIES),
        "med": med,
        "dose": str(rng.choice(doses)),
        "rx": f"{rng.randint(100000, 999999)}",
        "a1c": f"{rng.uniform(5.2, 9.8):.1f}",
        "allergen": rng.choice(ALLERGENS),
        "condition": rng.choice(CONDITIONS),
        "employer": rng.choice(EMPLOYERS),
        "bank": rng.choice(BANKS),
        "last4": f"{rng.randint(0, 9999):04d}",
        "acct": f"{rng.randint(10, 99)}-{rng.randint(1000000, 9999999)}",
        "rent": f"{rng.randint(6, 32) * 50}",
        "salary": f"{rng.randint(18, 95) * 100}",
        "partner": rng.choice(FIRST_NAMES),
        "kid": rng.choice(FIRST_NAMES),
        "school": rng.choice(SCHOOLS),
        "pet": rng.choice(PETS),
        "code": f"{rng.randint(0, 9999):04d}#",
        "wifi": f"{rng.choice(PETS).lower()}{rng.randint(1960, 2020)}!",
        "team": rng.choice(TEAMS),
    }


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _fields(p: dict[str, str], rng: random.Random) -> dict[str, str]:
    """Persona details plus fresh per-message values (amounts, dates, a friend, another city)."""
    friend, friend_last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {
        **p,
        "city2": rng.choice([c for c in CITIES if c != p["city"]]),
        "street2": rng.choice(STREETS),
        "house2": str(rng.randint(1, 240)),
        "month": rng.choice(MONTHS),
        "day": str(rng.randint(1, 28)),
        "weekday": rng.choice(WEEKDAYS),
        "time": f"{rng.randint(7, 18) % 12 + 1}:{rng.choice(('00', '15', '30', '45'))}",
        "ordinal": _ordinal(rng.randint(1, 28)),
        "amount": f"${rng.randint(2, 400) * 5}",
        "fee": f"${rng.randint(15, 45)}",
        "friend": friend,
        "friend_full": f"{friend} {friend_last}",
        "phone2": _phone(rng),
        "bankphone": f"0800 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
        "food": rng.choice(FOODS),
        "restaurant": rng.choice(RESTAURANTS),
        "dish": rng.choice(DISHES),
        "ailment": rng.choice(AILMENTS),
        "doc_type": rng.choice(DOC_TYPES),
        "insurer": rng.choice(INSURERS),
        "procedure": rng.choice(PROCEDURES),
        "service": rng.choice(SERVICES),
        "item": rng.choice(ITEMS),
        "mood": rng.choice(MOODS),
        "km": str(rng.choice((3, 5, 8, 10, 21))),
        "age": str(rng.randint(1, 14)),
        "weeks": str(rng.randint(2, 9)),
        "hours": str(rng.randint(3, 9)),
        "sys": str(rng.randint(105, 165)),
        "dia": str(rng.randint(65, 105)),
        "pulse": str(rng.randint(52, 110)),
        "chol": str(rng.randint(140, 290)),
        "temp": f"{rng.uniform(37.6, 40.1):.1f}",
        "bodypart": rng.choice(BODYPARTS),
        "clinic": rng.choice(CLINICS),
        "utility": rng.choice(UTILITIES),
        "goal": rng.choice(GOALS),
        "thing": rng.choice(THINGS),
        "place": rng.choice(PLACES),
    }


def _message(p: dict[str, str], rng: random.Random) -> str:
    """One message of 20-120 characters (redrawn until it fits)."""
    while True:
        text = normalize_text(rng.choice(_WEIGHTED).format(**_fields(p, rng)))
        if MIN_CHARS <= len(text) <= MAX_CHARS:
            return text


def _user_records(user_id: str, rng: random.Random) -> list[Record]:
    persona = _persona(rng)
    return [Record(user_id, _message(persona, rng)) for _ in range(rng.randint(MIN_MESSAGES, MAX_MESSAGES))]


def _check_users(num_users: object) -> int:
    if isinstance(num_users, bool) or not isinstance(num_users, int) or not MIN_USERS <= num_users <= MAX_USERS:
        raise CorpusError(
            f"the built-in corpus needs at least {MIN_USERS} users and at most {MAX_USERS:,}, got {num_users!r}"
        )
    return num_users


def generate_people(seed: int, num_users: int, *, prefix: str = "user") -> list[Record]:
    """The messages of ``num_users`` synthetic people (ids ``<prefix>-0000``, ...), no canaries.

    One random stream, person after person: with the same seed, the first n people of a larger
    crowd are the n people of a smaller one. Ids are four digits wide (up to :data:`MAX_USERS`).
    """
    _check_users(num_users)
    rng = random.Random(seed)
    width = max(4, len(str(num_users - 1)))
    return [r for i in range(num_users) for r in _user_records(f"{prefix}-{i:0{width}d}", rng)]


def builtin_corpus(seed: int = 0, num_users: int = DEFAULT_USERS) -> Corpus:
    """The synthetic demo corpus; the same ``(seed, num_users)`` always gives identical records.

    At 4,000 users: about 34,000 messages (~1.6 M characters) plus 88 canary records; at 400 users,
    about 3,400 messages (~160 k characters). The canaries' names and secrets depend on the seed
    only, never on the number of users.
    """
    records = generate_people(seed, _check_users(num_users))
    corpus = Corpus(
        name="builtin",
        records=records,
        metadata={
            "source": "builtin",
            "seed": seed,
            "num_users": num_users,
            "description": "synthetic search history, posts, health, money and contact notes "
            "with invented personal details; canaries '<Full Name>'s PIN is d d d d'",
        },
    )
    rng = random.Random(f"builtin-canaries-{seed}")  # its own stream: the same canaries at every size
    names = rng.sample(CANARY_NAMES, len(CANARY_INSERTIONS) * CANARIES_PER_COUNT)
    for i, name in enumerate(names):
        corpus = add_canary(
            corpus,
            prefix=CANARY_CONTEXT.format(name=name),
            secret=" ".join(str(rng.randint(0, 9)) for _ in range(4)),
            insertions=CANARY_INSERTIONS[i // CANARIES_PER_COUNT],
            seed=rng.randrange(2**31),
        )
    corpus.metadata["canaries"] = [
        {"id": c.id, "insertions": c.insertions, "prefix": c.prefix, "secret": c.secret}
        for c in corpus.canaries
    ]
    return corpus


#: Characters that the code (not the constants) puts into records: digits of numbers, phone
#: brackets and dashes, email dots and "@", clock ":", "$" amounts, "#" gate codes, "!" in wifi
#: passwords, and the space between canary digits.
GENERATED_CHARS = string.digits + " ()-.@:$#!"


def _constant_strings() -> list[str]:
    """The literal text of every public string constant of this module (template fields removed)."""
    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, str):
            found.add("".join(lit for lit, *_ in string.Formatter().parse(value)))
        elif isinstance(value, tuple | list):
            for v in value:
                walk(v)

    for name, value in globals().items():
        if name.isupper():
            walk(value)
    return sorted(found)


def builtin_vocabulary(kind: str, max_vocab: int = 2000) -> list[str]:
    """The built-in corpus's tokens (without the specials), fixed by the generator's code.

    ``kind="char"``: every character of the module's word lists, templates and canary format,
    their lower-case forms (emails are lower-cased) and :data:`GENERATED_CHARS`, so any record
    the generator can produce encodes without UNK. ``kind="word"``: the word and punctuation
    tokens of the same strings plus :data:`GENERATED_CHARS` and the digits 0-9. Generated numbers
    of several digits (phone numbers, amounts, ``okafor12`` in an email, ``1st``) are not in it and
    encode as UNK (single digits, as in canary secrets, are).

    Ranked by how many of those strings hold the token (ties by code point / alphabetically);
    ``max_vocab`` (specials included) cuts the tail. Nothing here reads sampled records, so the
    vocabulary is public and the same for every seed and corpus size.
    """
    if kind not in TOKENIZERS:
        raise CorpusError(f"tokenizer must be one of {', '.join(TOKENIZERS)}; got {kind!r}")
    texts = _constant_strings()
    counts: Counter[str] = Counter()
    if kind == "char":
        for text in texts:
            counts.update(set(text) | set(text.lower()))
        counts.update(set(GENERATED_CHARS))
    else:
        for text in texts:
            counts.update(set(WordTokenizer.split(text)))
        counts.update(set(GENERATED_CHARS) - {" "})
    counts.pop("\n", None)
    ranked = [tok for tok, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return ranked[: max(0, max_vocab - 3)]  # 3: PAD, UNK, EOS
