"""The command-line shell over the simsearch library (the library never imports it)."""
