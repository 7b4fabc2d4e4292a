"""The pacing simulator's parts (bench/pacing_sim.py runs it)."""
