"""TravelPlanner: the benchmark the project is measured on, as one task package.

The folders are the jobs:

- ``schema``, ``parse``, ``strings``, ``reference``: query records, model-output parsing, the
  official string rules and reference information, which every job below shares;
- ``evaluator/``: the official evaluator and its metrics (``imagine eval``);
- ``generation/``: Stage 1 query generation and the feasibility solver (``imagine queries gen``);
- ``student/``: the trained model's prompt (= the Reasoner's), the GRPO reward and the GRPO task;
- ``benchmark/``: official splits in, leaderboard submission out (``imagine predict``).

The names most callers need are importable from here.
"""

from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
from imagine.tasks.travelplanner.evaluator.metrics import metrics
from imagine.tasks.travelplanner.parse import parse_output
from imagine.tasks.travelplanner.schema import Query, load_queries
from imagine.tasks.travelplanner.student.reward import RewardConfig, compute_rewards

__all__ = ["BatchChecker", "Query", "RewardConfig", "compute_rewards", "load_queries", "metrics", "parse_output"]
