"""Widgets more than one tab uses: the run picker."""
