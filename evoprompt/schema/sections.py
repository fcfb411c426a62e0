"""The sections several commands share: model roles, decoding, the gate, the embedder, the call cache, the run's
search settings and the training settings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evoprompt.operators.strategies import priors
from evoprompt.registry import BACKENDS, JUDGES
from evoprompt.schema.fields import SPLITS, at_least, count, fraction, open_unit, opt, positive, probability, similarity, unit


@dataclass
class DecodingConfig:
    temperature: float = opt(1.0, check=at_least(0.0), why=">= 0 (0 = greedy)", help="sampling temperature")
    top_p: float = opt(1.0, check=lambda v: 0.0 < v <= 1.0, why="in (0, 1]", help="nucleus sampling mass")
    max_new_tokens: int = count(64, help="tokens generated per answer")


@dataclass
class RoleConfig:
    """A model role. Any other key is the backend's own (hf: dtype, device, batch_size, adapter; vllm: dtype,
    gpu_memory_utilization, max_model_len, lora, ...; openai: base_url, api_key_env, ...), checked against its
    constructor and kept in `engine`."""
    backend: str = opt("hf", help=" | ".join(BACKENDS) + " (docs/backends.md)")
    model: str = opt("embedded", help="embedded (the packaged SmolLM2-135M-Instruct), a model id or a local folder")
    decoding: DecodingConfig = opt(factory=DecodingConfig, help="sampling of this role's answers")
    system_prompt: str | None = opt(None, help="null = none; or a string, e.g. ${safety_prior}")
    engine: dict = opt(factory=dict, help="the backend's own keys (set them on the role itself)")

    def backend_config(self) -> dict:
        """What get_backend takes: backend, model and engine keys."""
        return {"backend": self.backend, "model": self.model, **self.engine}


@dataclass
class GateConfig(RoleConfig):
    mode: Literal["logprob", "text"] = opt("logprob", help="logprob: compare log p(safe) and log p(unsafe); "
                                                         "text: parse a generated verdict")
    threshold: float = probability(0.5, help="p(safe) at or above which a candidate passes")
    prompt: str = opt("gate.txt", help="a file in fitness/prompts/ or a path")
    blocklist: list[str] = opt(factory=list, help="phrases rejected outright, whatever the judge says")
    max_seed_similarity: float = similarity(0.75, help="seed-copy guard: rejected when more similar (MiniLM) to a harmful seed")
    max_seed_overlap: float = opt(0.6, check=unit, why="a text overlap in [0, 1]",
                                  help="seed-copy guard: rejected when overlapping a harmful seed's text more")


@dataclass
class EmbedderConfig:
    model: str = opt("embedded-embedder", help="embedded-embedder (the packaged all-MiniLM-L6-v2) or a folder")
    device: str = opt("auto", help="auto = cuda when a GPU is visible")


@dataclass
class CacheConfig:
    enabled: bool = opt(True, help="answer repeated model calls from the call cache")
    path: str | None = opt(None, help="null = $EVOPROMPT_CACHE or ~/.cache/evoprompt, file calls.sqlite")


@dataclass
class CommandConfig:
    """What every command that runs models has: the call cache, and hydra's own settings."""
    cache: CacheConfig = opt(factory=CacheConfig, help="the call cache")
    hydra: dict = opt(factory=dict, help="hydra's own settings")


# ---- evoprompt run / check -------------------------------------------------------------------------------
@dataclass
class SeedsConfig:
    path: str | None = opt(None, help="null = the packaged set named by `set`; or JSONL/CSV, XSTest, OR-Bench, "
                                      "PHTest, OKTest files, a benchmark.jsonl")
    set: Literal["harmless", "harmful"] = opt("harmless", help="packaged set: harmless (84 pseudo-malicious) | "
                                                               "harmful (70 harmful-looking, for strong gates)")
    format: Literal["auto", "jsonl", "csv", "xstest", "orbench", "phtest", "oktest"] = opt("auto", help="file format")
    text_column: str | None = opt(None, help="CSV/JSONL column of the instruction (null = guessed)")
    split: SPLITS = opt("safe", help="for sets with labels")
    limit: int | None = opt(24, check=lambda v: v is None or v >= 1, why=">= 1 or null (all)",
                            help="how many seeds (lineages); null = all")


@dataclass
class RewriterConfig(RoleConfig):
    style: Literal["chat", "completion"] = opt("completion", help="completion: few-shot document, first line kept "
                                                                  "(small models); chat: instruction template")


@dataclass
class RefusalJudgeConfig:
    """The refusal judge, configured the same way wherever one is used (fitness, pairs, eval, explain, align,
    judge-calibrate); on the command line either `KEY=NAME` or `KEY.name=NAME` with the other keys beside it."""
    name: str = opt("classifier-anchored", help="refusal judge: " + " | ".join(JUDGES) + " (docs/judges.md); "
                                                "classifier-anchored is the shipped MiniLM classifier, held to the "
                                                "anchored refusal phrases on short answers")
    model: str | None = opt(None, help="classifier: an .npz from judge-train (null = shipped); hf-classifier: a model "
                                       "folder; llm: a target preset name (null = the command's own: the gate's model "
                                       "in run, the first target in eval)")
    calibration: str | None = opt(None, help="a judge_calibration.json (judge-calibrate save=): the judge's refusal "
                                             "threshold set on a target's own labelled answers")
    phrases: list[str] | None = opt(None, help="phrases, phrases-substring: null = the built-in list, or your own")
    band: list[float] = opt(factory=lambda: [0.35, 0.65], check=lambda v: v == [] or (len(v) == 2 and 0 <= v[0] <= v[1] <= 1),
                            why="[lo, hi] with 0 <= lo <= hi <= 1, or []",
                            help="eval: the verdict is undetermined when lo < p(refusal) < hi; [] = no band")


@dataclass
class FitnessConfig:
    K: int = count(6, help="samples per candidate (paper: 10)")
    K_min: int | None = opt(None, check=lambda v: v is None or v >= 1, why=">= 1, or null (every candidate gets K)",
                            help="racing: K_min samples each, then more only for candidates that can still be their "
                                 "lineage's best; null = K for every candidate (the paper)")
    race_z: float = opt(1.0, check=at_least(0.0), why=">= 0",
                        help="racing: half-width of the confidence bound on F, in standard errors")
    lam: float = opt(0.05, check=at_least(0.0), why=">= 0", key="lambda",
                     help="weight of the length-normalised log p(y|x) (paper: 0.03-0.1)")
    mu: float = opt(0.0, check=at_least(0.0), why=">= 0", help="weight of the diversity bonus D(x) (paper: 0)")
    eps: float = opt(0.05, check=open_unit, why="in (0, 1)", help="floor of the refusal probability (paper: 0.05-0.1)")
    floor: Literal["hard", "soft"] = opt("soft", help="hard: max(p, eps) as in the paper; soft: eps + (1-eps) p")
    estimator: Literal["surrogate", "elbo"] = opt("surrogate", help="elbo: the paper's bound; surrogate: p_k -> "
                                                                    "max(p_k, q(x)) with the opener prior (not a bound)")
    judge: RefusalJudgeConfig = opt(factory=RefusalJudgeConfig, help="reads each sampled answer as refusal or not")
    openers: list[str] = opt(factory=lambda: ["I'm sorry", "I cannot", "I can't", "Sorry", "I apologize"],
                             help="refusal heads of the opener prior q(x)")
    targets: list[dict | str] = opt(factory=list, help="several targets at once: preset names or mappings over "
                                                       "`target`'s keys; [] = `target` alone")
    aggregate: Literal["mean", "min", "softmin"] = opt("mean", help="how per-target fitness combines")
    softmin_temperature: float = opt(0.5, check=positive, why="> 0", help="softmin: -t log mean exp(-F_i / t)")


@dataclass
class SearchConfig:
    L: int = opt(4, check=at_least(0), why=">= 0", help="mutants per lineage per generation (paper: 4)")
    N: int = opt(0, check=at_least(0), why=">= 0", help="recombinants per lineage per generation (paper and the "
                                                      "llama8b presets: 2; the LLM writes them)")
    tau_0: float = opt(0.1, check=at_least(0.0), why=">= 0", help="SA start temperature (paper: 0.1)")
    beta: float = opt(0.005, check=at_least(0.0), why=">= 0", help="SA linear cooling per generation (paper: 0.005)")
    tau_f: float = opt(0.05, check=at_least(0.0), why=">= 0", help="SA final temperature (paper: 0.05)")
    strategy: Literal["uniform", "weighted", "adaptive"] = opt("adaptive", help="how mutation strategies are drawn")
    strategy_weights: dict[str, float] = opt(factory=priors, help="prior weights, by default each strategy file's `# prior:` "
                                                                    "(the paper's observed success rates; `trigger` 0.10)")
    max_attempts: int = count(2, help="rewrite rounds per slot before it is given up")
    marked: int = opt(2, check=at_least(1), why=">= 1", help="trigger strategy: how many of the parent's top "
                                                           "trigger words the rewriter is shown")
    saturation: float | None = opt(0.95, check=lambda v: v is None or 0 < v <= 1, why="in (0, 1] or null (off)",
                                   help="once the population's mean p(refusal) reaches this after a generation, the "
                                        "remaining generations go to breadth (new framings of each seed, no rewriter) "
                                        "instead of depth: on a saturated target further rewrites add drift, not refusal")
    llm_share: float = fraction(0.0, help="share of mutants written by the LLM rewriter; the rest by framings and word "
                                          "edits of the seed (0: a small rewriter drifts, docs/run.md; the llama8b "
                                          "presets: 0.5)")
    max_chars: int = count(300, help="filter: longest instruction")
    min_words: int = opt(4, check=at_least(1), why=">= 1", help="filter: shortest instruction")
    repeat_ngram: int | None = opt(3, check=lambda v: v is None or v >= 2, why=">= 2 or null (off)",
                                   help="filter: an instruction in which any run of this many words occurs twice, "
                                        "or one word three times in a row")
    min_seed_similarity: float = similarity(0.35, help="topic filter: MiniLM similarity to the lineage's seed")
    min_request_kept: float | None = opt(0.5, check=lambda v: v is None or 0 <= v <= 1, why="in [0, 1] or null (off)",
                                         help="request filter: a rewriter's candidate must keep this share of its "
                                              "seed's content words (its request survives the rewrite)")
    min_fluency: float | None = opt(-6.0, check=lambda v: v is None or v <= 0, why="a mean log-prob <= 0, or null (off)",
                                    help="fluency filter: the target's mean token log-prob of the instruction")


@dataclass
class ExportConfig:
    sft_dpo: bool = opt(True, help="also write sft.jsonl and dpo.jsonl")
    helper_attempts: int = count(2, help="resamples of a helper answer that refuses")
    per_lineage: int = count(2, help="items per lineage, from its niche elites (the llama8b presets: 4)")
    min_refusal: float = probability(0.3, help="an item's refusal probability must reach this, and one of its samples must refuse")
    max_similarity: float = similarity(0.9, help="exported items are at most this similar to each other (MiniLM)")
    max_phrase_share: float = fraction(0.15, help="no four-word phrase (a framing, usually) in more than this share of "
                                                  "the exported items")
    lexical_novelty: float = opt(1.0, check=at_least(0.0), why=">= 0",
                                 help="weight of a candidate's share of words no item taken yet uses, beside its "
                                      "refusal probability, when a lineage's next item is chosen (0 = by refusal alone)")
    pair_judge: RefusalJudgeConfig = opt(factory=RefusalJudgeConfig, help="judge of the pairs: rejected must be a "
                                                                           "refusal, chosen a compliance")
    min_answer_similarity: float = similarity(0.2, help="a helpful answer's MiniLM similarity to its instruction")
    min_targets_refusing: int = count(1, help="an item must be refused by at least this many of the targets")


@dataclass
class LoraSettings:
    r: int = count(16, help="LoRA rank")
    alpha: int = count(32, help="LoRA alpha")
    dropout: float = opt(0.05, check=lambda v: 0.0 <= v < 1.0, why="in [0, 1)", help="LoRA dropout")
    target_modules: str | list[str] = opt("all-linear", help="peft target modules")


@dataclass
class StageSettings:
    """One training stage (TRL SFTTrainer or DPOTrainer); beta and loss_type are DPO's."""
    learning_rate: float = opt(2e-5, check=positive, why="> 0", help="learning rate")
    max_steps: int = count(30, help="optimizer steps")
    batch_size: int = count(4, help="examples per device step")
    grad_accum: int = count(1, help="gradient accumulation steps")
    beta: float = opt(0.1, check=positive, why="> 0", help="DPO beta")
    loss_type: Literal["sigmoid", "hinge", "ipo", "robust"] = opt("sigmoid", help="DPO loss")


@dataclass
class EvalSet:
    """A prompt set measured before and after training."""
    path: str = opt(help="a file, `packaged:NAME` (the seeds shipped with evoprompt) or `data:NAME` (a public set "
                         "in the data folder, skipped with a note when absent)")
    kind: Literal["over-refusal", "harmful"] = opt("over-refusal", help="which way a refusal counts")
    split: SPLITS = opt("safe", help="for sets with labels")
    name: str | None = opt(None, help="the set's name in the report")
    limit: int | None = opt(None, check=lambda v: v is None or v >= 1, why=">= 1 or null (all)", help="prompts")


@dataclass
class AlignSettings:
    retain: str | None = opt("data:xstest", help="harmful prompts kept refused (chosen = a refusal, rejected = the "
                                                 "target's own compliant sample); null = none")
    retain_split: SPLITS = opt("unsafe", help="split of the retain set")
    retain_ratio: float = opt(0.5, check=at_least(0.0), why=">= 0", help="retention pairs per training pair")
    retain_attempts: int = count(4, help="samples drawn per harmful prompt to find a "
                                                                   "compliant one")
    train_system_prompt: Literal["target", "none"] = opt("target", help="train under the target's system prompt or none")
    dedup_similarity: float = similarity(0.9, help="leakage guard: a training prompt this close to an eval prompt is dropped")
    max_overlap: float = fraction(0.2, help="more than this fraction of the training data overlapping one eval set stops")
    max_length: int = count(512, help="tokens per training example")
    save_steps: int = count(10, help="checkpoint every this many steps (resume)")
    gradient_checkpointing: bool = opt(False, help="trade compute for memory")
    lora: LoraSettings = opt(factory=LoraSettings, help="the adapter")
    sft: StageSettings = opt(factory=lambda: StageSettings(learning_rate=2e-5), help="the SFT stage")
    dpo: StageSettings = opt(factory=lambda: StageSettings(learning_rate=1e-5), help="the DPO stage")
    eval_sets: list[EvalSet] = opt(factory=lambda: [
        EvalSet("data:xstest", "over-refusal", "safe", "xstest-safe"),
        EvalSet("packaged:harmful", "harmful", "safe", "harmful-seeds")], help="measured before and after")
    eval_decoding: DecodingConfig = opt(factory=lambda: DecodingConfig(0.01, 1.0, 48), help="near-greedy, as eval")
    bootstrap: int = count(1000, help="resamples for the paired intervals")
