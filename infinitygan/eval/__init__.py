"""`infinitygan eval`: how good, seamless and non-repeating a generator checkpoint is, each
figure beside a real-vs-real floor and an untrained-model ceiling (see `evaluate.py`)."""
