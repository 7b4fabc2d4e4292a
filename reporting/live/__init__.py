"""The live dashboard: figures pushed over channels websockets to the ops page and to each
campaign page (`routing`, `consumers`), published by a beat task every LIVE_EVERY_SECONDS
from what Redis already holds (`publisher`, `figures`)."""
