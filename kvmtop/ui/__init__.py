"""The Textual dashboard. Entry points: ``app.run_dashboard`` and ``app.make_app``."""
