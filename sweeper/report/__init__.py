"""Reports: the canonical JSON (`sweeper.report/1`) and renderers that present it, never compute."""
