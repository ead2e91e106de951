"""Training, data construction and evaluation of HuatuoGPT-Vision. Never needed by the desktop app."""
