"""Lineage views for people: text, DOT/SVG/Mermaid graphs, an HTML page."""
