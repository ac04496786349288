"""The report: per-cell records aggregated over seeds (tables), the papers' claims checked with
intervals (claims, stats), figures, and the document model rendered to Markdown and HTML; derived
metrics (state size, FLOPs per token) that the evaluate stage stamps on each record. Pure: the
report stage (components/stages/report.py) does the I/O."""
