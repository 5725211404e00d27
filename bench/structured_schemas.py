"""The 20 schemas of ``bench/structured_outputs.py``: pydantic models, a user's prompt, what a person accepts.

A realistic mix of what people ask a small model to fill: lists, Literal enums, nested objects
and lists of them, numbers, booleans and optional fields; half describe something the model may
know ("Describe Paris as JSON."), half extract from a sentence given in the prompt.

"Values a person would accept", checked on every parsed object (:func:`problems`):

- every string holds a letter or a digit (not ``"); "``), is at most 120 characters (the long
  text fields of a schema: 600), and does not loop: no piece of 3 or more characters repeated 3
  times in a row ("2023_2023_2023");
- no string looks like a key or a path instead of a value: none starts with ``.`` or ``/``, and
  none holds ``.`` ``/`` or ``_`` between letters without any space ("landmarks.list", "./Paris_2023"),
  except in the fields where such text is the value (emails, ids);
- no string is a word of the schema instead of a value: a JSON Schema keyword ("items", "array",
  "string", ...) or one of the schema's own field names ("tags" in ``tags``);
- no list repeats an item (compared without case and surrounding space), and no list is longer than 12;
- each schema's own checks: numbers in a plausible range (a population of Paris from 0.5 to 15
  million), lists with at least the items the request implies.

Facts are checked apart (problems starting with ``fact:``): what the prompt states (John is 42,
it is raining), and what the model should know (1984 is Orwell's, Tokyo is Japan's capital). A
135M model gets many wrong whatever the decoding does; they are reported, not counted as
unacceptable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel


class City(BaseModel):
    name: str
    country: str
    population_millions: float
    landmarks: list[str]


class Person(BaseModel):
    name: str
    age: int
    occupation: str
    hobbies: list[str]


class Book(BaseModel):
    title: str
    author: str
    year: int
    genres: list[str]


class Ingredient(BaseModel):
    name: str
    quantity: str


class Recipe(BaseModel):
    name: str
    servings: int
    ingredients: list[Ingredient]
    steps: list[str]


class Weather(BaseModel):
    city: str
    temperature_c: float
    condition: Literal["sunny", "cloudy", "rainy", "snowy"]
    humidity_percent: int


class Product(BaseModel):
    name: str
    price_usd: float
    in_stock: bool
    discount_percent: float | None = None
    tags: list[str]


class Event(BaseModel):
    title: str
    date: str
    location: str
    attendees: list[str]


class Movie(BaseModel):
    title: str
    director: str
    year: int
    rating: float
    cast: list[str]


class Address(BaseModel):
    street: str
    city: str
    postal_code: str
    country: str


class Sentiment(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]
    confidence: float


class Country(BaseModel):
    name: str
    capital: str
    continent: Literal["Africa", "Asia", "Europe", "North America", "South America", "Oceania"]
    languages: list[str]
    population_millions: float


class Todo(BaseModel):
    task: str
    done: bool


class TodoList(BaseModel):
    title: str
    items: list[Todo]


class Company(BaseModel):
    name: str
    founded: int
    headquarters: str
    products: list[str]
    publicly_traded: bool


class Animal(BaseModel):
    name: str
    animal_class: Literal["mammal", "bird", "fish", "reptile", "amphibian", "insect"]
    diet: Literal["herbivore", "carnivore", "omnivore"]
    lifespan_years: int
    habitats: list[str]


class Email(BaseModel):
    recipient: str
    subject: str
    body: str
    urgent: bool


class Planet(BaseModel):
    name: str
    moons: int
    has_rings: bool
    distance_from_sun_au: float


class OrderItem(BaseModel):
    product: str
    quantity: int
    unit_price: float


class Order(BaseModel):
    order_id: str
    customer: str
    items: list[OrderItem]
    total: float


class Contact(BaseModel):
    name: str
    email: str
    phone: str | None = None
    company: str | None = None


class Trip(BaseModel):
    destination: str
    days: int
    transport: Literal["plane", "train", "car", "bus"]
    activities: list[str]


FACT = "fact: "  # the prefix of a problem that is a wrong fact, not an unacceptable value


@dataclass(frozen=True)
class Case:
    model: type[BaseModel]
    prompt: str
    check: Callable[[BaseModel], list[str]]  # the schema's own problems with a parsed object
    free_text: frozenset[str] = frozenset()  # fields whose strings may be long (600 characters)
    identifiers: frozenset[str] = frozenset()  # fields whose values may look like paths (emails, ids)


def _within(name: str, value: float, low: float, high: float) -> list[str]:
    return [] if low <= value <= high else [f"{name} {value} not in [{low}, {high}]"]


def _has(name: str, value: str, *expected: str) -> list[str]:
    ok = any(e.lower() in value.lower() for e in expected)
    return [] if ok else [f"{FACT}{name} {value!r} lacks {' or '.join(expected)}"]


def _is(name: str, value, expected) -> list[str]:
    return [] if value == expected else [f"{FACT}{name} {value!r}, not {expected!r}"]


def _some(name: str, items: list, low: int = 1) -> list[str]:
    return [] if len(items) >= low else [f"{name} has {len(items)} items, fewer than {low}"]


CASES = [
    Case(City, "Describe Paris as JSON.", lambda o: _has("name", o.name, "Paris") + _has("country", o.country, "France")
         + _within("population_millions", o.population_millions, 0.5, 15) + _some("landmarks", o.landmarks)),
    Case(Person, "Extract the person as JSON: John Smith is a 42-year-old carpenter who likes fishing and chess.",
         lambda o: _has("name", o.name, "John") + _is("age", o.age, 42) + _has("occupation", o.occupation,
         "carpenter") + _some("hobbies", o.hobbies)),
    Case(Book, "Describe the book 1984 by George Orwell as JSON.", lambda o: _has("author", o.author, "Orwell")
         + _within("year", o.year, 1900, 2025) + _some("genres", o.genres)),
    Case(Recipe, "Give a simple pancake recipe as JSON.", lambda o: _within("servings", o.servings, 1, 12)
         + _some("ingredients", o.ingredients, 2) + _some("steps", o.steps)),
    Case(Weather, "Report this weather as JSON: it is 18 degrees and raining in London, humidity 80%.",
         lambda o: _has("city", o.city, "London") + _is("temperature_c", o.temperature_c, 18)
         + _is("condition", o.condition, "rainy") + _is("humidity_percent", o.humidity_percent, 80)),
    Case(Product, "Describe a wireless computer mouse for an online shop as JSON.",
         lambda o: _within("price_usd", o.price_usd, 1, 500)
         + _within("discount_percent", o.discount_percent or 0, 0, 90)),
    Case(Event, "Extract the event as JSON: the team meeting is on 2024-05-03 in Room 4 with Anna, Ben and Carl.",
         lambda o: _has("date", o.date, "2024-05-03", "May 3") + _has("location", o.location, "Room 4")
         + _some("attendees", o.attendees, 2)),
    Case(Movie, "Describe the movie Titanic as JSON.", lambda o: _has("title", o.title, "Titanic")
         + _within("year", o.year, 1900, 2025) + _within("rating", o.rating, 0, 10)),
    Case(Address, "Extract the address as JSON: 221B Baker Street, London NW1 6XE, United Kingdom.",
         lambda o: _has("street", o.street, "Baker") + _has("city", o.city, "London") + _has("country", o.country,
         "United Kingdom", "UK")),
    Case(Sentiment, "Classify the sentiment of this review as JSON: I love this phone, the battery lasts all day.",
         lambda o: _is("sentiment", o.sentiment, "positive")
         + _within("confidence", o.confidence, 0, 1)),
    Case(Country, "Describe Japan as JSON.", lambda o: _has("capital", o.capital, "Tokyo")
         + _is("continent", o.continent, "Asia") + _some("languages", o.languages)
         + _within("population_millions", o.population_millions, 50, 200)),
    Case(TodoList, "Make a to-do list for moving house as JSON.", lambda o: _some("items", o.items, 2)),
    Case(Company, "Describe the company Apple as JSON.", lambda o: _has("name", o.name, "Apple")
         + _within("founded", o.founded, 1900, 2025) + _some("products", o.products)),
    Case(Animal, "Describe the African elephant as JSON.", lambda o: _has("name", o.name, "elephant")
         + _is("animal_class", o.animal_class, "mammal") + _within("lifespan_years", o.lifespan_years, 5, 120)
         + _some("habitats", o.habitats)),
    Case(Email, "Write a short email to Tom asking to move our meeting to Friday, as JSON.",
         lambda o: _has("recipient", o.recipient, "Tom") + _has("body", o.body, "Friday"),
         free_text=frozenset({"body"}), identifiers=frozenset({"recipient"})),
    Case(Planet, "Describe the planet Saturn as JSON.", lambda o: _has("name", o.name, "Saturn")
         + _within("moons", o.moons, 0, 300) + _within("distance_from_sun_au", o.distance_from_sun_au, 0.1, 50)),
    Case(Order, "Extract the order as JSON: order A-1001 by Jane Doe: 2 notebooks at $3.50 each and 1 pen at $1.20.",
         lambda o: _has("customer", o.customer, "Jane") + _some("items", o.items, 2)
         + _within("total", o.total, 0, 100), identifiers=frozenset({"order_id"})),
    Case(Contact, "Extract the contact as JSON: reach Sam Lee at sam.lee@example.com, he works at Acme.",
         lambda o: _has("name", o.name, "Sam") + _has("email", o.email, "sam.lee@example.com"),
         identifiers=frozenset({"email", "phone"})),
    Case(Trip, "Plan a 3-day trip to Rome as JSON.", lambda o: _has("destination", o.destination, "Rome")
         + _is("days", o.days, 3) + _some("activities", o.activities)),
    Case(Book, "Describe the book Pride and Prejudice as JSON.", lambda o: _has("author", o.author, "Austen")
         + _within("year", o.year, 1700, 2025) + _some("genres", o.genres)),
]  # fmt: skip

_LOOP = re.compile(r"(.{3,}?)\1{2,}", re.DOTALL)
_PATHLIKE = re.compile(r"^[./]|[A-Za-z0-9][._/][A-Za-z]")


_KEYWORDS = {"type", "items", "array", "string", "object", "number", "integer", "boolean", "null", "title",
             "properties", "required", "list", "value", "enum"}  # fmt: skip


def problems(case: Case, parsed: BaseModel) -> list[str]:
    """Why a person would not accept ``parsed`` (empty: acceptable): the module docstring's rules."""
    found = case.check(parsed)
    words = _KEYWORDS | {name.lower() for name in _field_names(case.model)}
    _walk(parsed.model_dump(), case, "", found, words)
    return found


def _field_names(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        names.add(name)
        for inner in getattr(info.annotation, "__args__", ()) + (info.annotation,):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                names |= _field_names(inner)
    return names


def _walk(value, case: Case, field: str, found: list[str], words: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _walk(item, case, key, found, words)
    elif isinstance(value, list):
        keys = [str(v).strip().lower() for v in value]
        if len(set(keys)) < len(keys):
            found.append(f"{field}: repeated items")
        if len(value) > 12:
            found.append(f"{field}: {len(value)} items")
        for item in value:
            _walk(item, case, field, found, words)
    elif isinstance(value, str):
        limit = 600 if field in case.free_text else 120
        if not value.strip() or len(value) > limit:
            found.append(f"{field}: {len(value)} characters")
        elif not any(c.isalnum() for c in value):
            found.append(f"{field}: no letter or digit ({value!r})")
        elif value.strip().lower() in words:
            found.append(f"{field}: a word of the schema, not a value ({value!r})")
        elif _LOOP.search(value):
            found.append(f"{field}: loops ({_LOOP.search(value).group(0)[:30]!r})")
        elif field not in case.identifiers and " " not in value.strip() and _PATHLIKE.search(value):
            found.append(f"{field}: looks like a key or path ({value[:30]!r})")
