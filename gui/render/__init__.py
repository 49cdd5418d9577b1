"""Rendering in the user's language: data and codes from core → HTML, Markdown and figures. No gradio events here."""
