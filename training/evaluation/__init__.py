"""The medical VQA evaluation harness: benchmarks run through the engine or the transformers reference."""
