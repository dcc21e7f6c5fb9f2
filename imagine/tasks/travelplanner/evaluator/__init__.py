"""The official TravelPlanner evaluator, verdict for verdict, plus a strict mode for rewards (`imagine eval`)."""
