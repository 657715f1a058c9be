"""The transfer engine: plan, stream, compress, verify, checkpoint and resume, fan out."""
