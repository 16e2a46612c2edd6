"""Files uploaded through /v1/files (OpenAI's Files API): batch input files, and the batches' results."""
