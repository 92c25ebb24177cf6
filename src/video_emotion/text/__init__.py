"""Text: transcripts (plain, SRT, VTT) and their sentiment in English and Chinese (`sentiment`)."""
