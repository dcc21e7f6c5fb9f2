"""Two ways to ask the sandbox the evaluator's questions.

:class:`ScanLookup` filters whole tables on every call, the way the official pandas code does; it is
the honest baseline for the benchmark and the reference path's default. The indexed
:class:`~imagine.sandbox.database.Database` answers the same questions from per-city indexes and a
memo; tests assert the two agree.
"""

from __future__ import annotations

from imagine.sandbox.database import Accommodation, Database, Flight, Restaurant


class ScanLookup:
    def __init__(self, db: Database):
        self.db = db

    def find_restaurant(self, name: str, city: str) -> tuple[Restaurant | None, int]:
        rows = [r for r in self.db.restaurants if name in r.name and r.city == city]
        return (rows[0] if rows else None), len(rows)

    def find_attraction(self, name: str, city: str) -> bool:
        return any(name in a.name and a.city == city for a in self.db.attractions)

    def find_accommodation(self, name: str, city: str) -> tuple[Accommodation | None, int]:
        rows = [a for a in self.db.accommodations if name in a.name and a.city == city]
        return (rows[0] if rows else None), len(rows)

    def has_flight(self, number: str, origin: str, dest: str) -> bool:
        return any(f.number == number and f.origin == origin and f.dest == dest for f in self.db.flights)

    def first_flight(self, number: str) -> Flight | None:
        return next((f for f in self.db.flights if f.number == number), None)

    def transport_cost(self, origin: str, destination: str, mode: str) -> int | None:
        return self.db.transport_cost(origin, destination, mode)

    @property
    def city_state(self) -> dict[str, str]:
        return self.db.city_state


class IndexedLookup(ScanLookup):
    """The same answers from the database's indexes."""

    def find_restaurant(self, name: str, city: str) -> tuple[Restaurant | None, int]:
        return self.db.find_restaurant(name, city)

    def find_attraction(self, name: str, city: str) -> bool:
        return self.db.find_attraction(name, city)

    def find_accommodation(self, name: str, city: str) -> tuple[Accommodation | None, int]:
        return self.db.find_accommodation(name, city)

    def has_flight(self, number: str, origin: str, dest: str) -> bool:
        return self.db.has_flight(number, origin, dest)

    def first_flight(self, number: str) -> Flight | None:
        return self.db.flight_by_number.get(number)
