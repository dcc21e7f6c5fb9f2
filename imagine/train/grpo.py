"""The GRPO loop (IMAGINE stage 3b): sample, score, compare within groups, update, sync, repeat.

One step, every rank (each rank owns a rollout engine and samples its own share of the prompts):

1. take ``prompts_per_step`` prompts from the shared sampler and keep this rank's share;
2. generate G completions per prompt, with the log-probs of the distribution sampled;
3. score them with the task (reward + logged components), and 4. compute group advantages;
5. pack rollouts into micro-batches of per-token tensors (advantages, sampling/old/reference log-probs);
6. old log-probs are recomputed only when a rollout batch gets more than one update; otherwise the
   loss's ratio is taken against ``logp.detach()``;
7. run the registered policy loss over ``epochs x mini_batches`` optimizer steps, each normalised by
   the global token / sequence counts of its mini-batch; 8. clip, step;
9. push the new weights into the engine in place; 10. log, checkpoint.

With ``rollout.async_steps=1`` (one process), steps 1-4 of step k+1 run in a background thread during
step k's update, with the weights from before it: every batch is then one update old, and truncated
IS (``loss.is_cap``) weighs each token by the current policy over the one that sampled it. The loop
waits for the thread before the sync; a checkpoint keeps the sampled batch, whose weights are gone.
"""

from __future__ import annotations

import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from imagine.config import ConfigError, load_config, to_dict
from imagine.rollout import Rollout, SamplingConfig, make_engine, max_positions, pad_token_id
from imagine.train import dist as D
from imagine.train import setup as S
from imagine.train.checkpoint import export_hf
from imagine.train.config import GRPOConfig
from imagine.train.data import ResumableSampler
from imagine.train.grpo_stats import Stats
from imagine.train.losses import aggregate, policy_loss, resolve
from imagine.train.optim import clip_gradients
from imagine.train.profiling import StepProfiler
from imagine.train.rollout_batch import filler_batch, micro_batches, mini_batch_rows
from imagine.train.task import Task, load_task
from imagine.train.weight_sync import hf_named_tensors
from kernels import group_advantages


def train(cfg: GRPOConfig) -> dict:
    return D.run_in_process_group(cfg.train.device, _train, cfg)


def _train(cfg: GRPOConfig, info: D.DistInfo) -> dict:
    tc, rc = cfg.train, cfg.rollout
    out_dir = Path(cfg.out_dir)
    ckpt_root = out_dir / "checkpoints"
    if rc.prompts_per_step % info.world_size:
        raise ConfigError(f"rollout.prompts_per_step={rc.prompts_per_step} must be a multiple of the world size "
                          f"({info.world_size})")
    if rc.async_steps and info.world_size > 1:
        raise ConfigError("rollout.async_steps=1 runs in one process for now: under torchrun the background "
                          "sampler's engine and the trainer's collectives would share one process group")
    S.start_run(out_dir, cfg, info)
    torch.manual_seed(tc.seed)
    loss_cfg = resolve(cfg.loss)

    # --- task, prompts, policy, reference, engine --------------------------------------------------
    tokenizer = S.prepare_tokenizer(cfg.model.tokenizer or cfg.model.path, info)
    try:
        task = load_task(cfg.task.name, cfg.task.options)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    prompts = [encode_chat(tokenizer, m) for m in task.prompts()]
    sampler = ResumableSampler(len(prompts), tc.seed, True)
    pad_id = pad_token_id(tokenizer)
    policy = S.build_policy(cfg.model.path, tokenizer, info, tc, attn_implementation=cfg.model.attn_implementation)
    if tc.share_prompts and (attn := policy.lm.config._attn_implementation) not in ("sdpa", "eager"):
        # config validation refused flash-attn when named; "auto" may still have picked it
        raise ConfigError(f"train.share_prompts=true needs sdpa or eager attention, and model.attn_implementation="
                          f"{cfg.model.attn_implementation} resolved to {attn}: set it to sdpa")
    t = S.make_trainable(policy, tc, info)
    reference = None
    if loss_cfg.kl_coef > 0:
        reference = S.frozen_reference(cfg.model.ref_path or cfg.model.path, tokenizer, info, tc,
                                       attn_implementation=cfg.model.attn_implementation)
    if tc.share_prompts:
        for net in (policy, reference):
            if net is not None:
                net.use_shared_prompt_attention()
    state = S.maybe_resume(cfg.checkpoint, ckpt_root, t, info)
    if state is not None:
        sampler.load_state_dict(state["sampler"])
    run = Run(task, prompts, sampler, tokenizer, pad_id, t, reference, build_engine(cfg, info),
              state["step"] if state else 0, state["path"] if state else None, state.get("pending") if state else None,
              ThreadPoolExecutor(1, thread_name_prefix="rollout") if rc.async_steps else None)
    try:
        return _loop(cfg, info, run)
    finally:
        if run.background is not None:
            run.background.shutdown(cancel_futures=True)  # lets a sampling call in flight finish first
        run.engine.close()


@dataclass
class Run:
    """What the setup hands the loop."""
    task: Task
    prompts: list[list[int]]
    sampler: ResumableSampler
    tokenizer: object
    pad_id: int
    trainable: S.Trainable
    reference: torch.nn.Module | None
    engine: object
    start_step: int
    resumed_from: str | None
    pending: dict | None = None  # a checkpoint's sampled next batch (rollout.async_steps=1), raw
    background: ThreadPoolExecutor | None = None  # samples the next batch (rollout.async_steps=1)


def _loop(cfg: GRPOConfig, info: D.DistInfo, run: Run) -> dict:
    tc, rc = cfg.train, cfg.rollout
    ckpt_root = Path(cfg.out_dir) / "checkpoints"
    t, model, engine, task, prompts, sampler = run.trainable, run.trainable.model, run.engine, run.task, run.prompts, run.sampler
    reference, pad_id, start_step = run.reference, run.pad_id, run.start_step
    loss_cfg = resolve(cfg.loss)
    norm_constant = loss_cfg.norm_constant or rc.max_tokens
    engine.sync_weights(hf_named_tensors(model))  # a resumed policy is not the engine's start checkpoint
    logger = S.make_logger(Path(cfg.out_dir), cfg.log, info, total_steps=tc.max_steps, start_step=start_step, config=cfg,
                           stage="grpo", headline=("reward", "rollout/Final Pass Rate", "kl_mean", "seconds"))
    logger.info(f"grpo: {len(prompts)} prompts, G={rc.group_size}, {rc.prompts_per_step} prompts/step, "
                f"loss {loss_cfg.name} ({loss_cfg.aggregation}), engine {rc.engine}, world size {info.world_size}"
                + (f"; resumed from {run.resumed_from} at step {start_step}" if run.resumed_from else ""))
    rewards_log = []
    profiler = StepProfiler(cfg.profile, cfg.out_dir, rank=info.rank, start_step=start_step)

    # --- the loop -----------------------------------------------------------------------------
    # rollout.async_steps=1: a background thread samples step k+1 (with the weights before step k's
    # update) while step k updates; the loop waits for it only before the weight sync.
    pending = finished(restore_batch(run.pending, cfg, task, info)) if run.pending else None
    for step in range(start_step, tc.max_steps):
        t_step = time.perf_counter()
        # 1-4: rollouts, rewards, group advantages (more rounds with dynamic sampling)
        batch = pending.result() if pending is not None else collect(step, cfg, run, info)
        pending = None
        if run.background is not None and step + 1 < tc.max_steps:
            pending = run.background.submit(collect, step + 1, cfg, run, info)
        stats, times, rollouts, advantages, loss_rows = (batch.stats, batch.times, batch.rollouts, batch.advantages,
                                                         batch.loss_rows)
        if rc.sleep_between_steps:
            engine.sleep()

        # 5-8: policy updates
        t0 = time.perf_counter()
        updates = tc.epochs * tc.mini_batches
        gen = torch.Generator().manual_seed(step_seed(tc.seed, step, 0, info.rank))
        plan = [mini_batch_rows(len(rollouts), tc.mini_batches, gen) for _ in range(tc.epochs)]
        all_rows = list(range(len(rollouts)))
        # Old and reference log-probs of every rollout, before any update of this step.
        fixed = {}
        for name, net in (("old_logp", model if updates > 1 else None), ("ref_logp", reference)):
            if net is not None:
                fixed[name] = logprobs_of(net, rollouts, all_rows, advantages, loss_rows, tc, rc, pad_id, info)
        if "old_logp" in fixed:
            stats.add_mismatch(rollouts, fixed["old_logp"])
        for epoch_rows in plan:
            for rows in epoch_rows:
                mbs = micro_batches(rollouts, rows, advantages, loss_rows, size=tc.micro_batch_size, pad_id=pad_id,
                                    share_prompts=tc.share_prompts)
                mbs = D.pad_to_longest(mbs, filler_batch(pad_id), info.device)
                n_micro = len(mbs)
                tokens, seqs = D.all_reduce_sum([sum(mb.num_tokens for mb in mbs),
                                                 sum(int(mb.mask.sum(-1).gt(0).sum()) for mb in mbs)], info.device)
                for i, mb in enumerate(mbs):
                    model.set_requires_gradient_sync(t.sync_every_micro_batch or i == n_micro - 1)
                    for name, per_row in fixed.items():
                        setattr(mb, name, gather_rows(per_row, mb))
                    mb = mb.to(info.device)
                    logp, entropy = model(mb.input_ids, mb.position_ids, mb.targets, temperature=rc.temperature,
                                          return_entropy=cfg.log.entropy, segment_ids=mb.segment_ids)
                    logp = mb.per_sequence(logp)
                    entropy = None if entropy is None else mb.per_sequence(entropy)
                    old = mb.old_logp if mb.old_logp is not None else logp.detach()
                    if mb.old_logp is None and updates == 1:
                        stats.add_mismatch_tensors(old, mb.sampling_logp, mb.mask)
                    per_token, metrics = policy_loss(loss_cfg, logp, old, mb.advantages, mb.mask,
                                                     sampling_logp=mb.sampling_logp, ref_logp=mb.ref_logp)
                    loss = aggregate(per_token, mb.mask, loss_cfg.aggregation, total_tokens=tokens, total_seqs=seqs,
                                     norm_constant=norm_constant)
                    loss.backward()
                    stats.add_loss(loss, metrics, entropy, mb.mask)
                stats.add_update(clip_gradients(model, tc.grad_clip), t.scheduler.get_last_lr()[0])
                t.optimizer.step()
                t.optimizer.zero_grad(set_to_none=True)
        t.scheduler.step()
        times["train"] = time.perf_counter() - t0

        # 9: the engine samples the next step with the new weights
        t0 = time.perf_counter()
        if pending is not None:
            pending.result()
        times["wait"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        engine.sync_weights(hf_named_tensors(model))
        times["sync"] = time.perf_counter() - t0

        # 10: log, checkpoint (with the sampled next batch, whose weights are gone)
        record = stats.summary(info, step + 1, times, time.perf_counter() - t_step, batch.sampled_tokens, updates)
        rewards_log.append(record["reward"])
        logger.log(record)
        keep_pending = pending is not None and S.checkpoint_due(cfg.checkpoint, step + 1, tc.max_steps)
        trainer_state = {"sampler": sampler.state_dict(), "config": to_dict(cfg),
                         "pending": pending.result().raw() if keep_pending else None}
        path = S.checkpoint_if_due(cfg.checkpoint, ckpt_root, step + 1, tc.max_steps, t, trainer_state, info)
        if path is not None:
            logger.info(f"checkpoint: {path}")
        profiler.step(step + 1)
    profiler.close()

    if cfg.checkpoint.export_hf:
        path = export_hf(model, run.tokenizer, Path(cfg.out_dir) / "hf", info, dtype=cfg.checkpoint.export_dtype)
        if path is not None:
            logger.info(f"exported a Hugging Face model to {path}")
    logger.close()
    return {"rewards": rewards_log, "start_step": start_step}


def main(config_path: str | None, overrides: list[str]) -> int:
    train(load_config(GRPOConfig, config_path, overrides))
    return 0


# --- pieces of the loop ------------------------------------------------------------------------


def encode_chat(tokenizer, messages: list[dict]) -> list[int]:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(ids["input_ids"]) if hasattr(ids, "keys") else list(ids)  # BatchEncoding in transformers 5


def step_seed(seed: int, step: int, round_: int, rank: int) -> int:
    """Sampling seed of a (step, round, rank): prompt i then samples with this + i (< 1000 prompts a rank)."""
    return ((seed * 100_003 + step) * 16 + round_) * 4_096_000 + rank * 1_000


@dataclass
class Batch:
    """One step's rollouts with their advantages and statistics, and the raw sampling rounds they came
    from: a checkpoint keeps those, since the weights that sampled an async batch are gone by then."""
    rounds: list[tuple[list[int], list[Rollout]]] = field(default_factory=list)  # (this rank's prompts, rollouts)
    groups: list[list[tuple[Rollout, float, bool]]] = field(default_factory=list)  # (rollout, advantage, in loss)
    stats: Stats = field(default_factory=Stats)
    times: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    sampled_tokens: int = 0

    def add_round(self, mine: list[int], rollouts: list[Rollout], cfg: GRPOConfig, task: Task) -> None:
        """Score one sampling round, compare within its groups, and keep the groups that carry a signal."""
        rc = cfg.rollout
        self.rounds.append((mine, rollouts))
        t0 = time.perf_counter()
        scores = task.score([mine[r.prompt_index] for r in rollouts], [r.text for r in rollouts])
        self.times["reward"] += time.perf_counter() - t0
        self.stats.add_scores(rollouts, scores)
        self.sampled_tokens += sum(len(r.completion_ids) for r in rollouts)
        rewards = torch.tensor([s.reward for s in scores], dtype=torch.float64)
        cut = torch.tensor([r.finish_reason == "length" for r in rollouts])
        if rc.overlong == "penalize":
            rewards = rewards + cut.double() * rc.overlong_penalty
        adv, flat = group_advantages(rewards, rc.group_size, mode=cfg.advantage.estimator,
                                     normalize_std=cfg.advantage.normalize_std, std_scope=cfg.advantage.std_scope)
        self.stats.add_advantages(adv, flat, rc.group_size)
        for g in range(0, len(rollouts), rc.group_size):
            if rc.dynamic_sampling and bool(flat[g]):
                continue
            self.groups.append([(rollouts[i], float(adv[i]), not (rc.overlong == "filter" and bool(cut[i])))
                                for i in range(g, g + rc.group_size)])

    def keep(self, target: int) -> Batch:
        """The first ``target`` groups: dynamic sampling's last round may overshoot (a no-op otherwise,
        since one round gives exactly this rank's share of prompts)."""
        self.groups = self.groups[:target]
        return self

    @property
    def rollouts(self) -> list[Rollout]:
        return [r for g in self.groups for r, _, _ in g]

    @property
    def advantages(self) -> list[float]:
        return [a for g in self.groups for _, a, _ in g]

    @property
    def loss_rows(self) -> list[bool]:
        return [keep for g in self.groups for _, _, keep in g]

    def raw(self) -> dict:
        """The rounds and their sampling times, as JSON (shallow: nothing is copied before writing)."""
        return {"rounds": [{"prompts": mine, "rollouts": [vars(r) for r in rollouts]} for mine, rollouts in self.rounds],
                "times": dict(self.times)}


def groups_per_rank(cfg: GRPOConfig, info: D.DistInfo) -> int:
    """How many prompt groups each rank trains on per step (setup checks that the ranks divide them)."""
    return cfg.rollout.prompts_per_step // info.world_size


def collect(step: int, cfg: GRPOConfig, run: Run, info: D.DistInfo) -> Batch:
    """Steps 1-4: sample this rank's share of the prompts, G completions each, and score them; with
    dynamic sampling, sample more rounds until every rank has ``prompts_per_step`` informative groups."""
    rc, batch = cfg.rollout, Batch()
    target = groups_per_rank(cfg, info)
    for round_ in range(rc.max_sampling_rounds if rc.dynamic_sampling else 1):
        mine = run.sampler.take(rc.prompts_per_step)[info.rank::info.world_size]
        t0 = time.perf_counter()
        rollouts = run.engine.generate([run.prompts[i] for i in mine], SamplingConfig(
            n=rc.group_size, temperature=rc.temperature, top_p=rc.top_p, max_tokens=rc.max_tokens,
            seed=step_seed(cfg.train.seed, step, round_, info.rank)))
        batch.times["rollout"] += time.perf_counter() - t0
        batch.add_round(mine, rollouts, cfg, run.task)
        if not rc.dynamic_sampling or D.all_reduce_min(len(batch.groups), info.device) >= target:
            break
    return batch.keep(target)


def restore_batch(raw: dict, cfg: GRPOConfig, task: Task, info: D.DistInfo) -> Batch:
    """A checkpoint's sampled next batch, scored again (rewards are a function of the text), with the
    times it was sampled and scored in, so the resumed step logs what the uninterrupted one did."""
    batch = Batch()
    for rnd in raw["rounds"]:
        batch.add_round(rnd["prompts"], [Rollout(**r) for r in rnd["rollouts"]], cfg, task)
    batch.times = defaultdict(float, raw["times"])
    return batch.keep(groups_per_rank(cfg, info))


def finished(value) -> Future:
    future = Future()
    future.set_result(value)
    return future


def engine_dtype(cfg: GRPOConfig, info: D.DistInfo) -> str:
    """``rollout.dtype``, with ``auto`` resolved to the update's precision."""
    if cfg.rollout.dtype != "auto":
        return cfg.rollout.dtype
    return "bfloat16" if S.resolve_precision(cfg.train, info) == "bf16" else "float32"


def build_engine(cfg: GRPOConfig, info: D.DistInfo):
    rc = cfg.rollout
    dtype = engine_dtype(cfg, info)
    if rc.engine == "vllm":
        if rc.max_model_len > (limit := max_positions(cfg.model.path)):
            raise ConfigError(f"rollout.max_model_len: {rc.max_model_len} is longer than the model's context "
                              f"({limit}, max_position_embeddings in {cfg.model.path}/config.json)")
        return make_engine("vllm", cfg.model.path, dtype=dtype, max_model_len=rc.max_model_len,
                           seed=cfg.train.seed, gpu_memory_utilization=rc.gpu_memory_utilization,
                           enable_sleep_mode=rc.sleep_between_steps, kv_cache_gib=rc.kv_cache_gib,
                           enforce_eager=rc.enforce_eager)
    engine = make_engine("torch", cfg.model.path, dtype=dtype, batch_size=rc.torch_batch_size)
    engine.model.to(info.device)
    return engine


@torch.no_grad()
def logprobs_of(net, rollouts, rows, advantages, loss_rows, tc, rc, pad_id, info) -> dict[int, torch.Tensor]:
    """Per-rollout log-probs (completion tokens only) under ``net``; a collective (fillers keep ranks even)."""
    mbs = micro_batches(rollouts, rows, advantages, loss_rows, size=tc.micro_batch_size, pad_id=pad_id,
                        share_prompts=tc.share_prompts)
    mbs = D.pad_to_longest(mbs, filler_batch(pad_id), info.device)
    out = {}
    for mb in mbs:
        mb = mb.to(info.device)
        logp, _ = net(mb.input_ids, mb.position_ids, mb.targets, temperature=rc.temperature,
                      segment_ids=mb.segment_ids)
        logp, completion = mb.per_sequence(logp).float().cpu(), mb.completion.cpu()
        for b, i in enumerate(mb.rows):
            out[i] = logp[b][completion[b]]
    return out


def gather_rows(per_row: dict[int, torch.Tensor], mb) -> torch.Tensor:
    """Lay per-rollout completion log-probs out on a micro-batch's [rows, tokens] grid."""
    grid = torch.zeros(mb.mask.shape)
    completion = mb.completion
    for b, i in enumerate(mb.rows):
        grid[b][completion[b]] = per_row[i]
    return grid
