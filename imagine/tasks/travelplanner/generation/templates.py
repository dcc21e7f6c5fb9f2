"""Natural-language query text from a structured query.

Why templates rather than an LLM here: generation must run on a bare machine, deterministically. The
phrasings imitate the official queries (trip opening + people + budget + one sentence per local
constraint) with enough variety (>= 10 openings per level, several wordings per constraint value) that
a model cannot key on one surface form. An LLM paraphrase pass can be layered on later.
"""

from __future__ import annotations

import random
from datetime import date

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}

# {org} {dest_phrase} {days} {start} {end} {people_phrase} {budget}
EASY = [
    "Please help me plan a trip from {org} to {dest_phrase} spanning {days} days from {start} to {end}. "
    "The travel should be planned for a single person with a budget of ${budget}.",
    "I'm departing from {org} and heading to {dest_phrase} for a {days}-day trip from {start} to {end}. "
    "Can you help me keep this journey within a budget of ${budget}?",
    "Could you create a {days}-day travel plan for one person, starting in {org} and visiting {dest_phrase} "
    "from {start} to {end}? My budget is ${budget}.",
    "Please design a solo trip from {org} to {dest_phrase} lasting {days} days, from {start} through {end}, "
    "with a total budget of ${budget}.",
    "I need an itinerary for a {days}-day journey from {org} to {dest_phrase}, {start} to {end}. "
    "It's just me, and I can spend up to ${budget}.",
    "Plan a {days}-day trip for me: I leave {org} on {start}, explore {dest_phrase}, and come back by {end}. "
    "Keep everything under ${budget}.",
    "Can you put together a travel plan for a single traveler going from {org} to {dest_phrase}? The trip "
    "runs {days} days, from {start} to {end}, and the budget is ${budget}.",
    "I'd like to travel alone from {org} to {dest_phrase} for {days} days between {start} and {end}. "
    "Please plan it with a budget of ${budget}.",
    "Help me organize a {days}-day getaway from {org} to {dest_phrase} for one person, from {start} to {end}, "
    "without exceeding ${budget}.",
    "Seeking a {days}-day itinerary for one individual traveling from {org} to {dest_phrase} from {start} to "
    "{end}. The budget for this journey is ${budget}.",
    "Could you map out a one-person trip beginning in {org} with {dest_phrase} as the destination, "
    "{start} to {end} ({days} days)? I have ${budget} to spend.",
]
GROUP = [
    "Could you formulate a {days}-day trip plan for {people_phrase}? We will be starting in {org} and would "
    "like to visit {dest_phrase} from {start} to {end}. Our budget is approximately ${budget}.",
    "We are {people_phrase} planning a {days}-day trip from {org} to {dest_phrase}, from {start} to {end}, "
    "with a budget of ${budget}.",
    "Please create a travel itinerary for {people_phrase} departing from {org} and heading to "
    "{dest_phrase} for {days} days, {start} through {end}. The total budget is ${budget}.",
    "Can you help plan a {days}-day journey for {people_phrase} from {org} to {dest_phrase}? Dates: {start} "
    "to {end}. We want to stay within ${budget}.",
    "We require a {days}-day travel itinerary for {people_phrase} leaving from {org} and covering "
    "{dest_phrase}, starting from {start} to {end}. Our budget is up to ${budget}.",
    "Plan a trip for {people_phrase}: we start in {org} on {start}, explore {dest_phrase}, and return on "
    "{end}. We can spend ${budget} in total.",
    "I'm organizing a {days}-day trip for {people_phrase} from {org} to {dest_phrase} between {start} and "
    "{end}, and we have a budget of ${budget}.",
    "Could you design a {days}-day itinerary for {people_phrase}, traveling from {org} to {dest_phrase} from "
    "{start} to {end}? Please keep the cost under ${budget}.",
    "Our group of {people_count} wants to go from {org} to {dest_phrase} for {days} days ({start} to {end}). "
    "The budget is ${budget}.",
    "Help {people_phrase} plan a {days}-day trip, leaving {org} on {start} and coming back on {end}, visiting "
    "{dest_phrase} with a budget of ${budget}.",
    "Seeking assistance to develop a {days}-day travel plan for {people_phrase}. The trip begins in {org}, "
    "with {dest_phrase} as the destination, from {start} to {end}. The budget is ${budget}.",
]

HOUSE_RULE = {
    "parties": ["We plan to host a small party, so the accommodation must allow parties.",
                "Our accommodations need to permit parties.",
                "We'd like a place where having a party is allowed."],
    "smoking": ["Some of us smoke, so please choose accommodations that allow smoking.",
                "Smoking must be permitted where we stay.",
                "We need smoking-friendly accommodations."],
    "children under 10": ["We are traveling with children under 10, so the accommodation must allow them.",
                          "Our lodging has to accept children under 10.",
                          "Please make sure our stay welcomes children under 10."],
    "visitors": ["We expect visitors, so the accommodation must allow visitors.",
                 "Our accommodations should let us have visitors.",
                 "We need a place that permits visitors."],
    "pets": ["We will be accompanied by our pets, so we need pet-friendly accommodations.",
             "Our accommodation must allow pets.",
             "We're bringing pets, so please pick places that accept them."],
}
ROOM_TYPE = {
    "entire room": ["We would like to rent entire rooms for our accommodations.",
                    "We prefer to stay in an entire home or apartment.",
                    "Please book entire rooms only."],
    "private room": ["We'd like private rooms for our stay.",
                     "Our accommodations should be private rooms.",
                     "Please choose private rooms."],
    "shared room": ["A shared room is fine and preferred for our accommodations.",
                    "We want to stay in shared rooms.",
                    "Please find us a shared room."],
    "not shared room": ["We do not want to stay in a shared room.",
                        "The accommodation should not be a shared room.",
                        "Please avoid shared rooms."],
}
TRANSPORT = {
    "no flight": ["We prefer not to take any flights, so the plan should not include them.",
                  "Please avoid flights for this trip.",
                  "We don't want to fly; ground transportation only."],
    "no self-driving": ["We won't be driving ourselves, so no self-driving please.",
                        "Self-driving is not an option for us.",
                        "Please don't plan any self-driving."],
}
CUISINE = [
    "We would love to try {cuisines} cuisines during the trip.",
    "Our meals should include {cuisines} food.",
    "We're keen to experience {cuisines} cuisine.",
]


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def pretty_date(iso: str, with_year: bool = False) -> str:
    d = date.fromisoformat(iso)
    text = f"{d.strftime('%B')} {ordinal(d.day)}"
    return f"{text}, {d.year}" if with_year else text


def join_words(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f", and {items[-1]}" if len(items) > 2 else f"{items[0]} and {items[1]}"


def dest_phrase(query, rng: random.Random) -> str:
    if query.days <= 3:
        return query.dest
    n = query.visiting_city_number
    word = NUMBER_WORDS.get(n, str(n))
    return rng.choice([f"{word} cities in {query.dest}", f"{n} cities in {query.dest}",
                       f"{word} different cities in {query.dest}"])


def people_phrase(n: int, rng: random.Random) -> str:
    word = NUMBER_WORDS.get(n, str(n))
    if n == 2:
        return rng.choice(["two people", "a couple", "the two of us", "2 people"])
    return rng.choice([f"{word} people", f"a group of {n} people", f"{n} travelers", f"a party of {word}"])


def constraint_sentences(constraints: dict, rng: random.Random) -> list[str]:
    out = []
    rule = constraints.get("house rule")
    if rule:
        out.append(rng.choice(HOUSE_RULE[rule]))
    cuisine = constraints.get("cuisine")
    if cuisine:
        out.append(rng.choice(CUISINE).format(cuisines=join_words(list(cuisine))))
    room = constraints.get("room type")
    if room:
        out.append(rng.choice(ROOM_TYPE[room]))
    transport = constraints.get("transportation")
    if transport:
        out.append(rng.choice(TRANSPORT[transport]))
    rng.shuffle(out)
    return out


def render_query(query, rng: random.Random) -> str:
    """One natural-language request for ``query`` (a Query), drawn from the level's phrasings."""
    pool = EASY if query.people_number == 1 and query.level == "easy" else GROUP
    template = rng.choice(pool)
    text = template.format(
        org=query.org, dest_phrase=dest_phrase(query, rng), days=query.days,
        start=pretty_date(query.date[0]), end=pretty_date(query.date[-1], with_year=True),
        people_phrase=people_phrase(query.people_number, rng), people_count=query.people_number,
        budget=f"{query.budget:,}",
    )
    sentences = constraint_sentences(query.local_constraint, rng)
    return " ".join([text, *sentences])
