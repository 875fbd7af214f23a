"""`streamdrift backtest`: replay history through the live service's own pipeline
(`detector.core.pipeline.Pipeline`) under a candidate configuration, and report what would have
fired, how it compares with known change points, and a picture of each drifting signal.

Modules: `sources` (what the replay reads), `files` and `topics` (the two sources: JSON-lines
files, and topics read by a throwaway consumer), `timeline` (where each message falls in its
model's predictions), `readahead` (reading and decoding in a second process), `trace` (signal
time series for the pictures), `replay` (the run itself), `score` (ground-truth matching, pure), `summary` (text and JSON), `plots` and `report`
(PNG and HTML, with the optional matplotlib), `progress`, `arguments` and `command` (the
sub-command).
"""
