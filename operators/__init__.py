"""How an instruction changes: the nine mutation strategies and recombination, run by an LLM rewriter."""
