"""How an instruction is judged and scored: the harmlessness gate, refusal judges, the ELBO fitness."""
