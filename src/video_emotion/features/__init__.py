"""Features: what the model reads, computed the same way in training, evaluation and serving.

`video` decodes and samples frames; `faces` detects and crops faces (the ONE face path);
`tracking` follows faces through a stream; `audio` extracts sound and log-mel features; `clips`
turns whole clips into training arrays. Uses config and security only.
"""
