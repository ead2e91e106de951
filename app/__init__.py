"""Huatuo Vision Desktop: the desktop app and the `huatuo` command line."""
