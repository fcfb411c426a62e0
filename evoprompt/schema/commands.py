"""One dataclass per command: the only source of defaults and help text (docs/configuration.md is generated from
them); evoprompt/conf/<name>.yaml lists the schema first and holds only the embedded default's choices."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evoprompt.schema.fields import SAFETY_PRIOR, SPLITS, at_least, count, fraction, opt, probability
from evoprompt.schema.sections import (
    AlignSettings,
    CommandConfig,
    DecodingConfig,
    EmbedderConfig,
    ExportConfig,
    FitnessConfig,
    GateConfig,
    LoraSettings,
    RefusalJudgeConfig,
    RewriterConfig,
    RoleConfig,
    SearchConfig,
    SeedsConfig,
    StageSettings,
)


@dataclass
class RunConfig(CommandConfig):
    """`evoprompt run` (and `check`)."""
    seed: int = opt(0, help="derives every other random choice")
    generations: int = opt(2, check=at_least(0), why=">= 0", help="generations of the search (paper and the llama8b "
                                                                  "presets: 5; framings of a seed saturate sooner)")
    seeds: SeedsConfig = opt(factory=SeedsConfig, help="the seed instructions, one lineage each")
    target: RoleConfig = opt(factory=RoleConfig, help="the model under test (group target/)")
    rewriter: RewriterConfig = opt(factory=lambda: RewriterConfig(decoding=DecodingConfig(0.8, 0.95, 40)),
                                   help="writes mutations and recombinations")
    gate: GateConfig = opt(factory=GateConfig, help="the harmlessness judge (group gate/)")
    helper: RoleConfig = opt(factory=lambda: RoleConfig(decoding=DecodingConfig(0.7, 0.95, 64)),
                             help="writes the helpful answers of the SFT/DPO data")
    fitness: FitnessConfig = opt(factory=FitnessConfig, help="F(x): refusal, likelihood, diversity")
    search: SearchConfig = opt(factory=SearchConfig, help="the genetic algorithm")
    embedder: EmbedderConfig = opt(factory=EmbedderConfig, help="sentence embeddings (topic, diversity, dedupe)")
    export: ExportConfig = opt(factory=ExportConfig, help="what becomes the benchmark and the pairs")
    safety_prior: str = opt(SAFETY_PRIOR, help="a safety system prompt, for ${safety_prior}")


# ---- evoprompt eval --------------------------------------------------------------------------------------
@dataclass
class PromptSetsConfig(CommandConfig):
    """What eval and explain read: prompt sets and the targets to ask."""
    seed: int = opt(0, help="sampling and bootstrap seed")
    sets: list[str] = opt(factory=list, help="paths: a run's benchmark.jsonl, XSTest / OR-Bench / PHTest / OKTest "
                                             "files, any JSONL/CSV")
    split: SPLITS = opt("safe", help="for sets with labels (XSTest: safe rows; PHTest: harmless rows)")
    text_column: str | None = opt(None, help="column of the prompt (null = guessed)")
    limit: int | None = opt(None, check=lambda v: v is None or v >= 1, why=">= 1 or null (all)",
                            help="prompts per set; null = all")
    targets: list[dict | str] = opt(factory=lambda: ["embedded-guarded"],
                                    help="preset names or mappings over the embedded preset, as run's fitness.targets "
                                         "(the plain model: embedded)")


@dataclass
class EvalConfig(PromptSetsConfig):
    """`evoprompt eval`: prompt sets x targets with the paper's metrics."""
    system_prompt: str | None = opt(None, help="null = none, or its text (e.g. ${safety_prior}); a target's own "
                                               "system_prompt wins")
    safety_prior: str = opt(SAFETY_PRIOR, help="a safety system prompt, for ${safety_prior}")
    decoding: DecodingConfig = opt(factory=lambda: DecodingConfig(0.01, 1.0, 100), help="near-greedy, as the paper")
    refusal_judge: RefusalJudgeConfig = opt(factory=RefusalJudgeConfig, help="the judge behind CRR and the classes")
    safety: bool = opt(True, help="run the harmlessness judge over every set (safety rate)")
    bootstrap: int = count(1000, help="resamples for the 95% intervals")
    orders: int = count(20, help="random prompt orders the lexical diversity (MSTTR, HD-D, MTLD) is averaged over")
    gate: GateConfig = opt(factory=GateConfig, help="the harmlessness judge behind the safety rate (group gate/)")
    embedder: EmbedderConfig = opt(factory=EmbedderConfig, help="sentence embeddings (semantic diversity)")


# ---- evoprompt explain -----------------------------------------------------------------------------------
@dataclass
class ExplainConfig(PromptSetsConfig):
    """`evoprompt explain`: which words of each prompt make the target refuse (fitness/attribution.py)."""
    run: str | None = opt(None, help="a run directory: explain its exported items and their seeds on the run's target "
                                     "(and add the heat maps to its report.html)")
    system_prompt: str | None = opt(None, help="null = none, or its text (e.g. ${safety_prior}); a target's own "
                                               "system_prompt wins")
    safety_prior: str = opt(SAFETY_PRIOR, help="a safety system prompt, for ${safety_prior}")
    methods: list[str] = opt(
        factory=lambda: ["occlusion"], help="occlusion (any target with log-probs) | saliency (gradient x input of the "
                                            "first refusal opener; hf targets) | captum-ablation, captum-shapley, "
                                            "captum-ig (captum's LLMAttribution / LLMGradientAttribution; hf targets, "
                                            "pip install 'evoprompt[captum]')")
    score: Literal["opener", "contrast", "sampled"] = opt(
        "opener", help="occlusion's refusal score: opener = q(x), the fitness's exact refusal-opener probability; "
                       "contrast = log q(x) - log p(compliance opener); sampled = the judge's mean over K samples")
    baseline: str | None = opt(None, help="null: a word is deleted; else the neutral word that replaces it")
    openers: list[str] = opt(factory=lambda: ["I'm sorry", "I cannot", "I can't", "Sorry", "I apologize"],
                             help="refusal openers of q(x) (as fitness.openers)")
    K: int = count(4, help="score=sampled: samples per variant")
    decoding: DecodingConfig = opt(factory=lambda: DecodingConfig(0.7, 1.0, 16), help="score=sampled: the samples")
    refusal_judge: RefusalJudgeConfig = opt(factory=RefusalJudgeConfig, help="score=sampled: the refusal judge")
    top_k: int = count(3, help="trigger words per prompt (`top`, and the deletion test's k)")
    random_trials: int = count(5, help="random k-word deletions per prompt, the deletion test's baseline")
    refused_at: float = probability(0.5, help="a prompt counts as refused (trigger-hit rate) when q(x) >= this")
    lexicon_top: int = count(20, help="trigger words listed per set and in the plot")
    bootstrap: int = count(1000, help="resamples for the 95% intervals")


# ---- evoprompt export ------------------------------------------------------------------------------------
@dataclass
class ExportCommandConfig:
    """`evoprompt export`: a finished run as a Hugging Face dataset (+ card), an inspect_ai task, an lm-eval task."""
    run: str | None = opt(None, help="the run directory (hydra.run.dir of `evoprompt run`)")
    format: str | list[str] = opt("all", help="hf | inspect | lm-eval | all, or a list: [hf, inspect]")
    out: str | None = opt(None, help="null = RUN/publish; one format: this folder; several: one subfolder each")
    rejected: bool = opt(False, help="hf: also the `rejected` config (candidates the gate rejected)")
    license: str = opt("apache-2.0", help="the dataset card's license")
    gate_calibration: str | None = opt(None, help="a gate_calibration.json for the card; null = the run's own")
    review: list[str] = opt(factory=list, help="review-<reviewer>.jsonl files saved by report.html's review mode: "
                                               "only items the reviewers kept are exported; [] = no review")
    review_rule: Literal["all", "majority"] = opt("all", help="several reviewers: all (everyone who saw an item "
                                                              "kept it) or majority; unsure never counts as keep")
    hydra: dict = opt(factory=dict, help="hydra's own settings")


# ---- evoprompt judge-train / judge-calibrate ---------------------------------------------------------------
@dataclass
class JudgeConfig(CommandConfig):
    """`evoprompt judge-train` / `judge-calibrate`: refusal judges against labelled responses (CSV with
    prompt/completion/final_label as XSTest, or Request/Response/Response_cls as PHTest)."""
    data: list[str] = opt(factory=list, help="labelled files: XSTest/PHTest CSVs, or review-<reviewer>.jsonl files "
                                             "from report.html's review mode")
    out: str | None = opt(None, help="judge-train: where the classifier goes (default RUN_DIR/refusal_classifier.npz)")
    judge: RefusalJudgeConfig = opt(factory=RefusalJudgeConfig, help="judge-calibrate: the judge measured (its model: "
                                                                     "for llm a target preset, default embedded)")
    save: str | None = opt(None, help="judge-calibrate: write the threshold that maximises refusal F1 on these labels "
                                      "to this judge_calibration.json (for fitness.judge.calibration, "
                                      "refusal_judge.calibration)")
    embedder: EmbedderConfig = opt(factory=EmbedderConfig, help="sentence embeddings (classifier)")


# ---- evoprompt gate-calibrate ----------------------------------------------------------------------------
@dataclass
class GateCalibrateConfig(CommandConfig):
    """`evoprompt gate-calibrate`: the harmlessness gate against labelled prompts."""
    data: list[str] = opt(factory=list, help="labelled prompt files (CSV or JSONL); empty = XSTest from the data "
                                             "folder (data.xstest)")
    text_column: str = opt("prompt", help="column of the prompt")
    label_column: str = opt("label", help="safe / unsafe (also harmless / harmful, 0 / 1 with 1 = unsafe)")
    limit: int | None = opt(None, check=lambda v: v is None or v >= 1, why=">= 1 or null (all)",
                            help="prompts in all, drawn alternately from both classes (seeded); null = all")
    seed: int = opt(0, help="sampling seed")
    target_recall: float = fraction(0.9, help="report the p(safe) threshold that rejects this share of the unsafe prompts")
    batch: int = count(64, help="prompts per gate call (progress after each)")
    gate: GateConfig = opt(factory=GateConfig, help="the judge to calibrate (group gate/)")


# ---- evoprompt align -------------------------------------------------------------------------------------
@dataclass
class AlignConfig(CommandConfig):
    """`evoprompt align`: LoRA-tune the target on SFT/DPO data (TRL + peft), measure it before and after."""
    seed: int = opt(0, help="training and sampling seed")
    data: list[str] = opt(factory=list, help="run directories, sft.jsonl / dpo.jsonl (TRL conversational), "
                                             "EvoRefuse-Align JSON")
    method: Literal["sft", "dpo", "sft+dpo"] = opt("dpo", help="sft+dpo: SFT first, then DPO on the same adapter")
    merge: bool = opt(False, help="also write merged/: the base model with the adapter folded in")
    target: RoleConfig = opt(factory=RoleConfig, help="the model trained and measured (group target/)")
    align: AlignSettings = opt(factory=AlignSettings, help="training and measurement")
    refusal_judge: RefusalJudgeConfig = opt(factory=RefusalJudgeConfig, help="the judge behind CRR and the classes")
    embedder: EmbedderConfig = opt(factory=EmbedderConfig, help="sentence embeddings (leakage guard)")
    safety_prior: str = opt(SAFETY_PRIOR, help="a safety system prompt, for ${safety_prior}")


# ---- evoprompt build-guarded ----------------------------------------------------------------------------
@dataclass
class GuardedConfig(CommandConfig):
    """`evoprompt build-guarded`: rebuild the embedded-guarded target's safety LoRA from seeds/organism/ and
    print its profile on held-out public sets beside the plain model's."""
    seed: int = opt(0, help="data order, refusal choice and training seed")
    harmful: int | None = opt(None, check=lambda v: v is None or v >= 0, why=">= 0 or null (all)",
                              help="harmful requests trained to a refusal (the first N of harmful.jsonl)")
    contrast: int | None = opt(None, check=lambda v: v is None or v >= 0, why=">= 0 or null (all)",
                               help="harmless requests with alarming words trained to the base model's answer")
    everyday: int | None = opt(None, check=lambda v: v is None or v >= 0, why=">= 0 or null (all)",
                               help="plain everyday requests trained to the base model's answer")
    answer_tokens: int = count(32, help="tokens of each distilled answer (greedy; the refusal decision is in the "
                                         "first few, and shorter rows train 2x faster than 64)")
    tones: float = opt(0.3, check=lambda v: 0.0 <= v <= 1.0, why="in [0, 1]",
                       help="share of each set's requests added again inside a tone (seeds/organism/tones.txt), "
                            "harmful and harmless alike, so tone alone does not mean refuse")
    lora: LoraSettings = opt(factory=LoraSettings, help="the adapter")
    merge_alpha: int | None = opt(28, check=lambda v: v is None or v >= 1, why=">= 1 or null (lora.alpha)",
                                  help="the dose at merge: lora_alpha written into the built adapter's config, so "
                                       "its update is scaled by merge_alpha / lora.alpha (null = as trained)")
    sft: StageSettings = opt(factory=lambda: StageSettings(learning_rate=4e-4, max_steps=450, batch_size=8),
                             help="the SFT stage (the dose: steps and learning rate)")
    max_length: int = count(256, help="tokens per training example")
    install: bool = opt(True, help="copy the adapter into the package, where the embedded-guarded preset reads it")
    profile_only: bool = opt(False, help="measure the installed guarded model without training")
    profile_limit: int | None = opt(None, check=lambda v: v is None or v >= 1, why=">= 1 or null (all)",
                                    help="prompts per profile set that carries a goal (null = all: the goals are "
                                         "read on whole sets)")
    beside_limit: int | None = opt(100, check=lambda v: v is None or v >= 1, why=">= 1 or null (all)",
                                   help="prompts per profile set measured beside the goals (OR-Bench, PHTest, "
                                        "OKTest; null = all, PHTest harmless alone is 2,068)")
    decoding: DecodingConfig = opt(factory=lambda: DecodingConfig(0.01, 1.0, 40),
                                   help="the profile's answers: near-greedy, as eval")
    bootstrap: int = count(1000, help="resamples for the 95% intervals")
    embedder: EmbedderConfig = opt(factory=EmbedderConfig, help="sentence embeddings (the refusal classifier)")


# ---- evoprompt mitigate ----------------------------------------------------------------------------------
@dataclass
class MitigateConfig(CommandConfig):
    """`evoprompt mitigate`: remove the over-refusal a run found by ablating a false-refusal direction from the
    target's weights; the layer, direction and strength chosen on tuning data only; before/after on held-out sets."""
    seed: int = opt(0, help="bootstrap seed")
    data: list[str] = opt(factory=list, help="run directories: their exported items are the over-refused prompts")
    method: Literal["ablate"] = opt("ablate", help="ablate (docs/mitigate.md); SFT/DPO is `evoprompt align`")
    target: RoleConfig = opt(factory=RoleConfig, help="the model to mitigate (group target/; an HF model)")
    kinds: list[str] = opt(factory=lambda: ["orthogonal", "raw", "framing"],
                           help="false-refusal directions searched: items - everyday requests, made orthogonal to "
                                "harmful - everyday (orthogonal) or not (raw); items - their seeds, orthogonal "
                                "(framing)")
    layers: list[int] = opt(factory=lambda: [6, 10, 14, 18, 22], help="layers whose activations give a direction")
    strengths: list[float] = opt(factory=lambda: [0.25, 0.5, 0.75, 1.0], help="strengths searched (1 = removed)")
    tune: int = opt(64, check=at_least(8), why=">= 8", help="this project's harmful and everyday requests for the "
                                                           "directions, and as many again for the search")
    keep_harmful: float = probability(0.95, help="search: harmful tuning requests still refused, as a share of before")
    max_kl: float = opt(0.1, check=at_least(0.0), why=">= 0", help="search: first-token KL on everyday requests")
    max_everyday: float = probability(0.05, help="search: everyday requests refused at most")
    search_tokens: int = count(8, help="greedy tokens per answer in the search")
    measure_tokens: int = count(48, help="greedy tokens per answer in the before/after table")
    limit: int | None = opt(150, check=lambda v: v is None or v >= 1, why=">= 1 or null (all)",
                            help="prompts per held-out set")
    heldout_run: str | None = opt(None, help="a run directory not in data: its split joins the held-out sets")
    bootstrap: int = count(1000, help="resamples for the paired 95% intervals")


RUN_ROLES = ("target", "rewriter", "gate", "helper")

# the schema of each command's primary config (evoprompt/conf/<name>.yaml)
SCHEMAS = {"config": RunConfig, "eval": EvalConfig, "export": ExportCommandConfig, "judge": JudgeConfig,
           "gate_calibrate": GateCalibrateConfig, "align": AlignConfig, "build_guarded": GuardedConfig,
           "explain": ExplainConfig, "mitigate": MitigateConfig}
COMMAND_SCHEMAS = {"run": RunConfig, "check": RunConfig, "eval": EvalConfig, "export": ExportCommandConfig,
                   "judge-train": JudgeConfig, "judge-calibrate": JudgeConfig, "gate-calibrate": GateCalibrateConfig,
                   "align": AlignConfig, "build-guarded": GuardedConfig, "explain": ExplainConfig,
                   "mitigate": MitigateConfig}


