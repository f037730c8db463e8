"""Backend-neutral system-model maths: TR 38.901 channel formulas and the counter-based RNG."""
