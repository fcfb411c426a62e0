"""The generation loop, in the style of DEAP's `eaSimple`: `evolve(state, seeds, toolbox, cfg, progress, run_dir)`
runs mutate -> screen -> recombine -> screen -> evaluate -> select for every generation and checkpoints after
each.

Each stage is a module-level function over the whole generation (all lineages at once), so each model role
gets one batched call per stage; `make_toolbox` registers them on a DEAP toolbox with their parameters bound
(DEAP's own style), so a stage can be called, tested or swapped alone. `screen` is filters (length, topic,
fluency) -> seed-copy guard -> harmlessness gate: filtered candidates are recorded with their reason,
rejected ones with their verdict, and neither is ever scored or exported. `select` is simulated annealing per
lineage, the lineage's best, and the archive of niche elites that export draws its items from."""
from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Callable

import numpy as np
from deap import base, tools

from evoprompt.errors import UserError
from evoprompt.fitness.attribution import marked, occlusion, refusal_score
from evoprompt.fitness.diversity import Embedder
from evoprompt.fitness.filters import Filters, SeedCopyGuard, fluency
from evoprompt.fitness.gate import HarmlessnessGate
from evoprompt.fitness.scorer import Scorer
from evoprompt.llm import Backend, Decoding
from evoprompt.operators.choose import StrategyChooser
from evoprompt.operators.frame import edit
from evoprompt.operators.mutate import mutation_request
from evoprompt.operators.recombine import draw_pairs, recombination_request
from evoprompt.operators.rewrite import RewriteRequest, dedupe_key, rewrite_all, sub_seed
from evoprompt.operators.strategies import STRATEGIES
from evoprompt.records import Candidate, GenerationRecord, Rejection, RunState, Seed, Stats, Verdict
from evoprompt.rundir import checkpoint
from evoprompt.schema import FitnessConfig, RunConfig, SearchConfig
from evoprompt.selection import accept, temperature

log = logging.getLogger("evoprompt.search")
TRIGGER = "trigger"   # the attribution-guided strategy
MAX_FRAMES = 2        # framings stacked on one lineage's instruction; past that the rewriter takes over
ELITES_PER_NICHE = 3


def niche(c: Candidate) -> str:
    """Archive cell: lineage (and so its category) x strategy family x length band."""
    family = STRATEGIES[c.operator].family if c.operator in STRATEGIES else "recombination"
    words = len(c.text.split())
    band = "short" if words <= 12 else "medium" if words <= 25 else "long"
    return f"{c.lineage}|{family}|{band}"


def offspring(lineage: str, parents: list[Candidate], operator: str, method: str, text: str, reason: str, t: int,
              k: int) -> Candidate:
    return Candidate(id=f"{lineage}-g{t}-{operator[:3]}{method[0]}{k}", text=text, reason=reason, lineage=lineage,
                     generation=t, operator=operator, method=method, parents=[q.id for q in parents],
                     chain=parents[0].chain + [f"{operator}/{method}"])


def seed_vectors(st: RunState, embedder: Embedder) -> dict[str, np.ndarray]:
    ids = sorted(st.seeds)
    return dict(zip(ids, embedder([st.seeds[i].text for i in ids])))


def _lost(chooser: StrategyChooser, c_operator: str) -> None:
    if c_operator in STRATEGIES:
        chooser.record(c_operator, False)  # rejections teach the adaptive chooser too


def rewrite(st: RunState, requests: list[RewriteRequest], t: int, stage: str, *, rewriter: Backend,
            decoding: Decoding, embedder: Embedder, chooser: StrategyChooser, search: SearchConfig, seed: int,
            progress) -> list:
    """LLM rewrites, asked again (bounded by search.max_attempts) while off topic, empty or duplicate."""
    if not requests:
        return []
    vecs = seed_vectors(st, embedder)

    def on_topic(pairs):
        emb = embedder([text for _, text in pairs])
        sims = [float(vecs[req.tag[0]] @ v) for (req, _), v in zip(pairs, emb)]
        return [None if x >= search.min_seed_similarity else f"off topic ({x:.2f})" for x in sims]

    progress.stage(f"{stage}: {len(requests)} rewrites")
    seen = set(st.seen)
    done, failed = rewrite_all(rewriter, requests, decoding, sub_seed(seed, t, stage), search.max_attempts,
                               search.max_chars, seen, on_topic if search.min_seed_similarity > -1 else None)
    st.seen = sorted(seen)
    st.counters.rewrite_failures += len(failed)
    for f in failed:
        lineage, _ = f.request.tag
        why = f"rewrite given up after {search.max_attempts} attempts: " + "; ".join(f.errors)
        log.info("gen %d %s %s (%s): %s", t, stage, f.request.operator, lineage, why)
        st.filtered.append(Rejection(lineage=lineage, generation=t, stage=stage, operator=f.request.operator,
                                     method="llm", why=why))
        _lost(chooser, f.request.operator)
    return done


def breadth(st: RunState, t: int, rng: random.Random, chooser: StrategyChooser, search: SearchConfig) -> list[Candidate]:
    """After saturation: search.L new framings or word edits of each lineage's seed (its request kept whole), no
    rewriter call; a slot whose strategy has no unused framing left is skipped."""
    out, seen = [], set(st.seen)
    for lineage, seed in sorted(st.seeds.items()):
        if lineage not in st.current:
            continue
        parent = Candidate(id=lineage, text=seed.text, lineage=lineage)
        for strategy in chooser.choose(search.L, rng):
            text, method = edit(seed.text, strategy, rng)
            if text is not None and dedupe_key(text) not in seen:
                seen.add(dedupe_key(text))
                out.append(offspring(lineage, [parent], strategy, method, text, "", t, len(out)))
    st.seen = sorted(seen)
    return out


def saturated(st: RunState, threshold: float | None) -> bool:
    """The population's mean p(refusal) has reached the threshold (the guarded target: 0.987 after one generation)."""
    return threshold is not None and float(np.mean([c.score.refusal_prob for c in st.current.values()])) >= threshold


def mutate(st: RunState, t: int, rng: random.Random, *, rewrite: Callable, attribute: Callable,
           chooser: StrategyChooser, search: SearchConfig, style: str) -> list[Candidate]:
    """search.L mutants per lineage: a framing or sensitive-word edit, or (llm_share, or past MAX_FRAMES
    framings) an LLM rewrite with the chosen strategy. The `trigger` strategy has no framing: its parents'
    words are attributed in one batched call (`attribute`) and the rewriter is shown their top trigger words.
    Once the target is saturated (st.saturated_at), or with llm_share 0 (no rewriter: stacked framings read as
    two voices talking at once), `breadth` instead."""
    if st.saturated_at is not None or search.llm_share == 0:  # no rewriter: one fresh framing of each seed
        return breadth(st, t, rng, chooser, search)
    requests, out, triggered = [], [], []
    seen = set(st.seen)
    for lineage, cur in sorted(st.current.items()):
        framed = sum(step.endswith("/frame") for step in cur.chain)
        for strategy in chooser.choose(search.L, rng):
            use_llm = rng.random() < search.llm_share or framed >= MAX_FRAMES
            text, method = (None, "llm") if use_llm else edit(cur.text, strategy, rng)
            if strategy == TRIGGER:
                triggered.append((lineage, cur))
            elif text is None or dedupe_key(text) in seen:
                requests.append(mutation_request(cur.text, strategy, style, tag=(lineage, cur)))
            else:
                seen.add(dedupe_key(text))
                out.append(offspring(lineage, [cur], strategy, method, text, "", t, len(out)))
    st.seen = sorted(seen)
    marks = {}  # one current instruction per lineage, so its trigger words are keyed by lineage
    if triggered:
        marks = {lineage: marked(a, search.marked)
                 for (lineage, _), a in zip(triggered, attribute([cur.text for _, cur in triggered]))}
        requests += [mutation_request(cur.text, TRIGGER, style, tag=(lineage, cur), marked=marks[lineage])
                     for lineage, cur in triggered]
    for r in rewrite(st, requests, t, "mutate"):
        lineage, cur = r.request.tag
        c = offspring(lineage, [cur], r.request.operator, "llm", r.text, r.reason, t, len(out))
        c.marked = marks[lineage] if r.request.operator == TRIGGER else []
        out.append(c)
    return out


def recombine(st: RunState, mutants: list[Candidate], t: int, rng: random.Random, *, rewrite: Callable,
              search: SearchConfig, style: str) -> list[Candidate]:
    """search.N merges per lineage of pairs of its screened mutants."""
    by_lineage = defaultdict(list)
    for m in mutants:
        by_lineage[m.lineage].append(m)
    requests = [recombination_request(a.text, b.text, style, tag=(lineage, (a, b)))
                for lineage, ms in sorted(by_lineage.items()) for a, b in draw_pairs(ms, search.N, rng)]
    return [offspring(r.request.tag[0], list(r.request.tag[1]), "recombine", "llm", r.text, r.reason, t, k)
            for k, r in enumerate(rewrite(st, requests, t, "recombine"))]


def screen(st: RunState, cands: list[Candidate], t: int, stage: str, *, embedder: Embedder, target: Backend,
           filters: Filters, guard: SeedCopyGuard, gate: HarmlessnessGate, chooser: StrategyChooser,
           search: SearchConfig, seed: int, progress) -> list[Candidate]:
    """Filters, then the seed-copy guard, then the gate (one batched call); returns the candidates that passed."""
    if not cands:
        return []
    progress.stage(f"filter + gate: {len(cands)} {stage}")
    vecs = seed_vectors(st, embedder)
    texts = [c.text for c in cands]
    emb = embedder(texts)
    sims = [float(vecs[c.lineage] @ v) for c, v in zip(cands, emb)]
    fluent = fluency(target, texts) if search.min_fluency is not None else [None] * len(cands)
    for c, x, f in zip(cands, sims, fluent):
        c.seed_similarity, c.fluency = round(x, 4), None if f is None else round(f, 4)
        st.counters.outcome(c, "tried")
    requests = [st.seeds[c.lineage].text if c.method == "llm" and c.lineage in st.seeds else None for c in cands]
    reasons = filters.reasons(texts, sims, fluent if search.min_fluency is not None else None, requests)
    ask = []
    for c, why, copy in zip(cands, reasons, guard.verdicts(texts, emb)):
        if why or copy:
            log.info("gen %d %s %s: %s | %s", t, "filtered" if why else "rejected", c.id, why or copy, c.text)
            _lost(chooser, c.operator)
        if why:
            st.filtered.append(Rejection.of(c, why=why))
            st.counters.outcome(c, "filtered")
        elif copy:
            c.gate = Verdict(False, None, copy)
            st.rejected.append(Rejection.of(c))
            st.counters.outcome(c, "rejected")
        else:
            ask.append(c)
    verdicts = gate.judge([(c.text, c.reason) for c in ask], sub_seed(seed, t, "gate", stage)) if ask else []
    passed = []
    for c, v in zip(ask, verdicts):
        c.gate = Verdict.from_json(v.to_json())  # as the checkpoint holds it, so a resumed run compares equal
        if v.safe:
            passed.append(c)
            continue
        log.info("gen %d rejected %s: gate %s (p_safe %.3f) | %s", t, c.id, v.verdict, v.p_safe, c.text)
        st.rejected.append(Rejection.of(c))
        st.counters.outcome(c, "rejected")
        _lost(chooser, c.operator)
    st.counters.gated += len(ask)
    st.counters.gate_passed += len(passed)
    return passed


def evaluate(st: RunState, cands: list[Candidate], t: int, *, scorer: Scorer, fitness: FitnessConfig, seed: int,
             progress) -> None:
    """Scores every candidate in one Scorer call (K samples each, racing if fitness.K_min < K)."""
    k = f"{fitness.K_min}-" if fitness.K_min and fitness.K_min < fitness.K else ""
    progress.stage(f"score: {len(cands)} candidates x {k}{fitness.K} samples")
    archive = np.asarray(st.archive, dtype=np.float32) if st.archive else np.zeros((0, 0), dtype=np.float32)
    scores = scorer.score([c.text for c in cands], archive, sub_seed(seed, t, "score"), [c.lineage for c in cands])
    for c, sc in zip(cands, scores):
        c.score, c.embedding = sc, sc.embedding
    st.counters.scored += len(cands)
    st.counters.target_samples += sum(len(sc.samples) for sc in scores)


def select(st: RunState, cands: list[Candidate], t: int, rng: random.Random, *, chooser: StrategyChooser,
           search: SearchConfig) -> int:
    """SA step per lineage, its best-ever, niche elites; returns how many lineages accepted a candidate."""
    tau = temperature(t, search.tau_0, search.beta, search.tau_f)
    by_lineage = defaultdict(list)
    for c in cands:
        by_lineage[c.lineage].append(c)
        st.counters.outcome(c, "scored")
        cell = st.elites.setdefault(niche(c), [])
        cell.append(c)
        cell.sort(key=lambda e: (-e.fitness, e.id))
        del cell[ELITES_PER_NICHE:]
    accepted = 0
    for lineage in sorted(st.current):
        cur = st.current[lineage]
        for c in by_lineage[lineage]:
            better = c.fitness > cur.fitness
            if better:
                st.counters.outcome(c, "improved")
            if c.operator in STRATEGIES:
                chooser.record(c.operator, better)
        if not by_lineage[lineage]:
            continue
        best = max(by_lineage[lineage], key=lambda c: c.fitness)
        if lineage not in st.best or best.fitness > st.best[lineage].fitness:
            st.best[lineage] = best
        if accept(best.fitness, cur.fitness, tau, rng):
            st.current[lineage] = best
            if best.embedding:
                st.archive.append(best.embedding)
            accepted += 1
    return accepted


def attributor(scorer: Scorer, openers: list[str]) -> Callable[[list[str]], list]:
    """Word occlusion of the first target's opener probability q(x), the score selection optimises: every
    word-deleted variant of every text in one batched log-prob call (fitness/attribution.py)."""
    return lambda texts: occlusion(texts, refusal_score(scorer.targets[0].backend, scorer.chat, "opener", openers))


def make_toolbox(cfg: RunConfig, *, rewriter: Backend, rewrite_decoding: Decoding, target: Backend,
                 gate: HarmlessnessGate, scorer: Scorer, embedder: Embedder, chooser: StrategyChooser,
                 guard: SeedCopyGuard, progress) -> base.Toolbox:
    """The stages with this run's parts and settings bound."""
    s, style = cfg.search, cfg.rewriter.style
    if chooser.weight(TRIGGER) > 0 and not scorer.targets[0].backend.supports_logprobs:
        raise UserError(f"the trigger strategy scores word deletions on the target's log-probs and "
                        f"{scorer.targets[0].name} gives none; set search.strategy_weights.trigger=0")
    tb = base.Toolbox()
    tb.register("rewrite", rewrite, rewriter=rewriter, decoding=rewrite_decoding, embedder=embedder,
                chooser=chooser, search=s, seed=cfg.seed, progress=progress)
    tb.register("mutate", mutate, rewrite=tb.rewrite, attribute=attributor(scorer, cfg.fitness.openers),
                chooser=chooser, search=s, style=style)
    tb.register("recombine", recombine, rewrite=tb.rewrite, search=s, style=style)
    tb.register("screen", screen, embedder=embedder, target=target,
                filters=Filters(s.min_seed_similarity, s.min_fluency, s.min_words, s.max_chars, s.repeat_ngram,
                                s.min_request_kept),
                guard=guard, gate=gate, chooser=chooser, search=s, seed=cfg.seed, progress=progress)
    tb.register("evaluate", evaluate, scorer=scorer, fitness=cfg.fitness, seed=cfg.seed, progress=progress)
    tb.register("select", select, chooser=chooser, search=s)
    return tb


def _stats() -> tools.Statistics:
    stats = tools.Statistics(key=lambda c: c.fitness)
    for name, fn in (("mean", np.mean), ("max", np.max), ("min", np.min), ("std", np.std)):
        stats.register(name, lambda xs, fn=fn: float(fn(xs)))
    return stats


def start(st: RunState, seeds, tb: base.Toolbox) -> list[Candidate]:
    """Generation 0: the seeds are scored (never gated or exported) so x_0 has a fitness."""
    for s in seeds:
        st.seeds[s.id] = Seed(s.id, s.text, s.category, s.source, s.harmful)
        st.current[s.id] = Candidate(id=s.id, text=s.text, lineage=s.id)
    st.seen = sorted({dedupe_key(s.text) for s in seeds})
    cands = list(st.current.values())
    tb.evaluate(st, cands, 0)
    st.archive.extend(c.embedding for c in cands if c.embedding)
    return cands


def evolve(st: RunState, seeds, tb: base.Toolbox, cfg: RunConfig, chooser: StrategyChooser, progress, run_dir):
    """Runs generations st.generation+1 .. cfg.generations; returns (state, logbook)."""
    stats = _stats()
    if st.chooser:
        chooser.restore(st.chooser)
    if st.generation < 0:
        progress.generation(0, "seeds")
        finish(st, 0, start(st, seeds, tb), 0, (0, 0), stats, cfg, chooser, progress, run_dir)
    for t in range(st.generation + 1, cfg.generations + 1):
        progress.generation(t, "evolve")
        rng = random.Random(sub_seed(cfg.seed, t, "rng"))
        before = (len(st.filtered), len(st.rejected))
        mode = "depth" if st.saturated_at is None else "breadth"
        mutants = tb.screen(st, tb.mutate(st, t, rng), t, "mutants")
        recombinants = tb.screen(st, tb.recombine(st, mutants, t, rng), t, "recombinants") if mode == "depth" else []
        cands = mutants + recombinants
        tb.evaluate(st, cands, t)
        accepted = tb.select(st, cands, t, rng)
        if mode == "depth" and saturated(st, cfg.search.saturation):
            st.saturated_at = t
        if st.saturated_at == t and t < cfg.generations:
            log.warning("generation %d: the target refuses the population (mean p(refusal) >= %s): generations %d-%d "
                        "frame the seeds anew (breadth) instead of rewriting further (depth)", t,
                        cfg.search.saturation, t + 1, cfg.generations)
        finish(st, t, cands, accepted, (len(st.filtered) - before[0], len(st.rejected) - before[1]), stats, cfg,
               chooser, progress, run_dir, mode)
    return st, st.logbook


def finish(st: RunState, t: int, cands: list[Candidate], accepted: int, dropped: tuple[int, int], stats, cfg,
           chooser: StrategyChooser, progress, run_dir, mode: str = "depth") -> None:
    """The generation's logbook record, history and checkpoint."""
    population = list(st.current.values())
    s = cfg.search
    filtered, rejected = dropped
    rec = GenerationRecord(
        gen=t, candidates=len(cands), filtered=filtered, rejected=rejected, accepted=accepted,
        lineages=len(st.current), elites=sum(map(len, st.elites.values())), tau=temperature(t, s.tau_0, s.beta, s.tau_f),
        population=Stats(**stats.compile(population)), candidates_fitness=Stats(**stats.compile(cands)) if cands else None,
        refusal_prob=float(np.mean([c.score.refusal_prob for c in population])),
        judge_refusal_rate=float(np.mean([c.score.judge_refusal_rate for c in population])),
        opener_prob=float(np.mean([c.score.opener_prob for c in population])),
        best_ever=max((b.fitness for b in st.best.values()), default=None), target_samples=st.counters.target_samples,
        calls=progress.calls_since_last(), seconds=progress.seconds_since_last(), mode=mode)
    st.history.extend(c.summary() for c in cands)
    st.logbook.append(rec)
    log.info("gen %d: scored %d, filtered %d, rejected %d, accepted %d/%d, elites %d, p(refusal) %.3f, best F %s, "
             "seconds %s", t, rec.candidates, filtered, rejected, accepted, rec.lineages, rec.elites,
             rec.refusal_prob, "-" if rec.best_ever is None else f"{rec.best_ever:.3f}", rec.seconds)
    st.chooser = chooser.state()
    st.generation = t
    progress.stage("checkpoint")
    checkpoint.save(st, run_dir)
    progress.generation_done(rec)
