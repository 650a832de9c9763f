"""Widgets of the dashboard: tables, meters, charts and panels."""
