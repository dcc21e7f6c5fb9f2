"""TravelPlanner as a GRPO task: the student's prompts, the paper's reward, the official metrics.

Each completion is scored twice from one parse: the reward runs the constraints in strict mode
(the official loopholes would otherwise pay a policy to exploit them), while the logged pass rates
use the official semantics, so a training curve means what the leaderboard means. Components also
track the paper's Figure 9: how often the reflection concludes "No errors.", and how often that
verdict is honest (the plan really passes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from imagine.config import from_dict
from imagine.tasks.travelplanner.evaluator.checks_batch import BatchChecker
from imagine.tasks.travelplanner.evaluator.metrics import counts
from imagine.tasks.travelplanner.parse import NO_ERRORS, REFLECTION_MARKER, parse_output
from imagine.tasks.travelplanner.schema import load_queries
from imagine.tasks.travelplanner.student.prompt import student_messages
from imagine.tasks.travelplanner.student.reward import RewardConfig, compute_rewards
from imagine.train.task import Score


@dataclass
class TravelPlannerOptions:
    queries: str = ""  # query JSONL with reference_information (imagine queries gen)
    db: str = ""  # the sandbox database the queries were generated from
    reference_style: str = "compact"  # must match the teacher config the student was trained on
    prompt_version: str = "v1"
    feasible_only: bool = False  # drop queries the solver marked infeasible (no plan can pass)
    reward: RewardConfig = field(default_factory=RewardConfig)

    def validate(self) -> None:
        if not self.queries or not self.db:
            raise ValueError("queries and db are required")


def says_no_errors(think: str | None) -> bool:
    """Whether the reflection's verdict is the template's "No errors."."""
    if not think or REFLECTION_MARKER not in think:
        return False
    return think.split(REFLECTION_MARKER, 1)[1].lstrip().startswith(NO_ERRORS)


class TravelPlannerTask:
    def __init__(self, opts: TravelPlannerOptions):
        from imagine.sandbox.database import Database

        self.opts = opts
        queries = load_queries(opts.queries)
        if opts.feasible_only:
            queries = [q for q in queries if q.extra.get("feasible") is not False]
        self.queries = queries
        self.db = Database(opts.db)
        self.checker = BatchChecker(self.db)

    def prompts(self) -> list[list[dict[str, str]]]:
        return [student_messages(q, self.db, style=self.opts.reference_style, prompt_version=self.opts.prompt_version)
                for q in self.queries]

    def score(self, prompt_indices: Sequence[int], texts: Sequence[str]) -> list[Score]:
        rc = self.opts.reward
        queries = [self.queries[i] for i in prompt_indices]
        rewards = compute_rewards(self.checker, queries, texts, rc)
        out = []
        for q, text, r in zip(queries, texts, rewards, strict=True):
            parsed = parse_output(text, require_think=rc.require_think, require_open_tag=rc.require_open_tag,
                                  reflection_pattern=rc.reflection_pattern)
            official = self.checker.check_one(q, parsed.plan if parsed.plan is not None else None)
            no_errors = says_no_errors(parsed.think)
            c = counts([official], [q])
            c["No errors. is a final pass"] = (float(no_errors and official.final_pass), float(no_errors))
            out.append(Score(
                reward=r.total,
                components={"format_ok": float(r.format_ok), "commonsense": r.commonsense, "hard": r.hard,
                            "reflection": r.reflection, "strict_final_pass": float(r.final_pass),
                            "has_reflection": float(parsed.has_reflection), "no_errors": float(no_errors)},
                counts=c,
            ))
        return out


def make_task(options: dict) -> TravelPlannerTask:
    return TravelPlannerTask(from_dict(TravelPlannerOptions, options, "task.options"))
