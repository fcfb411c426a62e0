"""The model organism of over-refusal: the packaged SmolLM2-135M-Instruct with a safety LoRA this project builds
from its own data (seeds/organism/), the `embedded-guarded` target of the default run.

Real safety-tuned models over-refuse because safety training generalises from harmful requests to their surface
(alarming words) regardless of context; the same training reproduces it at 135M parameters. `data` reads the
written sets and assembles a build's training mix; `build` trains, merges and profiles (`evoprompt build-guarded`).
No public benchmark is trained on, so every one stays a clean held-out test."""
