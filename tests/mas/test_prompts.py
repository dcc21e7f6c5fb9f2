"""The prompt files moved from the teacher package to the task; what a trace records must not change.

Every trace stores each call's prompt hash and ``prompt_version``. A v1 file edited in place would
make old and new traces claim the same version for different prompts, so v1 is pinned here by hash;
a new prompt is a new version directory.
"""

from __future__ import annotations

import pytest

from imagine.config import load_config
from imagine.mas.config import MasConfig
from imagine.mas.runner import load_queries, read_traces, run_sync
from imagine.tasks.travelplanner.schema import query_from_record
from imagine.tasks.travelplanner.student.prompt import student_messages
from imagine.tasks.travelplanner.student.prompts import load_prompt, text_hash

# text_hash of each shipped v1 file, as recorded when they lived in imagine/mas/prompts/v1/.
V1_HASHES = {"reasoner": "e68a8fc7e29bdceb", "judge": "2ecfa8ad3591aec0", "reflector": "a7e303460788b09a"}


@pytest.mark.parametrize("name", sorted(V1_HASHES))
def test_v1_prompt_files_are_frozen(name):
    assert text_hash(load_prompt(name, "v1")) == V1_HASHES[name]


def test_teacher_records_the_prompt_the_student_is_given(world, world_db, tmp_path):
    """SFT pairs the Reasoner's user turn with the trace; rollouts rebuild it with student_messages.
    The two must be the same bytes, and the trace's hash must be the hash of those bytes."""
    db_dir, queries_path, records = world
    cfg = load_config(MasConfig, "configs/mas/scripted.yaml", [f"db={db_dir}"])
    queries = load_queries(queries_path)[:3]
    run_sync(cfg, world_db, queries, tmp_path)
    traces = read_traces(tmp_path)
    assert len(traces) == 3
    by_id = {rec["id"]: rec for rec in records}
    for qid, trace in traces.items():
        student = student_messages(query_from_record(by_id[qid]), world_db, style=cfg.reference_style,
                                   prompt_version=cfg.prompt_version)[0]["content"]
        assert trace["prompt"] == student
        reasoner_call = next(c for c in trace["calls"] if c["role"] == "reasoner")
        assert reasoner_call["prompt_hash"] == text_hash(student)
