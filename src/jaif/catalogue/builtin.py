"""Catalogue entries for the two built-in models, from their published model cards (paraphrased;
sources in ``training_data``). Seeded once by jaif.bootstrap.initialise; operators may edit them."""

from __future__ import annotations

BUILTIN_SOLUTIONS: tuple[dict, ...] = (
    {
        "slug": "smollm2-135m-instruct",
        "name": "SmolLM2-135M-Instruct",
        "model": "smollm2-135m-instruct",
        "domain": "general",
        "summary": "A compact chat model of Hugging Face's SmolLM2 family (135 million parameters), light enough "
        "to run on a CPU. This gateway serves it in-process as a 4-bit GGUF through llama.cpp.",
        "licence": "Apache-2.0",
        "intended_use": "Light instruction following and chat: rewriting and summarising short texts, simple "
        "questions, and trying the OpenAI-compatible API (alias default-chat) before moving to a larger model. "
        "The SmolLM2 family is designed to run on-device.",
        "limitations": "Understands and generates mainly English. At 135M parameters its output may be factually "
        "wrong, logically inconsistent or carry biases of its training data: use it as an assistive tool, not a "
        "source of truth, and check anything important. The gateway serves a 4-bit quantised copy, which loses "
        "some quality against the original weights.",
        "languages": ["English"],
        "training_data": "Pre-trained on 2 trillion tokens (FineWeb-Edu, DCLM, The Stack and further filtered "
        "datasets curated by Hugging Face); the instruct version by supervised fine-tuning on public and curated "
        "datasets (SmolTalk), then Direct Preference Optimization on UltraFeedback. "
        "Model card: https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
    },
    {
        "slug": "all-minilm-l6-v2",
        "name": "all-MiniLM-L6-v2",
        "model": "all-minilm-l6-v2",
        "domain": "general",
        "summary": "A sentence-transformers model that maps sentences and short paragraphs to 384-dimensional "
        "vectors for semantic search, clustering and similarity. Runs on CPU in this gateway.",
        "licence": "Apache-2.0",
        "intended_use": "Encoding sentences and short paragraphs so that the vectors capture their meaning: "
        "information retrieval (for example the retrieval step of retrieval-augmented generation), clustering "
        "and sentence similarity. Call it through /v1/embeddings (alias default-embedding).",
        "limitations": "Input longer than 256 word pieces is truncated: split long documents into chunks first. "
        "Trained on English text; other languages embed poorly. Not a generative model. The vectors reflect "
        "biases of the web-scale sentence pairs it was trained on.",
        "languages": ["English"],
        "training_data": "Starts from nreimers/MiniLM-L6-H384-uncased, fine-tuned with a contrastive objective on "
        "more than one billion sentence pairs from many datasets (among them Reddit comments, S2ORC, WikiAnswers, "
        "PAQ, Stack Exchange, MS MARCO, SNLI and MultiNLI). "
        "Model card: https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
    },
)
