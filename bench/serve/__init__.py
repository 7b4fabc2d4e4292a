"""The serving benchmark's parts (bench/serving.py runs it)."""
