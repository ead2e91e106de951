"""HuatuoGPT-Vision checkpoint -> GGUF text model + vision projector, quantization and parity checks.

The conversion path itself needs only numpy and gguf (plus sentencepiece for Llama-family vocabularies);
the reference comparison in `verify` needs the `dev` extra (torch, transformers).
"""
