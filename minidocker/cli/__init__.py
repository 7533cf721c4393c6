"""The command line: thin click commands (parse, call, print). Errors map to exit codes in main.py."""
