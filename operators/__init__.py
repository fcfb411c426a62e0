"""How an instruction changes: the nine mutation strategies, the attribution-guided `trigger`, and recombination, run by an LLM rewriter."""
