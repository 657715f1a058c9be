"""The DifPipe engine. Nothing under this package imports Textual."""
