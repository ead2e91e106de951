"""Local inference for HuatuoGPT-Vision on llama.cpp. Imports no Qt."""
