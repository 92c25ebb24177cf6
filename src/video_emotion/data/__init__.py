"""Data: corpora into a manifest, and the arrays the pipeline keeps.

`corpus` ingests a corpus (the embedded `synthetic` one, or a real one through the `ravdess`,
`cremad` and `own` adapters) into a manifest (`manifest`) with actor-disjoint splits; `validation`
checks it with Great Expectations; `processed` reads and writes the per-split arrays; `assets`
fetches the pinned pretrained weights and real footage; `audit` finds encrypted files and plaintext
leaks. Uses config, labels, security and the video reader of `features`.
"""
